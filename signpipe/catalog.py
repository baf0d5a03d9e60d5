"""Reading recordings for the status page and the API: one page at a time, newest first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .db import db
from .models import RECORDING_STATES, Attempt, Recording, UploadJob

MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page:
    items: list[dict]
    total: int
    page: int
    per_page: int
    counts: dict[str, int]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def recording_page(page: int = 1, per_page: int = 50, status: str | None = None) -> Page:
    """One page of recordings with the count per status; cost grows with the page, not the total."""
    page, per_page = max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)
    with db.session() as session:
        counts = dict(
            session.execute(select(Recording.status, func.count()).group_by(Recording.status)).all()
        )
        query = select(Recording).order_by(Recording.created_at.desc(), Recording.id)
        if status in RECORDING_STATES:
            query = query.where(Recording.status == status)
        rows = session.scalars(query.offset((page - 1) * per_page).limit(per_page)).all()
        items = [row.to_dict() for row in rows]
    total = counts.get(status, 0) if status in RECORDING_STATES else sum(counts.values())
    return Page(items, total, page, per_page, {s: counts.get(s, 0) for s in RECORDING_STATES})


def get_recording(rid: str) -> dict | None:
    """One recording as JSON-ready data with its attempts, or None."""
    with db.session() as session:
        row = session.get(Recording, rid)
        if row is None:
            return None
        attempts = session.scalars(
            select(Attempt).where(Attempt.recording_id == rid).order_by(Attempt.number)
        )
        return {**row.to_dict(), "attempts": [attempt.to_dict() for attempt in attempts]}


def recent_failed_uploads(limit: int = 10) -> list[dict]:
    """Uploads refused before they became recordings, so the status page can show why."""
    with db.session() as session:
        query = select(UploadJob).where(UploadJob.status == "failed").order_by(UploadJob.created_at.desc())
        return [job.to_dict() for job in session.scalars(query.limit(limit))]


def active_uploads() -> list[dict]:
    """Uploads still being extracted or validated."""
    with db.session() as session:
        query = select(UploadJob).where(UploadJob.status.in_(("uploaded", "extracting")))
        return [
            job.to_dict() for job in session.scalars(query.order_by(UploadJob.created_at.desc()).limit(50))
        ]
