"""Celery tasks: thin wrappers that hand a job id to the domain package."""

from celery import shared_task

from signpipe.extensions import INGEST_TASK, PIPELINE_TASK, SWEEP_TASK
from signpipe.ingest import ingest_upload
from signpipe.processing import process_recording
from signpipe.resumable import sweep_expired


@shared_task(name=INGEST_TASK)
def ingest(job_id: str) -> str | None:
    """Extract, validate and store an uploaded archive; queues the pipeline when valid."""
    return ingest_upload(job_id)


@shared_task(name=PIPELINE_TASK)
def run_pipeline(recording_id: str) -> str | None:
    """Run the 8-stage pipeline on a stored recording."""
    return process_recording(recording_id)


@shared_task(name=SWEEP_TASK)
def sweep_uploads() -> int:
    """Delete resumable uploads abandoned past their expiry (queued periodically by beat)."""
    return sweep_expired()
