"""Reading recordings for the status page and the API: one page at a time, newest first."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import bindparam, func, select

from .db import db
from .models import RECORDING_STATES, Attempt, Recording, UploadJob, attempt_dict, recording_dict

MAX_PER_PAGE = 200
ATTEMPT_LABEL = "attempt__"  # prefix of the attempt columns in get_recording's join


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


class CountsCache:
    """The count per status, reused for `max_age` seconds by this process.

    Counting reads every recording's index entry; with thousands of recordings and every open
    status page refreshing, that would be the one cost that grows with the total.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._entry: tuple[object, float, dict[str, int]] | None = None  # (engine, counted at, counts)

    def get(self, session, max_age: float) -> dict[str, int]:
        entry, now = self._entry, self.clock()
        if entry is not None and entry[0] is db.engine and now - entry[1] < max_age:
            return entry[2]
        query = select(Recording.status, func.count()).group_by(Recording.status)
        counts = dict(session.execute(query).all())
        self._entry = (db.engine, now, counts)
        return counts


status_counts = CountsCache()


def recording_page(query: ListQuery = ListQuery(), counts_max_age: float = 0) -> Page:
    """One page of recordings with the count per status; cost grows with the page, not the total.

    The counts may be up to `counts_max_age` seconds old (see CountsCache); the rows never are.
    """
    with db.session() as session:
        counts = status_counts.get(session, counts_max_age)
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
    """What runs or waits right now, running first, oldest first: shown above the table.

    One query per status, each read in order from the (status, created_at) index, so it stops
    after `limit` rows however many recordings wait (an IN over both would sort them all).
    """
    found: list[dict] = []
    with db.session() as session:
        for status in ("processing", "queued"):
            query = select(Recording).where(Recording.status == status).order_by(Recording.created_at)
            found += [row.to_dict() for row in session.scalars(query.limit(limit - len(found)))]
            if len(found) >= limit:
                break
    return found


def _recording_with_attempts():
    recordings, attempts = Recording.__table__, Attempt.__table__
    return (
        select(recordings, *(column.label(ATTEMPT_LABEL + column.name) for column in attempts.c))
        .outerjoin(attempts, attempts.c.recording_id == recordings.c.id)
        .where(recordings.c.id == bindparam("rid"))
        .order_by(attempts.c.number)
    )


RECORDING_WITH_ATTEMPTS = _recording_with_attempts()  # built once: building it costs more than running it


def get_recording(rid: str) -> dict | None:
    """One recording as JSON-ready data with its attempts, or None.

    One statement (recording LEFT JOIN attempts) on an autocommit connection: the recording
    page polls this, so it costs one database round trip and no ORM objects.
    """
    with db.reading() as conn:
        rows = conn.execute(RECORDING_WITH_ATTEMPTS, {"rid": rid}).all()
    if not rows:
        return None
    history = []
    for row in rows:
        fields = {k[len(ATTEMPT_LABEL) :]: v for k, v in row._mapping.items() if k.startswith(ATTEMPT_LABEL)}
        if fields["id"] is not None:
            history.append(attempt_dict(SimpleNamespace(**fields)))
    return {**recording_dict(rows[0]), "attempts": history}


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
