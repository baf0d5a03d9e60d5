"""The pipeline job: run the pipeline command on a stored recording and record each stage."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app

from .db import db
from .errors import PipelineFailed
from .models import Recording, initial_stages, iso, utcnow
from .pipeline import StageEvent, run_pipeline
from .storage import DataLayout

log = logging.getLogger(__name__)


def process_recording(rid: str) -> str | None:
    """Task body: returns the final status, or None when the recording was not waiting for us."""
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        if rec is None or rec.status != "queued":
            log.warning("pipeline %s skipped: recording is %s", rid, rec and rec.status)
            return None
        rec.status, rec.started_at, rec.stage_index, rec.stage = "processing", utcnow(), 0, None
        rec.stages, rec.error, rec.error_details = initial_stages(), None, None
    # The session is closed before the pipeline starts: a run lasts hours and must not hold a
    # database connection (or a SQLite write lock) while it waits on the subprocess.
    cfg = current_app.config
    paths = DataLayout(Path(cfg["DATA_DIR"]))
    try:
        run_pipeline(
            command=cfg["PIPELINE_COMMAND"],
            recording_dir=paths.recording(rid),
            output_dir=paths.results(rid),
            log_path=paths.logs(rid) / "pipeline.log",
            on_event=lambda event: record_stage(rid, event),
            timeout=cfg["PIPELINE_TIMEOUT"],
            env={"PIPELINE_STAGE_SECONDS": str(cfg["PIPELINE_STAGE_SECONDS"])},
        )
    except PipelineFailed as exc:
        return _finish(rid, "failed", exc.message, exc.details)
    except BaseException:
        _finish(rid, "failed", "The pipeline job was interrupted", None)
        raise
    return _finish(rid, "completed", None, None)


def record_stage(rid: str, event: StageEvent) -> None:
    """Apply one stage event from the pipeline's stdout to the recording's row."""
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        stages = [dict(s) for s in rec.stages]
        match = next((s for s in stages if s["name"] == event.stage), None)
        if match is None:
            stages.append(
                match := {"name": event.stage, "state": "pending", "started_at": None, "finished_at": None}
            )
        now = iso(utcnow())
        if event.event == "stage_start":
            match.update(state="running", started_at=now)
            rec.stage, rec.stage_index = event.stage, event.index
        else:
            match.update(state="done" if event.status in (None, "ok") else "failed", finished_at=now)
            match["elapsed"] = event.elapsed
        rec.stages = stages


def _finish(rid: str, status: str, error: str | None, details: dict | None) -> str:
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        rec.status, rec.error, rec.error_details, rec.finished_at = status, error, details, utcnow()
        if status == "failed":
            rec.stages = [dict(s, state="failed") if s["state"] == "running" else s for s in rec.stages]
    log.info("pipeline %s %s%s", rid, status, f": {error}" if error else "")
    return status
