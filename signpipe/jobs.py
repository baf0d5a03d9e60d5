"""Pipeline attempts: the durable record decides which message may run a recording, and when.

Celery may deliver a message twice (redelivery after a lost worker, a visibility timeout, a
re-send by the reaper). Each attempt has a token that its message carries; a task claims the
attempt with an atomic `queued -> running` UPDATE, so any other copy of the message does nothing.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select, update

from .db import db
from .extensions import PIPELINE_TASK, send_task
from .models import Attempt, Recording, initial_stages, utcnow

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
RECORDING_OUTCOME = {"completed": "completed", "failed": "failed", "cancelled": "cancelled", "lost": "failed"}


class ActionRefused(Exception):
    """The action does not fit the recording's state (HTTP 409), or the recording is unknown (404)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


def queue_attempt(rid: str, reason: str, allowed: tuple[str, ...]) -> int:
    """Start the next attempt of a recording in one of the `allowed` states; returns its number.

    The conditional UPDATE on the attempt counter lets exactly one of many concurrent callers win.
    """
    token = uuid.uuid4().hex
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        if rec is None:
            raise ActionRefused(f"Unknown recording '{rid}'", 404)
        if rec.status not in allowed:
            raise ActionRefused(f"Recording '{rid}' is {rec.status}; this needs {' or '.join(allowed)}")
        number = rec.attempt + 1  # read before the UPDATE, which refreshes `rec` in the session
        won = session.execute(
            update(Recording)
            .where(Recording.id == rid, Recording.attempt == number - 1, Recording.status.in_(allowed))
            .values(attempt=number, status="queued", error=None, error_details=None, finished_at=None)
        ).rowcount
        if won != 1:
            raise ActionRefused(f"Recording '{rid}' was changed by another request; reload and try again")
        session.add(Attempt(recording_id=rid, number=number, token=token, reason=reason))
    send_attempt(rid, token)
    log.info("recording %s: attempt %d queued (%s)", rid, number, reason)
    return number


def send_attempt(rid: str, token: str) -> bool:
    """Queue the attempt's message; when the broker is down the reaper sends it later."""
    try:
        send_task(PIPELINE_TASK, rid, token)
        return True
    except Exception:
        log.warning("recording %s: broker unavailable, the reaper will queue the attempt", rid, exc_info=True)
        return False


def claim(rid: str, token: str, worker: str) -> Attempt | None:
    """Take the attempt this message carries, if it is still queued and still the current one."""
    now = utcnow()
    with db.transaction() as session:
        took = session.execute(
            update(Attempt)
            .where(Attempt.token == token, Attempt.status == "queued")
            .values(status="running", started_at=now, heartbeat_at=now, worker=worker)
        ).rowcount
        if took != 1:
            return None
        attempt = session.scalar(select(Attempt).where(Attempt.token == token))
        current = session.execute(
            update(Recording)
            .where(Recording.id == rid, Recording.attempt == attempt.number, Recording.status == "queued")
            .values(status="processing", started_at=now, stage_index=0, stage=None, stages=initial_stages())
        ).rowcount
        if current != 1:  # a newer attempt, a cancel or a delete got there first
            attempt.status, attempt.finished_at, attempt.error = "cancelled", now, "superseded"
            return None
        return attempt


def record_process_group(token: str, pgid: int) -> None:
    """Where the attempt's script runs, so a recovery on the same host can end what is left."""
    with db.transaction() as session:
        session.execute(update(Attempt).where(Attempt.token == token).values(process_group=pgid))


def heartbeat(token: str) -> str | None:
    """Record that the attempt is alive; returns why it must stop (cancel, superseded), or None."""
    with db.transaction() as session:
        session.execute(
            update(Attempt)
            .where(Attempt.token == token, Attempt.status == "running")
            .values(heartbeat_at=utcnow())
        )
        return stop_reason(session, token)


def stop_reason(session, token: str) -> str | None:
    attempt = session.scalar(select(Attempt).where(Attempt.token == token))
    if attempt is None:
        return "deleted"
    if attempt.cancel_requested:
        return "cancelled"
    return None if attempt.status == "running" else "superseded"


def finish(rid: str, token: str, outcome: str, error: str | None = None, details: dict | None = None) -> bool:
    """Close a running attempt and, if it is still the current one, its recording."""
    now = utcnow()
    with db.transaction() as session:
        closed = session.execute(
            update(Attempt)
            .where(Attempt.token == token, Attempt.status == "running")
            .values(status=outcome, finished_at=now, error=error, error_details=details)
        ).rowcount
        if closed != 1:
            return False
        number = session.scalar(select(Attempt.number).where(Attempt.token == token))
        rec = session.get(Recording, rid)
        if rec is not None and rec.attempt == number:
            rec.status, rec.finished_at = RECORDING_OUTCOME[outcome], now
            rec.error, rec.error_details = error, details
            if outcome == "completed":
                rec.results_attempt = number
            if outcome != "completed":
                rec.stages = [dict(s, state="failed") if s["state"] == "running" else s for s in rec.stages]
    log.info("recording %s: attempt %s %s%s", rid, number, outcome, f": {error}" if error else "")
    return True


def cancel(rid: str) -> str:
    """Cancel the current attempt: a queued one at once, a running one within seconds."""
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        if rec is None:
            raise ActionRefused(f"Unknown recording '{rid}'", 404)
        attempt = session.scalar(
            select(Attempt).where(Attempt.recording_id == rid, Attempt.number == rec.attempt)
        )
        if attempt is None or attempt.status not in ACTIVE:
            raise ActionRefused(f"Recording '{rid}' is {rec.status}: nothing to cancel")
        attempt.cancel_requested = True
        if attempt.status == "queued":
            attempt.status, attempt.finished_at, attempt.error = "cancelled", utcnow(), "cancelled by a user"
            rec.status, rec.finished_at, rec.error = "cancelled", utcnow(), "Cancelled by a user"
            return "cancelled"
    return "cancelling"


def recording_exists(rid: str) -> bool:
    with db.session() as session:
        return session.get(Recording, rid) is not None
