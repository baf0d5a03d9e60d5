"""Following jobs on the live stack over HTTP, shared by the end-to-end test files."""

from __future__ import annotations

import time

import pytest
import requests


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
