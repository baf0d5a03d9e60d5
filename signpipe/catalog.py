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


SORTS = {
    "newest": (Recording.created_at.desc(), Recording.id),
    "oldest": (Recording.created_at.asc(), Recording.id),
    "id": (Recording.id.asc(),),
    "status": (Recording.status.asc(), Recording.created_at.desc(), Recording.id),
}


@dataclass(frozen=True)
class ListQuery:
    """What the status page and the API were asked for, already made safe."""

    page: int = 1
    per_page: int = 50
    status: str | None = None
    sort: str = "newest"
    search: str = ""

    @classmethod
    def parse(cls, page: int, per_page: int, status: str | None, sort: str | None, search: str | None):
        return cls(
            page=max(page, 1),
            per_page=min(max(per_page, 1), MAX_PER_PAGE),
            status=status if status in RECORDING_STATES else None,
            sort=sort if sort in SORTS else "newest",
            search=(search or "").strip()[:200],
        )


def recording_page(query: ListQuery = ListQuery()) -> Page:
    """One page of recordings with the count per status; cost grows with the page, not the total."""
    with db.session() as session:
        counts = dict(
            session.execute(select(Recording.status, func.count()).group_by(Recording.status)).all()
        )
        rows = select(Recording)
        if query.status:
            rows = rows.where(Recording.status == query.status)
        if query.search:
            rows = rows.where(*id_prefix(query.search))
        total = _total(session, rows, query, counts)
        page_rows = session.scalars(
            rows.order_by(*SORTS[query.sort]).offset((query.page - 1) * query.per_page).limit(query.per_page)
        ).all()
        items = [row.to_dict() for row in page_rows]
    return Page(items, total, query.page, query.per_page, {s: counts.get(s, 0) for s in RECORDING_STATES})


def id_prefix(prefix: str) -> tuple:
    """Ids starting with `prefix`: a range the primary key's index serves, then an exact LIKE."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (
        Recording.id >= prefix,
        Recording.id < prefix + "\U0010ffff",
        Recording.id.like(f"{escaped}%", escape="\\"),
    )


def _total(session, rows, query: ListQuery, counts: dict[str, int]) -> int:
    if query.search:
        return session.scalar(select(func.count()).select_from(rows.subquery()))
    return counts.get(query.status, 0) if query.status else sum(counts.values())


def active_recordings(limit: int = 20) -> list[dict]:
    """What runs or waits right now, running first: shown above the table."""
    with db.session() as session:
        rows = session.scalars(
            select(Recording)
            .where(Recording.status.in_(("processing", "queued")))
            .order_by(Recording.status.desc(), Recording.created_at)
            .limit(limit)
        ).all()
        return [row.to_dict() for row in rows]


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
