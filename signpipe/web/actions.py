"""What a user can do to a recording: cancel, retry, re-run, delete (JSON API for the pages)."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, current_app, jsonify
from sqlalchemy import delete as sql_delete

from .. import jobs
from ..db import db
from ..models import Attempt, Recording
from ..storage import DataLayout, is_valid_recording_id

bp = Blueprint("actions", __name__, url_prefix="/api/recordings")


def checked_id(rid: str) -> str:
    """The id, or ActionRefused 404 for one that cannot name a recording."""
    if not is_valid_recording_id(rid):
        raise jobs.ActionRefused(f"Unknown recording '{rid}'", 404)
    return rid


@bp.post("/<rid>/cancel")
def cancel(rid: str):
    """Cancel the current attempt: 202 with `cancelled` (was queued) or `cancelling` (running)."""
    return jsonify(recording_id=rid, status=jobs.cancel(checked_id(rid))), 202


@bp.post("/<rid>/retry")
def retry(rid: str):
    """A new attempt for a failed or cancelled recording."""
    number = jobs.queue_attempt(checked_id(rid), "retry requested", allowed=("failed", "cancelled"))
    return jsonify(recording_id=rid, status="queued", attempt=number), 202


@bp.post("/<rid>/rerun")
def rerun(rid: str):
    """A new attempt for a completed recording; its results stay until the new ones are ready."""
    number = jobs.queue_attempt(checked_id(rid), "re-run requested", allowed=("completed",))
    return jsonify(recording_id=rid, status="queued", attempt=number), 202


@bp.delete("/<rid>")
def delete(rid: str):
    """Delete the recording's files, results and rows; a running attempt is stopped first."""
    with db.transaction() as session:
        if session.get(Recording, checked_id(rid)) is None:
            raise jobs.ActionRefused(f"Unknown recording '{rid}'", 404)
        # The running attempt's monitor sees its row gone within a second and stops the script.
        session.execute(sql_delete(Attempt).where(Attempt.recording_id == rid))
        session.execute(sql_delete(Recording).where(Recording.id == rid))
    shutil.rmtree(DataLayout(Path(current_app.config["DATA_DIR"])).recording(rid), ignore_errors=True)
    return jsonify(recording_id=rid, status="deleted"), 200
