"""The ingest job: extract an uploaded archive, validate the tree, store it, queue the pipeline."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import archive, jobs
from .db import db
from .errors import RecordingExists, ServiceUnavailable, SignpipeError
from .extensions import INGEST_TASK, progress_store, send_task
from .models import Recording, UploadJob, utcnow
from .progress import ThrottledReporter, new_progress
from .storage import DataLayout
from .uploads import ReceivedArchive
from .validation import validate_recording

log = logging.getLogger(__name__)


def layout() -> DataLayout:
    return DataLayout(Path(current_app.config["DATA_DIR"]))


def archive_limits() -> archive.Limits:
    cfg = current_app.config
    return archive.Limits(max_bytes=cfg["MAX_EXTRACT_BYTES"], max_entries=cfg["MAX_ARCHIVE_ENTRIES"])


def register_upload(job_id: str, received: ReceivedArchive) -> None:
    """Commit the job's row, then publish its progress and queue the ingest task.

    Whatever fails here, the stored archive is removed: no upload is left without a job.
    """
    try:
        with db.transaction() as session:
            session.add(
                UploadJob(
                    id=job_id,
                    filename=received.filename,
                    archive_kind=received.kind,
                    size_bytes=received.size,
                )
            )
    except SQLAlchemyError as exc:
        received.path.unlink(missing_ok=True)
        raise ServiceUnavailable("The database is unavailable; please upload again later") from exc
    try:
        progress_store().set(job_id, new_progress(job_id, archive_bytes=received.size))
        send_task(INGEST_TASK, job_id)
    except Exception as exc:
        refusal = ServiceUnavailable("The job queue is unavailable; please upload again later")
        fail_job(job_id, refusal)
        received.path.unlink(missing_ok=True)
        raise refusal from exc


def record_refused_upload(job_id: str, filename: str, size: int, exc: SignpipeError) -> None:
    """A completed upload whose file is not what its name says: a job that failed at once."""
    with db.transaction() as session:
        session.add(UploadJob(id=job_id, filename=filename[:255], archive_kind="", size_bytes=size))
    fail_job(job_id, exc)


def ingest_upload(job_id: str) -> str | None:
    """Task body. Returns the stored recording id, or None when the job was refused or not ours."""
    with db.transaction() as session:  # an atomic claim: a redelivered message does nothing
        claimed = session.execute(
            update(UploadJob)
            .where(UploadJob.id == job_id, UploadJob.status == "uploaded")
            .values(status="extracting")
        ).rowcount
        kind = session.scalar(select(UploadJob.archive_kind).where(UploadJob.id == job_id))
    if not claimed:
        log.warning("ingest %s skipped: the job is not waiting for extraction", job_id)
        return None
    paths = layout()
    upload = paths.uploads / f"{job_id}{archive_extension(kind)}"
    temp = paths.temp_for(job_id)
    try:
        rid = _extract_validate_store(job_id, upload, temp, kind, paths)
    except SignpipeError as exc:
        fail_job(job_id, exc)
        return None
    except Exception:
        log.exception("ingest %s crashed", job_id)
        fail_job(job_id, SignpipeError("Internal error while processing the archive"))
        return None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        upload.unlink(missing_ok=True)
    jobs.queue_attempt(rid, "uploaded", allowed=("queued",))
    return rid


def archive_extension(kind: str) -> str:
    return {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz"}[kind]


def _extract_validate_store(job_id: str, upload: Path, temp: Path, kind: str, paths: DataLayout) -> str:
    store = progress_store()
    base = new_progress(job_id, status="running", phase="extracting", archive_bytes=upload.stat().st_size)
    store.try_set(job_id, base)
    reporter = ThrottledReporter(store, job_id, base)
    root = archive.extract_archive(upload, temp, kind, archive_limits(), reporter)
    reporter.progress.update(phase="validating", percent=100.0)
    reporter.flush()
    rid = validate_recording(root)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    _store_recording(job_id, rid, root, paths.recording(rid), size)
    store.try_set(job_id, dict(reporter.progress, status="done", phase="done", recording_id=rid))
    return rid


def _store_recording(job_id: str, rid: str, root: Path, target: Path, size: int) -> None:
    """Reserve the id in the database first (unique key), then move the tree in one rename."""
    exists = RecordingExists(
        f"A recording named '{rid}' already exists; it was not overwritten", {"recording_id": rid}
    )
    if target.exists():
        raise exists
    try:
        with db.transaction() as session:
            session.add(Recording(id=rid, upload_job_id=job_id, status="queued", size_bytes=size))
            session.get(UploadJob, job_id).recording_id = rid
    except IntegrityError as exc:
        raise exists from exc
    try:
        os.rename(root, target)
    except OSError:
        with db.transaction() as session:
            session.delete(session.get(Recording, rid))
        raise
    with db.transaction() as session:
        job = session.get(UploadJob, job_id)
        job.status, job.finished_at = "validated", utcnow()


def fail_job(job_id: str, exc: SignpipeError) -> None:
    """Record the refusal in the database and in the live progress."""
    with db.transaction() as session:
        job = session.get(UploadJob, job_id)
        if job is not None:
            job.status, job.error, job.error_details, job.finished_at = (
                "failed",
                exc.message,
                exc.details,
                utcnow(),
            )
    store = progress_store()
    current = store.try_get(job_id) or new_progress(job_id)
    store.try_set(
        job_id, dict(current, status="error", phase="error", error_msg=exc.message, error_details=exc.details)
    )
