"""Live extraction progress in Redis: `extraction:<job_id>` JSON strings with a one-hour TTL.

Nothing else reads or writes those keys; the database holds the lasting record.
"""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger(__name__)
KEY_PREFIX = "extraction:"
DEFAULT_TTL = 3600
THROTTLE_FILES = 10
THROTTLE_SECONDS = 0.25


def progress_key(job_id: str) -> str:
    return f"{KEY_PREFIX}{job_id}"


def new_progress(job_id: str, status: str = "queued", **fields: object) -> dict:
    """The documented shape, with every field present."""
    progress = {
        "job_id": job_id,
        "status": status,
        "phase": status,
        "total_files": 0,
        "extracted_files": 0,
        "extract_size": 0,
        "archive_bytes": 0,  # size of the uploaded archive
        "percent": 0.0,
        "recording_id": None,
        "error_msg": None,
        "error_details": None,
        "updated_at": time.time(),
    }
    progress.update(fields)
    return progress


class ProgressStore:
    """Reads and writes progress records; every write re-applies the TTL and, given a channel,
    is published on it too (the web processes' feeds.ProgressFeed listens there)."""

    def __init__(self, redis_client, ttl: int = DEFAULT_TTL, channel: str | None = None):
        self.redis = redis_client
        self.ttl = ttl
        self.channel = channel

    def get(self, job_id: str) -> dict | None:
        raw = self.redis.get(progress_key(job_id))
        return json.loads(raw) if raw else None

    def set(self, job_id: str, progress: dict) -> None:
        raw = json.dumps(dict(progress, updated_at=time.time()))
        if self.channel is None:
            self.redis.set(progress_key(job_id), raw, ex=self.ttl)
            return
        pipe = self.redis.pipeline(transaction=False)  # one round trip for both
        pipe.set(progress_key(job_id), raw, ex=self.ttl)
        pipe.publish(self.channel, raw)
        pipe.execute()

    def try_get(self, job_id: str) -> dict | None:
        """Like get(), but None when Redis is unreachable (the database still has the job)."""
        try:
            return self.get(job_id)
        except Exception:
            log.warning("progress of %s unreadable: Redis unavailable", job_id)
            return None

    def try_set(self, job_id: str, progress: dict) -> bool:
        """Like set(), but a Redis outage only costs live progress, never the job itself."""
        try:
            self.set(job_id, progress)
            return True
        except Exception:
            log.warning("progress of %s not published: Redis unavailable", job_id)
            return False


_bound: ProgressStore | None = None


def bind_store(store: ProgressStore) -> None:
    """Called once by the app factory so the two helpers below know their Redis."""
    global _bound
    _bound = store


def _store() -> ProgressStore:
    if _bound is None:
        raise RuntimeError("progress store is not configured: call create_app() first")
    return _bound


def get_extraction_progress(job_id: str) -> dict | None:
    """The progress record of an upload job, or None when unknown or expired."""
    return _store().get(job_id)


def set_extraction_progress(job_id: str, progress: dict) -> None:
    """Store a progress record and reset its TTL."""
    _store().set(job_id, progress)


class ThrottledReporter:
    """Turns extractor callbacks into progress writes: every 10 files or 0.25 s, whichever first."""

    def __init__(self, store: ProgressStore, job_id: str, base: dict, clock=time.monotonic):
        self.store = store
        self.job_id = job_id
        self.progress = dict(base)
        self.clock = clock
        self._last_time = clock()
        self._last_files = 0

    def __call__(self, files: int, bytes_done: int, fraction: float, total_files: int) -> None:
        now = self.clock()
        due = files - self._last_files >= THROTTLE_FILES or now - self._last_time >= THROTTLE_SECONDS
        self.progress.update(
            extracted_files=files,
            extract_size=bytes_done,
            total_files=max(total_files, files),
            percent=round(min(max(fraction, 0.0), 1.0) * 100, 1),
        )
        if due:
            self.flush()

    def flush(self) -> None:
        self._last_time = self.clock()
        self._last_files = self.progress["extracted_files"]
        self.store.try_set(self.job_id, self.progress)
