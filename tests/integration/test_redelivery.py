"""A visibility timeout far shorter than the job: Redis hands the message out again mid-run."""

from __future__ import annotations

import time

import pytest
from live import upload, wait_for_recording

pytestmark = pytest.mark.integration
STACK_ENV = {"BROKER_VISIBILITY_TIMEOUT": "2", "PIPELINE_STAGE_SECONDS": "1.5"}


def test_a_message_redelivered_while_its_job_runs_does_nothing(stack, tmp_path):
    rid = upload(stack, tmp_path, f"REDELIVER_{stack.base_url[-5:]}")
    final = wait_for_recording(stack, rid, timeout=90)
    assert final["status"] == "completed" and len(final["attempts"]) == 1
    log = (stack.data_dir / "recordings" / rid / "logs" / "pipeline-1.log").read_text()
    assert log.count("event=stage_start stage=s0_detection") == 1
    deadline = time.monotonic() + 15
    worker_log = stack.logs / "pipeline.log"
    while "skipped (not queued any more)" not in worker_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "skipped (not queued any more)" in worker_log.read_text(), "the message should have come back"
