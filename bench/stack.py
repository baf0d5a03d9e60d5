"""Shared by the benchmark scripts that run the whole service: its processes, as the Procfile starts them.

Each run gets its own work directory, DATA_DIR, database, port and BROKER_KEY_PREFIX, so it
shares nothing with a test run or another benchmark but the Redis server (and, with
--database-url, the PostgreSQL server, where it gets a schema of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests
from report import free_port
from sqlalchemy import create_engine, text

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


class GlobalTimeout(Exception):
    """The whole benchmark ran out of time (--timeout): raised by the SIGALRM backstop."""


class RunFailed(Exception):
    """One run of a benchmark failed; the benchmark records it and goes on with the next."""


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

    def logged_ready(self, names) -> bool:
        """Each named Celery worker has logged `ready.`."""
        return all(b" ready." in (self.logs / f"{name}.log").read_bytes() for name in names)

    def stop(self, names: list[str] | None = None) -> list[str]:
        """Stop the named processes (all when None): SIGTERM to each one's process group, SIGKILL
        after STOP_TIMEOUT. The ones that exited leave `procs`, so dead() no longer counts them.
        Returns the names that needed SIGKILL."""
        procs = {name: proc for name, proc in self.procs.items() if names is None or name in names}
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        killed = []
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(name)
                print(f"{name} did not stop within {STOP_TIMEOUT}s: SIGKILL", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"{name} (pid {proc.pid}) still there after SIGKILL", flush=True)
            if proc.poll() is not None:
                del self.procs[name]
        return killed


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
        # Not the service's defaults: its README and Procfile have CELERY_CONCURRENCY=1, this is 2
        # (what load.py measures with). Every script that starts Celery workers sets the values it
        # reports itself (load.py and orchestration.py both; scale_out.py INGEST_CONCURRENCY, and
        # --concurrency 1 on its pipeline workers' command line), so these two only matter to a
        # new caller of start_stack that sets neither.
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
    require_health: bool = True,
) -> None:
    """The Procfile's processes, then wait until they all answer.

    `workers` maps a process name to (queue, concurrency); by default one ingest and one
    pipeline worker with the concurrency from the environment. Ready means: each worker has
    logged `ready.` and the web process answers 200 on /healthz (every check passes, which
    needs a consumer on each queue), or, with `require_health` False, on /livez (it answers).
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
    probe = "/healthz" if require_health else "/livez"
    until = min(deadline, time.monotonic() + START_TIMEOUT)
    last = "no answer"
    session = requests.Session()
    session.trust_env = False
    while True:
        if stack.dead():
            raise RuntimeError(f"stack process exited during start-up: {stack.dead()}")
        ready = stack.logged_ready(workers)
        try:
            resp = session.get(stack.base + probe, timeout=5)
            last = f"{resp.status_code} {resp.text[:300]}"
            if ready and resp.status_code == 200:
                return
        except requests.RequestException as exc:
            last = repr(exc)
        if time.monotonic() > until:
            raise RuntimeError(f"stack not ready within {START_TIMEOUT}s (last {probe}: {last})")
        time.sleep(0.3)


def redis_cleanup(client: redis.Redis, prefix: str, job_ids: set[str]) -> int:
    """Delete this run's keys only: its broker prefix and the progress keys of its own jobs."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    keys += [f"extraction:{job_id}" for job_id in sorted(job_ids)]
    removed = 0
    for i in range(0, len(keys), 500):
        removed += client.delete(*keys[i : i + 500])
    return removed


def report_redis_cleanup(client: redis.Redis, prefix: str, job_ids: set[str]) -> None:
    """redis_cleanup, and what it did, on stdout; a Redis error is reported, not raised."""
    try:
        removed = redis_cleanup(client, prefix, job_ids)
        print(
            f"redis cleanup: deleted {removed} keys ({prefix}* and extraction:<job> of {len(job_ids)} jobs)"
        )
    except redis.RedisError as exc:
        print(f"redis cleanup failed: {exc}", file=sys.stderr)


def redis_client(url: str) -> redis.Redis:
    """A client on the run's Redis DB, checked to answer."""
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    client.ping()
    return client


# --------------------------------------------------------------------------- the run's database


class RunDatabase:
    """The stack's database: SQLite in DATA_DIR (no URL); with a PostgreSQL URL (--database-url), a
    throw-away schema `<schema_prefix><tag>` on that server, created by create() and dropped, with
    all it holds, by drop(); any other URL is used as it is.

    `url` is what the stack gets as DATABASE_URL: for PostgreSQL the given URL with the libpq option
    `-c search_path=<schema>`, so the service creates its tables in the schema and nothing in
    `public`. `engine` (after create()) reads the same database.
    """

    def __init__(self, data_dir: Path, url: str | None, schema_prefix: str, tag: str):
        from signpipe.db import normalize_url  # importable once the script has put ROOT on sys.path

        self.schema = None
        self.engine = None
        if url is None:
            self.url, self.label = f"sqlite:///{data_dir / 'signpipe.db'}", "SQLite in DATA_DIR"
        elif normalize_url(url).startswith("postgresql"):
            self.schema = f"{schema_prefix}{tag}"
            self.url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{self.schema}"
            self.label = "PostgreSQL from --database-url (a throw-away schema)"
        else:
            self.url, self.label = url, "database from --database-url"
        self._engine_url = normalize_url(self.url)
        self._admin_url = normalize_url(url) if self.schema else None

    def _admin(self, statement: str) -> None:
        admin = create_engine(self._admin_url)
        try:
            with admin.begin() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()

    def create(self) -> None:
        if self.schema:
            self._admin(f'CREATE SCHEMA "{self.schema}"')
        self.engine = create_engine(self._engine_url)

    def drop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.schema:
            self._admin(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def drop_reported(self) -> None:
        """drop(), for a finally block: a failure is reported, not raised."""
        try:
            self.drop()
        except Exception as exc:
            print(f"database clean-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def epoch(value: datetime | str | None) -> float | None:
    """A database or JSON timestamp as Unix time; naive values are UTC (SQLite)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# --------------------------------------------------------------------------- the script around a run


def work_dirs(parent: str | None, name: str) -> tuple[Path, Path, Path]:
    """A fresh work directory `<name>-bench-…` under `parent` (default: the temp directory), with
    the run's DATA_DIR and the stack's logs in it: (work, data, logs)."""
    base = Path(parent) if parent else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-bench-", dir=base))
    data_dir, logs = work / "data", work / "logs"
    data_dir.mkdir()
    logs.mkdir()
    return work, data_dir, logs


def tidy_work(work: Path, keep: bool, passed: bool, junk: str | None = None) -> None:
    """At the end of a run: keep the work directory (--keep), remove it (passed), or remove the
    data (and files matching the glob `junk`) and keep the stack's logs for the report."""
    if keep:
        print(f"kept {work}")
    elif passed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        shutil.rmtree(work / "data", ignore_errors=True)
        for path in work.glob(junk) if junk else ():
            path.unlink()
        print(f"logs kept in {work / 'logs'}", flush=True)


def print_logs(work: Path | None, lines: int = 40) -> None:
    """The last lines of each of the stack's logs, when a run could not get to its end."""
    logs = (work or Path("?")) / "logs"
    if logs.is_dir():
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))


def install_timeout(timeout: float, slack: int = 30) -> None:
    """SIGTERM exits through the finally blocks (code 143); SIGALRM raises GlobalTimeout `slack`
    seconds after `timeout`, a backstop for a run that does not stop on its own before."""

    def on_alarm(*_):
        raise GlobalTimeout(f"global timeout of {timeout:.0f} s (hard stop)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(timeout) + slack)


def gunicorn_version() -> str:
    out = subprocess.run([str(BIN / "gunicorn"), "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip()


def hide_database_url(argv: list[str]) -> list[str]:
    """The command line as shown in the report, without the database URL."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--database-url":
            shown.append("--database-url …")
            skip = True
        elif arg.startswith("--database-url="):
            shown.append("--database-url …")
        else:
            shown.append(arg if " " not in arg else repr(arg))
    return shown


def add_run_arguments(parser: argparse.ArgumentParser, redis_url: str, timeout: float) -> None:
    """The options every whole-service benchmark takes."""
    parser.add_argument("--timeout", type=float, default=timeout, help="global timeout, seconds")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the run's DATA_DIR")
    parser.add_argument("--redis-url", default=redis_url)
    parser.add_argument("--workdir", default=None, help="parent of the work directory (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-write", action="store_true", help="print the table only")


@dataclass
class RunPlace:
    """Where one benchmark run lives: its folders, names, database, Redis client, port and stack."""

    work: Path
    data_dir: Path
    logs: Path
    tag: str
    prefix: str
    db: RunDatabase
    client: redis.Redis
    port: int
    stack: Stack


def new_run(args: argparse.Namespace, name: str, key: str, database=RunDatabase, **settings) -> RunPlace:
    """A fresh work directory `<name>-bench-…`, BROKER_KEY_PREFIX `<key>-<tag>:`, a database
    (`database`, a RunDatabase class) with schema prefix `bench_<key>_`, and the stack's
    environment with `settings` (strings) over stack_env's defaults. Nothing is started yet."""
    work, data_dir, logs = work_dirs(args.workdir, name)
    tag = uuid.uuid4().hex[:8]
    prefix = f"{key}-{tag}:"
    db = database(data_dir, args.database_url, f"bench_{key}_", tag)
    client = redis_client(args.redis_url)
    port = free_port()
    env = stack_env(data_dir, port, db.url, args.redis_url, prefix, **settings)
    stack = Stack(f"http://127.0.0.1:{port}", logs, env)
    print(f"work directory {work}; Redis {args.redis_url} prefix {prefix}; port {port}", flush=True)
    return RunPlace(work, data_dir, logs, tag, prefix, db, client, port, stack)
