"""The reaper: periodic recovery of jobs that a crash, a lost message or a dead worker left behind.

Each check is small and logs what it does; beat queues `reap()` every REAPER_SECONDS.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update

from . import jobs
from .db import db
from .errors import SignpipeError
from .extensions import INGEST_TASK, progress_store, send_task
from .ingest import fail_job
from .models import Attempt, Recording, UploadJob, utcnow
from .pipeline import kill_group
from .storage import DataLayout

log = logging.getLogger(__name__)


def reap() -> dict[str, int]:
    """Run every check; returns how many things each one fixed."""
    return {
        "lost_attempts": requeue_stale_attempts(),
        "resent_messages": resend_lost_messages(),
        "stalled_extractions": fail_stalled_extractions(),
        "orphans": delete_orphans(),
    }


def mark_lost(attempt_id: int, why: str) -> bool:
    """Running -> lost, once; then the next attempt, or failure past PIPELINE_MAX_ATTEMPTS."""
    with db.transaction() as session:
        lost = session.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id, Attempt.status == "running")
            .values(status="lost", finished_at=utcnow(), error=why)
        ).rowcount
        attempt = session.get(Attempt, attempt_id)
    if not lost:
        return False
    _end_leftover_processes(attempt)
    rid, number, cap = attempt.recording_id, attempt.number, current_app.config["PIPELINE_MAX_ATTEMPTS"]
    log.warning("recording %s: attempt %d lost (%s)", rid, number, why)
    paths = DataLayout(Path(current_app.config["DATA_DIR"]))
    shutil.rmtree(paths.recording(rid) / f"results.attempt-{number}", ignore_errors=True)
    lost_in_a_row = _lost_in_a_row(rid)
    if lost_in_a_row < cap:
        try:
            jobs.queue_attempt(rid, f"attempt {number} lost: {why}", allowed=("processing",))
        except jobs.ActionRefused as exc:
            log.info("recording %s: not re-queued (%s)", rid, exc.message)
        return True
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        if rec is not None and rec.attempt == number:
            rec.status, rec.finished_at = "failed", utcnow()
            rec.error = f"failed: worker lost ({lost_in_a_row} attempts)"
    return True


def _lost_in_a_row(rid: str) -> int:
    """Attempts lost one after another, up to the latest: a user's retry starts a new count."""
    with db.session() as session:
        statuses = session.scalars(
            select(Attempt.status).where(Attempt.recording_id == rid).order_by(Attempt.number.desc())
        ).all()
    count = 0
    for status in statuses:
        if status != "lost":
            break
        count += 1
    return count


def _end_leftover_processes(attempt: Attempt) -> None:
    """A lost attempt's script may outlive its worker: end its group if it runs on this host."""
    host = (attempt.worker or "").rpartition("@")[2]
    if attempt.process_group and host == socket.gethostname() and kill_group(attempt.process_group):
        log.warning("recording %s: killed what was left of attempt %d", attempt.recording_id, attempt.number)


def requeue_stale_attempts() -> int:
    """Running attempts whose heartbeat went silent: their worker is gone."""
    timeout = current_app.config["HEARTBEAT_TIMEOUT"]
    cutoff = utcnow() - timedelta(seconds=timeout)
    with db.session() as session:
        stale = session.scalars(
            select(Attempt.id).where(Attempt.status == "running", Attempt.heartbeat_at < cutoff)
        ).all()
    return sum(mark_lost(attempt_id, f"no heartbeat for {timeout:g} s") for attempt_id in stale)


def recover_worker(hostname: str) -> int:
    """At a worker's start: what it was running before it crashed is lost now, not in minutes."""
    with db.session() as session:
        mine = session.scalars(
            select(Attempt.id).where(Attempt.status == "running", Attempt.worker == hostname)
        ).all()
    return sum(mark_lost(attempt_id, f"worker {hostname} restarted") for attempt_id in mine)


def _broker_holds(queue: str, needle: str) -> bool:
    """Whether a message mentioning `needle` waits in the queue or is held unacknowledged."""
    client = current_app.extensions["redis"]
    prefix = current_app.config.get("BROKER_KEY_PREFIX", "")
    raw = needle.encode()
    waiting = client.lrange(f"{prefix}{queue}", 0, -1)
    held = client.hvals(f"{prefix}unacked")
    return any(raw in message for message in [*waiting, *held])


def resend_lost_messages() -> int:
    """Jobs the database says are queued but whose message the broker lost (an empty restart)."""
    cutoff = utcnow() - timedelta(seconds=current_app.config["RESEND_AFTER_SECONDS"])
    with db.session() as session:
        attempts = session.execute(
            select(Attempt.recording_id, Attempt.token).where(
                Attempt.status == "queued", Attempt.queued_at < cutoff
            )
        ).all()
        uploads = session.scalars(
            select(UploadJob.id).where(UploadJob.status == "uploaded", UploadJob.created_at < cutoff)
        ).all()
    resent = 0
    for rid, token in attempts:
        if not _broker_holds("pipeline", token) and jobs.send_attempt(rid, token):
            log.warning("recording %s: the broker lost its queued attempt; sent again", rid)
            resent += 1
    for job_id in uploads:
        if not _broker_holds("ingest", job_id):
            try:
                send_task(INGEST_TASK, job_id)
            except Exception:
                log.warning("upload %s: broker unavailable; the next round tries again", job_id)
                continue
            log.warning("upload %s: the broker lost its ingest message; sent again", job_id)
            resent += 1
    return resent


def fail_stalled_extractions() -> int:
    """Extractions whose progress stopped (their worker was killed): failed, files removed."""
    stall = current_app.config["EXTRACT_STALL_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=stall)
    with db.session() as session:
        running = session.scalars(
            select(UploadJob).where(UploadJob.status == "extracting", UploadJob.updated_at < cutoff)
        ).all()
    paths = DataLayout(Path(current_app.config["DATA_DIR"]))
    failed = 0
    for job in running:
        progress = progress_store().try_get(job.id) or {}
        if time.time() - progress.get("updated_at", 0) < stall:
            continue
        fail_job(job.id, SignpipeError("Extraction stopped: its worker was lost; please upload again"))
        shutil.rmtree(paths.temp_for(job.id), ignore_errors=True)
        for leftover in paths.uploads.glob(f"{job.id}.*"):
            leftover.unlink(missing_ok=True)
        log.warning("upload %s: extraction stalled for %d s; failed and cleaned up", job.id, stall)
        failed += 1
    return failed


def delete_orphans() -> int:
    """Uploads and temp folders older than ORPHAN_AGE_SECONDS that no live job owns."""
    paths = DataLayout(Path(current_app.config["DATA_DIR"]))
    cutoff = time.time() - current_app.config["ORPHAN_AGE_SECONDS"]
    with db.session() as session:
        live = set(
            session.scalars(select(UploadJob.id).where(UploadJob.status.in_(("uploaded", "extracting"))))
        )
    candidates = [*paths.uploads.glob("*.*"), *paths.temp_extracts.iterdir()]
    removed = 0
    for path in candidates:
        if path.name.split(".", 1)[0] in live or path.stat().st_mtime > cutoff:
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        log.warning("removed orphan %s", path)
        removed += 1
    return removed
