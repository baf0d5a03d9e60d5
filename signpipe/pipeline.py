"""Runs the pipeline command and follows its stdout contract.

Contract (see README): besides free-form log lines, the command prints one line per stage
event, `PIPELINE event=stage_start stage=<name> index=<k> total=<n>` and
`PIPELINE event=stage_end stage=<name> index=<k> total=<n> status=ok elapsed=<seconds>`,
with k counted from 1, and exits 0 only when every stage succeeded.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import PipelineFailed

STAGES = (
    "s0_detection",
    "s1_small_sign_filter",
    "s2_tracking",
    "s3_small_track_filter",
    "s4_classification",
    "s5_frames_gps_coordinates_extraction",
    "s6_localization",
    "s7_export_csv",
)
RESULT_FILES = ("supports.csv", "signs.csv")
TAIL_LINES = 50
KILL_GRACE_SECONDS = 10


@dataclass(frozen=True)
class StageEvent:
    """One machine-readable line of the pipeline's stdout."""

    event: str
    stage: str
    index: int
    total: int
    status: str | None = None
    elapsed: float | None = None


def parse_line(line: str) -> StageEvent | None:
    """The stage event on a stdout line, or None for an ordinary log line."""
    if not line.startswith("PIPELINE "):
        return None
    fields = dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)
    try:
        event = StageEvent(
            event=fields["event"],
            stage=fields["stage"],
            index=int(fields["index"]),
            total=int(fields.get("total", len(STAGES))),
            status=fields.get("status"),
            elapsed=float(fields["elapsed"]) if "elapsed" in fields else None,
        )
    except (KeyError, ValueError):
        return None
    return event if event.event in ("stage_start", "stage_end") else None


def result_paths(output_dir: Path) -> dict[str, Path]:
    """Where the final stage leaves the CSVs a user downloads."""
    return {name: output_dir / STAGES[-1] / name for name in RESULT_FILES}


class _Watchdog:
    """Ends the command's whole process group once the time limit passes."""

    def __init__(self, proc: subprocess.Popen, timeout: float):
        self.proc = proc
        self.fired = False
        self.timer = threading.Timer(timeout, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        terminate_group(self.proc)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


def terminate_group(proc: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """TERM the process group, then KILL it if it has not gone after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_pipeline(
    command: str,
    recording_dir: Path,
    output_dir: Path,
    log_path: Path,
    on_event: Callable[[StageEvent], None],
    timeout: float,
    env: dict | None = None,
) -> None:
    """Run `command <recording_dir> <output_dir>`; return on success, raise PipelineFailed."""
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = shlex.split(command) + [str(recording_dir), str(output_dir)]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    current: str | None = None
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            text=True,
            bufsize=1,
            errors="replace",
        )
    except OSError as exc:
        raise PipelineFailed(f"The pipeline command could not start: {exc}", {"command": argv}) from exc
    try:
        with _Watchdog(proc, timeout) as watchdog, open(log_path, "a", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n"))
                event = parse_line(line)
                if event is not None:
                    current = event.stage if event.event == "stage_start" else current
                    on_event(event)
            code = proc.wait()
    finally:
        if proc.poll() is None:
            terminate_group(proc)
    _raise_on_failure(code, watchdog.fired, timeout, current, tail, output_dir)


def _raise_on_failure(code, timed_out, timeout, stage, tail, output_dir) -> None:
    details = {"exit_code": code, "stage": stage, "log_tail": list(tail)}
    if timed_out:
        raise PipelineFailed(f"The pipeline timed out after {timeout:g} s in stage {stage}", details)
    if code < 0:
        details["signal"] = signal.Signals(-code).name
        raise PipelineFailed(f"The pipeline was killed by {details['signal']} in stage {stage}", details)
    if code != 0:
        raise PipelineFailed(f"The pipeline failed in stage {stage} (exit code {code})", details)
    missing = [name for name, path in result_paths(output_dir).items() if not path.is_file()]
    if missing:
        details["missing_results"] = missing
        raise PipelineFailed(f"The pipeline finished without writing {', '.join(missing)}", details)
