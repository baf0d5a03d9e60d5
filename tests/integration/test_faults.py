"""Faults on real processes: killed workers, cancels, a broker that forgets, racing uploads.

Every scenario must end with the job completed, failed with a reason or cancelled: never
stuck, never run twice at once, no pipeline process left behind.
"""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
import requests
from factories import make_zip, recording_files
from live import follow_extraction, poll, script_processes, upload, wait_for_recording

pytestmark = pytest.mark.integration
STACK_ENV = {
    "PIPELINE_STAGE_SECONDS": "0.6",
    "HEARTBEAT_SECONDS": "0.5",
    "HEARTBEAT_TIMEOUT": "3",
    "REAPER_SECONDS": "1",
    "RESEND_AFTER_SECONDS": "2",
}


def wait_for_stage(stack, rid: str, stage: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(stack.url(f"/api/recordings/{rid}"), timeout=5).json()
        if body["status"] == "processing" and body["stage_index"] >= stage:
            return body
        time.sleep(0.05)
    pytest.fail(f"{rid} never reached stage {stage}\n{stack.log_tail()}")


def pool_process(stack) -> psutil.Process:
    children = psutil.Process(stack.procs["pipeline"].pid).children()
    assert len(children) == 1, children
    return children[0]


def starts_in_logs(stack, rid: str) -> int:
    logs = stack.data_dir / "recordings" / rid / "logs"
    return sum(log.read_text().count("stage=s0_detection") // 2 for log in logs.glob("pipeline-*.log"))


def test_pool_process_killed_during_stage_4_is_rerun_as_attempt_2_and_completes(stack, tmp_path):
    rid = upload(stack, tmp_path, f"KILLPOOL_{stack.base_url[-5:]}")
    wait_for_stage(stack, rid, 4)
    pool_process(stack).send_signal(signal.SIGKILL)
    time.sleep(1)
    assert script_processes(rid) == [], "the script must die with the process that ran it"
    final = wait_for_recording(stack, rid, timeout=60)
    assert final["status"] == "completed", final
    assert [a["status"] for a in final["attempts"]] == ["lost", "completed"]
    assert script_processes(rid) == []


def test_whole_pipeline_worker_killed_and_restarted_recovers_the_job(stack, tmp_path):
    rid = upload(stack, tmp_path, f"KILLWORKER_{stack.base_url[-5:]}")
    wait_for_stage(stack, rid, 3)
    stack.restart("pipeline", kill=True)
    final = wait_for_recording(stack, rid, timeout=90)
    assert final["status"] == "completed", final
    assert final["attempts"][0]["status"] == "lost" and final["attempts"][-1]["status"] == "completed"
    assert script_processes(rid) == []


def test_cancel_while_running_stops_the_script_within_seconds_and_never_reruns(stack, tmp_path):
    rid = upload(stack, tmp_path, f"CANCEL_{stack.base_url[-5:]}")
    wait_for_stage(stack, rid, 2)
    began = time.monotonic()
    assert requests.post(stack.url(f"/api/recordings/{rid}/cancel"), timeout=5).status_code == 202
    final = poll(stack, f"/api/recordings/{rid}", ("cancelled",), timeout=10)
    assert time.monotonic() - began < 5
    assert script_processes(rid) == []
    time.sleep(4)  # past the heartbeat timeout and a few reaper rounds
    again = requests.get(stack.url(f"/api/recordings/{rid}"), timeout=5).json()
    assert again["status"] == "cancelled" and len(again["attempts"]) == len(final["attempts"]) == 1


def test_queued_jobs_the_broker_forgot_still_run_once_each(stack, tmp_path):
    stack.procs["pipeline"].send_signal(signal.SIGTERM)
    stack.procs["pipeline"].wait(timeout=30)
    rids = [upload(stack, tmp_path, f"FORGOT{i}_{stack.base_url[-5:]}") for i in range(2)]
    prefix = stack.env["BROKER_KEY_PREFIX"]
    assert stack.redis.delete(f"{prefix}pipeline") == 1  # as if Redis restarted empty
    stack.start_again("pipeline")
    for rid in rids:
        final = wait_for_recording(stack, rid, timeout=90)
        assert final["status"] == "completed", final
        assert len(final["attempts"]) == 1
        assert starts_in_logs(stack, rid) == 1


def test_two_uploads_of_the_same_recording_at_once_make_exactly_one_recording(stack, tmp_path):
    rid = f"TWIN_{stack.base_url[-5:]}"
    archive = make_zip(tmp_path / f"{rid}.zip", recording_files(rid))
    jobs: list[str] = []

    def send():
        with open(archive, "rb") as fh:
            jobs.append(
                requests.post(stack.url("/upload"), files={"file": (archive.name, fh)}, timeout=30).json()[
                    "job_id"
                ]
            )

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(follow_extraction(stack, job)["status"] for job in jobs)
    assert outcomes == ["done", "error"]
    refused = next(
        follow_extraction(stack, job) for job in jobs if follow_extraction(stack, job)["status"] == "error"
    )
    assert "already exists" in refused["message"]
    assert wait_for_recording(stack, rid)["status"] == "completed"


def test_twenty_concurrent_retry_clicks_start_exactly_one_new_attempt(stack, tmp_path):
    rid = upload(stack, tmp_path, f"CLICKS_{stack.base_url[-5:]}")
    wait_for_stage(stack, rid, 1)
    requests.post(stack.url(f"/api/recordings/{rid}/cancel"), timeout=5)
    poll(stack, f"/api/recordings/{rid}", ("cancelled",), timeout=10)
    codes: list[int] = []

    def click():
        codes.append(requests.post(stack.url(f"/api/recordings/{rid}/retry"), timeout=30).status_code)

    threads = [threading.Thread(target=click) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes.count(202) == 1 and set(codes) <= {202, 409}, codes
    final = wait_for_recording(stack, rid, timeout=60)
    assert final["status"] == "completed" and [a["status"] for a in final["attempts"]] == [
        "cancelled",
        "completed",
    ]
