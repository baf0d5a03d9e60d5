"""The pipeline log of a recording's attempt: a live tail for the page, the whole file to download."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_file

from ..storage import DataLayout
from .recordings import get_recording_or_404

bp = Blueprint("logs", __name__)
TAIL_BYTES = 64 * 1024


def log_path(rid: str) -> Path:
    """The log of `?attempt=N` (default: the current attempt); aborts with 404 when there is none."""
    recording = get_recording_or_404(rid)
    number = request.args.get("attempt", recording["attempt"], type=int)
    path = DataLayout(Path(current_app.config["DATA_DIR"])).logs(rid) / f"pipeline-{number}.log"
    if not path.is_file():
        abort(404, description=f"No log for attempt {number} of '{rid}'")
    return path


@bp.get("/api/recordings/<rid>/log")
def tail(rid: str):
    """The last lines of the log (at most `lines`, 200 by default) as plain text."""
    path = log_path(rid)
    lines = min(request.args.get("lines", 200, type=int), 2000)
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        text = fh.read().decode("utf-8", "replace")
    return Response("\n".join(text.splitlines()[-lines:]) + "\n", mimetype="text/plain")


@bp.get("/recordings/<rid>/log")
def download(rid: str):
    """The whole log of an attempt, as a file."""
    path = log_path(rid)
    return send_file(path, mimetype="text/plain", as_attachment=True, download_name=f"{rid}-{path.name}")
