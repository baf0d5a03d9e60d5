"""Recordings as JSON, and the download of their results."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request

from ..catalog import ListQuery, get_recording, recording_page
from ..results import results_zip
from ..storage import DataLayout, is_valid_recording_id

bp = Blueprint("recordings", __name__)


def get_recording_or_404(rid: str, load=get_recording) -> dict:
    """The recording's data; aborts with 404 for a malformed or unknown id."""
    recording = load(rid) if is_valid_recording_id(rid) else None
    if recording is None:
        abort(404, description=f"Unknown recording '{rid}'")
    return recording


def list_query() -> ListQuery:
    """page, per_page, status, sort and q from the query string; bad values fall back to defaults."""
    args = request.args
    return ListQuery.parse(
        args.get("page", 1, type=int),
        args.get("per_page", 50, type=int),
        args.get("status"),
        args.get("sort"),
        args.get("q"),
    )


@bp.get("/api/recordings")
def list_recordings():
    """A page of recordings, newest first, with the count per status."""
    result = recording_page(list_query(), current_app.config["STATUS_COUNTS_MAX_AGE"])
    return jsonify(
        recordings=result.items,
        total=result.total,
        page=result.page,
        per_page=result.per_page,
        pages=result.pages,
        counts=result.counts,
    )


@bp.get("/api/recordings/<rid>")
def show_recording(rid: str):
    """One recording with its per-stage states (polled by its page: see feeds.RecordingFeed)."""
    feed = current_app.extensions.get("recording_feed")
    if feed is None:
        return jsonify(get_recording_or_404(rid))
    return jsonify(get_recording_or_404(rid, lambda r: feed.get(r, get_recording)))


@bp.get("/download/<rid>")
def download(rid: str):
    """`<rid>_results.zip` with supports.csv and signs.csv of the last completed attempt, or 404."""
    recording = get_recording_or_404(rid)
    if not recording["results_available"]:
        abort(404, description=f"Results of '{rid}' are not ready (status: {recording['status']})")
    payload = results_zip(DataLayout(Path(current_app.config["DATA_DIR"])).results(rid))
    if payload is None:
        abort(404, description=f"Results of '{rid}' are missing on disk")
    return Response(
        payload,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{rid}_results.zip"'},
    )
