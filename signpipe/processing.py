"""The pipeline job: run one attempt of the pipeline on a stored recording, stage by stage."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from flask import current_app

from . import jobs
from .db import db
from .errors import PipelineFailed, PipelineStopped
from .models import Recording, iso, utcnow
from .pipeline import StageEvent, run_pipeline
from .storage import DataLayout

log = logging.getLogger(__name__)


def process_recording(rid: str, token: str, worker: str = "") -> str | None:
    """Task body: returns the attempt's outcome, or None when this message may not run it."""
    attempt = jobs.claim(rid, token, worker)
    if attempt is None:
        log.warning("recording %s: message for attempt token %s skipped (not queued any more)", rid, token)
        return None
    # Every database session is closed before the pipeline starts: a run lasts hours and must
    # not hold a connection (or a SQLite write lock) while it waits on the subprocess.
    cfg = current_app.config
    paths = DataLayout(Path(cfg["DATA_DIR"]))
    output = paths.recording(rid) / f"results.attempt-{attempt.number}"
    shutil.rmtree(output, ignore_errors=True)
    try:
        run_pipeline(
            command=cfg["PIPELINE_COMMAND"],
            recording_dir=paths.recording(rid),
            output_dir=output,
            log_path=paths.logs(rid) / f"pipeline-{attempt.number}.log",
            on_event=lambda event: record_stage(rid, attempt.number, event),
            timeout=cfg["PIPELINE_TIMEOUT"],
            env={"PIPELINE_STAGE_SECONDS": str(cfg["PIPELINE_STAGE_SECONDS"])},
            check=Heartbeat(token, cfg["HEARTBEAT_SECONDS"]),
            on_start=lambda pgid: jobs.record_process_group(token, pgid),
        )
    except PipelineStopped as exc:
        shutil.rmtree(output, ignore_errors=True)
        reason = exc.details.get("reason")
        outcome = "cancelled" if reason in ("cancelled", "deleted") else "lost"
        jobs.finish(
            rid, token, outcome, "Cancelled by a user" if outcome == "cancelled" else exc.message, exc.details
        )
        return outcome
    except PipelineFailed as exc:
        shutil.rmtree(output, ignore_errors=True)
        jobs.finish(rid, token, "failed", exc.message, exc.details)
        return "failed"
    except BaseException:
        jobs.finish(rid, token, "failed", "The pipeline job was interrupted")
        raise
    publish_results(paths.results(rid), output)
    if not jobs.finish(rid, token, "completed"):
        if not jobs.recording_exists(rid):  # deleted while it ran
            shutil.rmtree(paths.recording(rid), ignore_errors=True)
        return None
    return "completed"


class Heartbeat:
    """The pipeline monitor's check: a heartbeat every `interval` s, a stop request at once."""

    def __init__(self, token: str, interval: float):
        self.token = token
        self.interval = interval
        self.last = time.monotonic()

    def __call__(self) -> str | None:
        if time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            return jobs.heartbeat(self.token)
        with db.session() as session:
            return jobs.stop_reason(session, self.token)


def publish_results(final: Path, fresh: Path) -> None:
    """Replace the previous attempt's results only now that the new ones are complete."""
    previous = final.with_name("results.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    fresh.rename(final)
    shutil.rmtree(previous, ignore_errors=True)


def record_stage(rid: str, number: int, event: StageEvent) -> None:
    """Apply one stage event from the pipeline's stdout to the recording, if still its attempt."""
    with db.transaction() as session:
        rec = session.get(Recording, rid)
        if rec is None or rec.attempt != number:
            return
        stages = [dict(s) for s in rec.stages]
        match = next((s for s in stages if s["name"] == event.stage), None)
        if match is None:
            match = {"name": event.stage, "state": "pending", "started_at": None, "finished_at": None}
            stages.append(match)
        now = iso(utcnow())
        if event.event == "stage_start":
            match.update(state="running", started_at=now)
            rec.stage, rec.stage_index = event.stage, event.index
        else:
            match.update(state="done" if event.status in (None, "ok") else "failed", finished_at=now)
            match["elapsed"] = event.elapsed
        rec.stages = stages
