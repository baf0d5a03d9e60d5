"""What the service can say about itself: workers, queues, job ages, disk. Used by /healthz and /status."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from .db import db
from .models import Attempt, UploadJob, utcnow

QUEUES = ("ingest", "pipeline")
WORKER_CACHE_SECONDS = 10
# A busy worker (or a busy machine) can miss one ping: a queue counts as unserved only when no
# worker of it has answered for this long.
WORKER_GRACE_SECONDS = 45
_workers_cache: dict = {"at": 0.0, "value": None}
_last_seen: dict[str, tuple[float, list[str]]] = {}
_refreshing = threading.Lock()


def workers_by_queue(wait: bool = True) -> dict[str, list[str]] | None:
    """Celery workers that answered, per queue they consume, cached for a few seconds.

    Asking the workers takes up to a second; with `wait=False` (pages) a stale cache is served
    while one background thread per process asks again.
    """
    fresh = time.monotonic() - _workers_cache["at"] < WORKER_CACHE_SECONDS
    if fresh and _workers_cache["value"] is not None:
        return _workers_cache["value"]
    if wait:
        with _refreshing:
            return _refresh(current_app.extensions["celery"])
    if _refreshing.acquire(blocking=False):
        celery = current_app.extensions["celery"]
        threading.Thread(target=_refresh_and_release, args=(celery,), daemon=True).start()
    return _workers_cache["value"]


def _refresh_and_release(celery) -> None:
    try:
        _refresh(celery)
    except Exception:  # a page must not fail because the broker did
        pass
    finally:
        _refreshing.release()


def _refresh(celery) -> dict[str, list[str]]:
    replies = celery.control.inspect(timeout=1.0).active_queues() or {}
    answered = {queue["name"] for queues in replies.values() for queue in queues}
    if any(queue not in answered and queue not in _last_seen for queue in QUEUES):
        # Nothing known yet about a silent queue: give slow workers one longer chance.
        replies = {**(celery.control.inspect(timeout=2.5).active_queues() or {}), **replies}
    by_queue: dict[str, list[str]] = {queue: [] for queue in QUEUES}
    for worker, queues in replies.items():
        for queue in queues:
            by_queue.setdefault(queue["name"], []).append(worker)
    now = time.monotonic()
    for queue, workers in by_queue.items():
        if workers:
            _last_seen[queue] = (now, workers)
        elif now - _last_seen.get(queue, (0.0, []))[0] < WORKER_GRACE_SECONDS:
            by_queue[queue] = _last_seen[queue][1]  # missed this ping, answered a moment ago
    _workers_cache.update(at=now, value=by_queue)
    return by_queue


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each queue."""
    client = current_app.extensions["redis"]
    prefix = current_app.config.get("BROKER_KEY_PREFIX", "")
    return {queue: int(client.llen(f"{prefix}{queue}")) for queue in QUEUES}


def job_ages() -> dict[str, float | int | None]:
    """Age of the oldest waiting job, and how many running attempts have a stale heartbeat."""
    now = utcnow()
    stale_before = now - timedelta(seconds=current_app.config["HEARTBEAT_TIMEOUT"])
    with db.session() as session:
        oldest_attempt = session.scalar(select(func.min(Attempt.queued_at)).where(Attempt.status == "queued"))
        oldest_upload = session.scalar(
            select(func.min(UploadJob.created_at)).where(UploadJob.status == "uploaded")
        )
        stale = session.scalar(
            select(func.count()).where(Attempt.status == "running", Attempt.heartbeat_at < stale_before)
        )
    oldest = min((t for t in (oldest_attempt, oldest_upload) if t is not None), default=None)
    return {"oldest_queued_seconds": _age(oldest, now), "stale_heartbeats": stale}


def _age(moment, now) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return round((now - moment).total_seconds(), 1)


def free_disk() -> dict[str, int]:
    usage = shutil.disk_usage(current_app.config["DATA_DIR"])
    return {"free_bytes": usage.free, "total_bytes": usage.total}
