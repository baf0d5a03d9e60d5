"""Shared by the benchmark scripts that run the whole service: its processes, as the Procfile starts them.

Each run gets its own work directory, DATA_DIR, database, port and BROKER_KEY_PREFIX, so it
shares nothing with a test run or another benchmark but the Redis server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 120
STOP_TIMEOUT = 40  # Gunicorn's graceful_timeout is 30 s
# Settings of the service that must not leak in from the caller's environment.
CLEARED_ENV = (
    "CELERY_BROKER_URL",
    "APP_ENV",
    "PIPELINE_FAIL_AT",
    "PIPELINE_TIMEOUT",
    "PIPELINE_MAX_ATTEMPTS",
    "HEARTBEAT_SECONDS",
    "HEARTBEAT_TIMEOUT",
    "REAPER_SECONDS",
    "RESEND_AFTER_SECONDS",
    "EXTRACT_STALL_SECONDS",
    "MAX_UPLOAD_BYTES",
    "MAX_EXTRACT_BYTES",
    "MAX_ARCHIVE_ENTRIES",
    "MIN_FREE_BYTES",
    "TRUSTED_PROXY_COUNT",
    "UPLOAD_SWEEP_SECONDS",
)


@dataclass
class Stack:
    base: str
    logs: Path
    env: dict
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], **env) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy of the fd
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.procs.items() if p.poll() is not None]

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            out.append(f"--- {log} (last {min(lines, len(text))} of {len(text)} lines)")
            out.extend(text[-lines:])
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_TIMEOUT}s: SIGKILL", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"{name} (pid {proc.pid}) still there after SIGKILL", flush=True)


def stack_env(data_dir: Path, port: int, database_url: str, redis_url: str, prefix: str, **settings) -> dict:
    """The service's environment for one run; `settings` (strings) override the defaults here."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_WORKERS="4",
        WEB_THREADS="8",
        WEB_TIMEOUT="120",
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        BROKER_KEY_PREFIX=prefix,
        INGEST_CONCURRENCY="2",
        CELERY_CONCURRENCY="2",
        PIPELINE_COMMAND="./simulate_pipeline.sh",
        PIPELINE_STAGE_SECONDS="0.5",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def worker_argv(queue: str, name: str, concurrency: int) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "celery_app", "worker", "-Q", queue, "-n", f"{name}@%h",
        "--concurrency", str(concurrency), "--loglevel", "INFO",
    ]  # fmt: skip


def start_stack(
    stack: Stack,
    tag: str,
    deadline: float,
    workers: dict[str, tuple[str, int]] | None = None,
    beat: bool = True,
) -> None:
    """The Procfile's processes, then wait until they all answer.

    `workers` maps a process name to (queue, concurrency); by default one ingest and one
    pipeline worker with the concurrency from the environment.
    """
    stack.start("web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"])
    if workers is None:
        workers = {
            "ingest": ("ingest", int(stack.env["INGEST_CONCURRENCY"])),
            "pipeline": ("pipeline", int(stack.env["CELERY_CONCURRENCY"])),
        }
    for name, (queue, concurrency) in workers.items():
        stack.start(name, worker_argv(queue, f"{name}-{tag}", concurrency))
    if beat:
        stack.start("beat", [str(BIN / "celery"), "-A", "celery_app", "beat", "--loglevel", "INFO"])
    until = min(deadline, time.monotonic() + START_TIMEOUT)
    last = "no answer"
    session = requests.Session()
    session.trust_env = False
    while True:
        if stack.dead():
            raise RuntimeError(f"stack process exited during start-up: {stack.dead()}")
        ready = all(b" ready." in (stack.logs / f"{name}.log").read_bytes() for name in workers)
        try:
            resp = session.get(stack.base + "/healthz", timeout=5)
            last = f"{resp.status_code} {resp.text[:300]}"
            if ready and resp.status_code == 200:
                return
        except requests.RequestException as exc:
            last = repr(exc)
        if time.monotonic() > until:
            raise RuntimeError(f"stack not ready within {START_TIMEOUT}s (last /healthz: {last})")
        time.sleep(0.3)


def redis_cleanup(client: redis.Redis, prefix: str, job_ids: set[str]) -> int:
    """Delete this run's keys only: its broker prefix and the progress keys of its own jobs."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    keys += [f"extraction:{job_id}" for job_id in sorted(job_ids)]
    removed = 0
    for i in range(0, len(keys), 500):
        removed += client.delete(*keys[i : i + 500])
    return removed
