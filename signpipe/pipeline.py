"""Runs the pipeline command and follows its stdout contract.

Contract (see README): besides free-form log lines, the command prints one line per stage
event, `PIPELINE event=stage_start stage=<name> index=<k> total=<n>` and
`PIPELINE event=stage_end stage=<name> index=<k> total=<n> status=ok elapsed=<seconds>`,
with k counted from 1, and exits 0 only when every stage succeeded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import PipelineFailed, PipelineStopped

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
MONITOR_SECONDS = 1.0
PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


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


class _Monitor(threading.Thread):
    """Watches a running command: its time limit, and `check()` (heartbeat, cancellation).

    `check()` runs every MONITOR_SECONDS and returns a reason to stop, or None; stopping ends
    the command's whole process group.
    """

    def __init__(self, proc: subprocess.Popen, timeout: float, check: Callable[[], str | None]):
        super().__init__(daemon=True)
        self.proc = proc
        self.deadline = time.monotonic() + timeout
        self.check = check
        self.stopped: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(MONITOR_SECONDS):
            reason = "timeout" if time.monotonic() >= self.deadline else self._checked()
            if reason:
                self.stopped = reason
                terminate_group(self.proc)
                return

    def _checked(self) -> str | None:
        try:
            return self.check()
        except Exception:  # a failed heartbeat must not kill the run; the reaper judges staleness
            log.warning("pipeline monitor check failed", exc_info=True)
            return None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(timeout=5)


def terminate_group(proc: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """TERM the command's process group, then KILL what is still running after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader if it has exited
            if not group_alive(proc.pid):
                return
            time.sleep(0.05)


def _load_libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # not glibc/Linux: the script then does not die with a killed worker
        return None


# Looked up once, here: find_library runs `ldconfig -p`, and a forked child of a threaded worker
# must not start other programs or take locks before exec (it cost every run ~14 ms as well).
_LIBC = _load_libc()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the worker process that started it dies."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_group(pgid: int) -> bool:
    """SIGKILL what is left of a process group (a lost attempt's); True if anything was there."""
    if not group_alive(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting for a reaper do not count)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run_pipeline(
    command: str,
    recording_dir: Path,
    output_dir: Path,
    log_path: Path,
    on_event: Callable[[StageEvent], None],
    timeout: float,
    env: dict | None = None,
    check: Callable[[], str | None] = lambda: None,
    on_start: Callable[[int], None] = lambda _pgid: None,
) -> None:
    """Run `command <recording_dir> <output_dir>`; return on success, raise PipelineFailed.

    The command runs in its own process group, which is gone when this returns or raises; if
    this process is killed, the kernel kills the command too (and the reaper its group).
    """
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
            preexec_fn=_die_with_parent,
            env={**os.environ, **(env or {})},
            text=True,
            bufsize=1,
            errors="replace",
        )
    except OSError as exc:
        raise PipelineFailed(f"The pipeline command could not start: {exc}", {"command": argv}) from exc
    on_start(proc.pid)
    try:
        with _Monitor(proc, timeout, check) as monitor, open(log_path, "a", encoding="utf-8") as log:
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
        terminate_group(proc)  # the script may have left children behind, even after exiting
    _raise_on_failure(code, monitor.stopped, timeout, current, tail, output_dir)


def _raise_on_failure(code, stopped, timeout, stage, tail, output_dir) -> None:
    details = {"exit_code": code, "stage": stage, "log_tail": list(tail)}
    if stopped == "timeout":
        details["reason"] = "timeout"
        raise PipelineFailed(f"The pipeline timed out after {timeout:g} s in stage {stage}", details)
    if stopped:
        raise PipelineStopped(
            f"The pipeline was stopped ({stopped}) in stage {stage}", dict(details, reason=stopped)
        )
    if code < 0:
        details["signal"] = signal.Signals(-code).name
        raise PipelineFailed(f"The pipeline was killed by {details['signal']} in stage {stage}", details)
    if code != 0:
        raise PipelineFailed(f"The pipeline failed in stage {stage} (exit code {code})", details)
    missing = [name for name, path in result_paths(output_dir).items() if not path.is_file()]
    if missing:
        details["missing_results"] = missing
        raise PipelineFailed(f"The pipeline finished without writing {', '.join(missing)}", details)
