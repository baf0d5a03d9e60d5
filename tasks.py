"""Celery tasks: thin wrappers that hand a job id to the domain package."""

from celery import shared_task

from signpipe.extensions import INGEST_TASK, PIPELINE_TASK, REAPER_TASK, SWEEP_TASK
from signpipe.ingest import ingest_upload
from signpipe.processing import process_recording
from signpipe.reaper import reap as reap_jobs
from signpipe.resumable import sweep_expired


@shared_task(name=INGEST_TASK)
def ingest(job_id: str) -> str | None:
    """Extract, validate and store an uploaded archive; queues the pipeline when valid."""
    return ingest_upload(job_id)


@shared_task(bind=True, name=PIPELINE_TASK)
def run_pipeline(self, recording_id: str, token: str) -> str | None:
    """Run one attempt of the 8-stage pipeline on a stored recording."""
    return process_recording(recording_id, token, self.request.hostname or "")


@shared_task(name=SWEEP_TASK)
def sweep_uploads() -> int:
    """Delete resumable uploads abandoned past their expiry (queued periodically by beat)."""
    return sweep_expired()


@shared_task(name=REAPER_TASK)
def reap() -> dict:
    """Recover lost attempts and messages, stalled extractions and orphaned files (beat)."""
    return reap_jobs()
