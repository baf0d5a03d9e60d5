"""A hanging pipeline, a failing pipeline and a web worker killed mid-upload, on real processes."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest
import requests
from live import poll, script_processes, upload, wait_for_recording

pytestmark = pytest.mark.integration
STACK_ENV = {
    "PIPELINE_COMMAND": str(Path(__file__).with_name("fault_pipeline.sh")),
    "PIPELINE_TIMEOUT": "4",
    "PIPELINE_STAGE_SECONDS": "0.2",
    "REAPER_SECONDS": "1",
    "ORPHAN_AGE_SECONDS": "3",
}


def hang_processes(rid: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "fault_pipeline.sh" in cmdline and rid in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def test_a_pipeline_hanging_past_the_timeout_fails_and_leaves_no_process(stack, tmp_path):
    rid = upload(stack, tmp_path, f"HANG_{stack.base_url[-5:]}")
    final = wait_for_recording(stack, rid, timeout=40)
    assert final["status"] == "failed" and "timed out" in final["error"], final
    assert final["attempts"][-1]["status"] == "failed" and len(final["attempts"]) == 1
    assert hang_processes(rid) == []
    assert not any(
        p.info["cmdline"] == ["sleep", "600"] and p.ppid() == 1 for p in psutil.process_iter(["cmdline"])
    )


def test_a_pipeline_exiting_3_at_stage_5_fails_with_exit_code_stage_and_log_tail(stack, tmp_path):
    rid = upload(stack, tmp_path, f"EXIT3_{stack.base_url[-5:]}")
    final = wait_for_recording(stack, rid, timeout=40)
    assert final["status"] == "failed"
    assert final["error_details"]["exit_code"] == 3 and final["error_details"]["stage"] == "s4_classification"
    assert final["stage_index"] == 5
    assert any("simulated failure" in line for line in final["error_details"]["log_tail"])
    assert script_processes(rid) == []


def test_a_web_worker_killed_mid_upload_is_respawned_and_its_partial_file_swept(stack):
    host, port = stack.base_url.removeprefix("http://").split(":")
    uploads = stack.data_dir / "uploads"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\nPK\x03\x04'
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 50000000\r\n\r\n" + head + bytes(2_000_000)
        )
        deadline = time.monotonic() + 10
        while not list(uploads.glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        partial = list(uploads.glob("*.part"))
        assert partial, "the upload should be in progress"
        handler = next(
            p for p in psutil.Process(stack.procs["web"].pid).children() if _has_open(p, partial[0])
        )
        os.kill(handler.pid, signal.SIGKILL)
    poll(stack, "/healthz", ("ok",), timeout=30)  # Gunicorn started a new worker
    deadline = time.monotonic() + 20
    while list(uploads.glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert list(uploads.glob("*.part")) == [], "the reaper removes the orphaned partial upload"
    assert not list((stack.data_dir / "recordings").glob("*big*"))


def _has_open(proc: psutil.Process, path: Path) -> bool:
    try:
        return any(Path(f.path) == path for f in proc.open_files())
    except psutil.Error:
        return False


def test_after_these_faults_the_service_is_healthy_again(stack):
    health = requests.get(stack.url("/healthz"), timeout=5)
    assert health.status_code == 200, health.text
