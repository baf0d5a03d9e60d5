"""Upload an archive and follow its extraction."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request

from ..db import db
from ..errors import ServiceUnavailable
from ..ingest import register_upload
from ..models import UploadJob
from ..progress import get_extraction_progress
from ..storage import DataLayout
from ..uploads import check_declared_size, receive_multipart

bp = Blueprint("uploads", __name__)
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Where Redis has forgotten a job (TTL, restart), its row says how it ended.
JOB_TO_PROGRESS = {"uploaded": "queued", "extracting": "running", "validated": "done", "failed": "error"}


@bp.post("/upload")
def upload():
    """Stream one archive to disk, record the job and queue its ingest; 202 with the job id."""
    cfg = current_app.config
    uploads_dir = DataLayout(Path(cfg["DATA_DIR"])).uploads
    check_declared_size(request.content_length, cfg["MAX_UPLOAD_BYTES"], uploads_dir)
    job_id = uuid.uuid4().hex
    received = receive_multipart(
        request.stream, request.content_type or "", uploads_dir, job_id, cfg["MAX_UPLOAD_BYTES"]
    )
    register_upload(job_id, received)
    return jsonify(job_id=job_id, status_url=f"/extract_status/{job_id}"), 202


@bp.get("/extract_status/<job_id>")
def extract_status(job_id: str):
    """Live progress of one upload job (from Redis, or from its row once Redis forgot it)."""
    if not JOB_ID_RE.match(job_id):
        abort(404, description="Unknown job id")
    feed = current_app.extensions.get("progress_feed")
    try:
        progress = feed.get(job_id) if feed is not None else get_extraction_progress(job_id)
    except Exception as exc:
        raise ServiceUnavailable("Progress store (Redis) is unavailable") from exc
    if progress is None:
        progress = _progress_from_row(job_id)
    return jsonify(
        job_id=job_id,
        status=progress["status"],
        phase=progress.get("phase"),
        percent=progress.get("percent", 0.0),
        total_files=progress.get("total_files", 0),
        extracted_files=progress.get("extracted_files", 0),
        extract_size=progress.get("extract_size", 0),
        archive_bytes=progress.get("archive_bytes", 0),
        recording_id=progress.get("recording_id"),
        message=progress.get("error_msg"),
        details=progress.get("error_details"),
    )


def _progress_from_row(job_id: str) -> dict:
    """Progress rebuilt from the job's row; aborts with 404 when there is no such job."""
    with db.session() as session:
        job = session.get(UploadJob, job_id)
        if job is None:
            abort(404, description="Unknown job id")
        status = JOB_TO_PROGRESS.get(job.status, "error")
        return {
            "status": status,
            "phase": status,
            "percent": 100.0 if status == "done" else 0.0,
            "recording_id": job.recording_id,
            "error_msg": job.error,
            "error_details": job.error_details,
        }
