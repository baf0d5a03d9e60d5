"""Following jobs on the live stack over HTTP, shared by the end-to-end test files."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
import requests
from factories import make_zip, recording_files


def poll(stack, path: str, final: tuple[str, ...], timeout: float) -> dict:
    """GET `path` until its `status` is one of `final`; fails with the stack's logs otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(stack.url(path), timeout=5).json()
        if body.get("status") in final:
            return body
        time.sleep(0.2)
    pytest.fail(f"{path} did not reach {final} in {timeout} s\n{stack.log_tail()}")


def follow_extraction(stack, job_id: str, timeout: float = 60) -> dict:
    return poll(stack, f"/extract_status/{job_id}", ("done", "error"), timeout)


def wait_for_recording(stack, rid: str, timeout: float = 90) -> dict:
    return poll(stack, f"/api/recordings/{rid}", ("completed", "failed"), timeout)


def upload(stack, tmp_path: Path, rid: str) -> str:
    archive = make_zip(tmp_path / f"{rid}.zip", recording_files(rid))
    with open(archive, "rb") as fh:
        job_id = requests.post(stack.url("/upload"), files={"file": (archive.name, fh)}, timeout=30).json()[
            "job_id"
        ]
    assert follow_extraction(stack, job_id)["status"] == "done"
    return rid


def script_processes(rid: str) -> list[psutil.Process]:
    """Any process of the pipeline still working on this recording."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (
            "simulate_pipeline.sh" in cmdline
            and rid in cmdline
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found
