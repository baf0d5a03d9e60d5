"""The two pages people use: upload, and the status of every recording."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .. import monitor
from ..catalog import active_recordings, active_uploads, recent_failed_uploads, recording_page
from ..pipeline import STAGES
from .recordings import get_recording_or_404, list_query

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Upload page: drag & drop, upload progress, extraction progress, validation report."""
    return render_template("index.html", max_bytes=current_app.config["MAX_UPLOAD_BYTES"])


@bp.get("/status")
def status():
    """Every recording, newest first, one page at a time; `?partial=1` returns just the table."""
    query = list_query()
    result = recording_page(query, current_app.config["STATUS_COUNTS_MAX_AGE"])
    template = "_status_table.html" if request.args.get("partial") else "status.html"
    return render_template(
        template,
        page=result,
        query=query,
        status_filter=query.status,
        running=active_recordings() if query.page == 1 else [],
        stages=STAGES,
        active=active_uploads(),
        refused=recent_failed_uploads(),
        service=service_summary(),
    )


def service_summary() -> dict | None:
    """Workers online and queue lengths for the status page; None when Redis does not answer."""
    try:
        return {"workers": monitor.workers_by_queue(wait=False), "queues": monitor.queue_lengths()}
    except Exception:
        return None


@bp.get("/recordings/<rid>")
def recording(rid: str):
    """One recording: its attempts, stage times, live log and actions."""
    return render_template("recording.html", rec=get_recording_or_404(rid), stages=STAGES)
