"""Attempts, user actions and the reaper: no job lost, run twice or left stuck."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from factories import make_zip, recording_files
from sqlalchemy import select

from signpipe import jobs, reaper
from signpipe.db import db
from signpipe.ingest import ingest_upload
from signpipe.models import Attempt, Recording, UploadJob, utcnow
from signpipe.pipeline import group_alive
from signpipe.processing import process_recording

RID = "JOB_REC"


@pytest.fixture
def stored(app, client, tmp_path) -> str:
    """A validated recording whose first attempt is queued."""
    data = make_zip(tmp_path / "r.zip", recording_files(RID)).read_bytes()
    import io

    response = client.post(
        "/upload", data={"file": (io.BytesIO(data), "r.zip")}, content_type="multipart/form-data"
    )
    assert ingest_upload(response.get_json()["job_id"]) == RID
    return RID


def attempt(number: int) -> Attempt:
    with db.session() as session:
        return session.scalar(select(Attempt).where(Attempt.recording_id == RID, Attempt.number == number))


def recording() -> Recording:
    with db.session() as session:
        return session.get(Recording, RID)


def run(number: int = 1) -> str | None:
    return process_recording(RID, attempt(number).token, "worker@test")


def test_a_message_claims_its_attempt_once(stored):
    token = attempt(1).token
    assert jobs.claim(RID, token, "a") is not None
    assert jobs.claim(RID, token, "b") is None
    assert attempt(1).worker == "a"


def test_retry_after_failure_runs_a_second_attempt(app, client, stored, monkeypatch):
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s2_tracking")
    assert run(1) == "failed"
    monkeypatch.delenv("PIPELINE_FAIL_AT")
    response = client.post(f"/api/recordings/{RID}/retry")
    assert response.status_code == 202 and response.get_json()["attempt"] == 2
    assert run(2) == "completed"
    body = client.get(f"/api/recordings/{RID}").get_json()
    assert [a["status"] for a in body["attempts"]] == ["failed", "completed"]
    assert body["attempts"][0]["exit_code"] == 3 and body["attempts"][0]["stage"] == "s2_tracking"


def test_twenty_concurrent_retry_clicks_make_one_attempt(app, stored, monkeypatch):
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s0_detection")
    run(1)
    codes: list[int] = []

    def click():
        codes.append(app.test_client().post(f"/api/recordings/{RID}/retry").status_code)

    threads = [threading.Thread(target=click) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes.count(202) == 1 and set(codes) <= {202, 409}
    assert recording().attempt == 2


def test_actions_refuse_what_does_not_fit_the_state(client, stored):
    assert client.post(f"/api/recordings/{RID}/retry").status_code == 409
    assert client.post(f"/api/recordings/{RID}/rerun").status_code == 409
    assert client.post("/api/recordings/NOPE/cancel").status_code == 404
    assert "error" in client.post(f"/api/recordings/{RID}/rerun").get_json()


def test_cancel_a_queued_job_and_its_message_does_nothing(client, stored):
    response = client.post(f"/api/recordings/{RID}/cancel")
    assert response.get_json()["status"] == "cancelled"
    assert run(1) is None
    assert recording().status == "cancelled"


def test_cancel_a_running_job_stops_its_process_group_within_seconds(app, client, stored):
    app.config["PIPELINE_STAGE_SECONDS"] = 5
    outcome: list[str | None] = []
    worker = threading.Thread(target=lambda: outcome.append(app_run(app)))
    worker.start()
    deadline = time.monotonic() + 10
    while recording().stage is None and time.monotonic() < deadline:
        time.sleep(0.1)
    began = time.monotonic()
    assert client.post(f"/api/recordings/{RID}/cancel").get_json()["status"] == "cancelling"
    worker.join(timeout=20)
    assert outcome == ["cancelled"] and time.monotonic() - began < 5
    assert recording().status == "cancelled" and attempt(1).status == "cancelled"
    assert not any(group_alive(pid) for pid in _script_groups())


def app_run(app) -> str | None:
    with app.app_context():
        return run(1)


def _script_groups() -> list[int]:
    """Process groups of any simulate_pipeline.sh still running on this machine for this test."""
    groups = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"simulate_pipeline.sh" in cmdline.read_bytes() and RID.encode() in cmdline.read_bytes():
                groups.append(int(cmdline.parent.name))
        except OSError:
            continue
    return groups


def test_rerun_keeps_the_previous_results_until_the_new_ones_succeed(app, client, stored, monkeypatch):
    assert run(1) == "completed"
    first = client.get(f"/download/{RID}").data
    assert client.post(f"/api/recordings/{RID}/rerun").status_code == 202
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s6_localization")
    assert run(2) == "failed"
    assert client.get(f"/download/{RID}").data == first
    assert recording().results_attempt == 1


def test_delete_removes_rows_and_files(app, client, stored):
    run(1)
    assert client.delete(f"/api/recordings/{RID}").status_code == 200
    assert client.get(f"/api/recordings/{RID}").status_code == 404
    assert not (Path(app.config["DATA_DIR"]) / "recordings" / RID).exists()


def age_heartbeat(number: int, seconds: float) -> None:
    with db.transaction() as session:
        row = session.scalar(select(Attempt).where(Attempt.recording_id == RID, Attempt.number == number))
        row.status, row.heartbeat_at = "running", utcnow() - timedelta(seconds=seconds)
        session.get(Recording, RID).status = "processing"


def test_reaper_requeues_an_attempt_whose_heartbeat_stopped_then_fails_at_the_cap(app, stored):
    app.config["PIPELINE_MAX_ATTEMPTS"] = 2
    age_heartbeat(1, 600)
    assert reaper.reap()["lost_attempts"] == 1
    assert attempt(1).status == "lost" and attempt(2).status == "queued"
    assert "attempt 1 lost" in attempt(2).reason
    age_heartbeat(2, 600)
    reaper.reap()
    assert recording().status == "failed" and recording().error == "failed: worker lost (2 attempts)"


def test_a_restarted_worker_gives_up_what_it_was_running(stored):
    jobs.claim(RID, attempt(1).token, "pipeline@node1")
    assert reaper.recover_worker("pipeline@node1") == 1
    assert attempt(1).status == "lost" and attempt(2).status == "queued"


def test_reaper_resends_a_queued_attempt_the_broker_lost(app, stored):
    with db.transaction() as session:
        session.scalar(select(Attempt).where(Attempt.recording_id == RID)).queued_at = utcnow() - timedelta(
            hours=1
        )
    assert reaper.reap()["resent_messages"] == 1
    assert run(1) == "completed"
    assert run(1) is None  # the original message, if it ever comes back, does nothing


def test_reaper_fails_a_stalled_extraction_and_cleans_up(app, client, tmp_path):
    import io

    data = make_zip(tmp_path / "s.zip", recording_files("STALL")).read_bytes()
    job_id = client.post(
        "/upload", data={"file": (io.BytesIO(data), "s.zip")}, content_type="multipart/form-data"
    ).get_json()["job_id"]
    temp = Path(app.config["DATA_DIR"]) / "temp_extracts" / job_id
    temp.mkdir()
    with db.transaction() as session:
        job = session.get(UploadJob, job_id)
        job.status, job.updated_at = "extracting", utcnow() - timedelta(hours=1)
    app.extensions["progress"].redis.flushall()
    assert reaper.reap()["stalled_extractions"] == 1
    assert client.get(f"/extract_status/{job_id}").get_json()["status"] == "error"
    assert not temp.exists() and not list((Path(app.config["DATA_DIR"]) / "uploads").glob(f"{job_id}*"))


def test_reaper_deletes_old_orphans_and_keeps_live_files(app, client, tmp_path):
    import io
    import os

    uploads = Path(app.config["DATA_DIR"]) / "uploads"
    orphan = uploads / ("f" * 32 + ".part")
    orphan.write_bytes(b"half an upload")
    os.utime(orphan, (time.time() - 7 * 86400,) * 2)
    data = make_zip(tmp_path / "l.zip", recording_files("LIVE")).read_bytes()
    job_id = client.post(
        "/upload", data={"file": (io.BytesIO(data), "l.zip")}, content_type="multipart/form-data"
    ).get_json()["job_id"]
    live = next(uploads.glob(f"{job_id}.*"))
    os.utime(live, (time.time() - 7 * 86400,) * 2)
    assert reaper.reap()["orphans"] == 1
    assert not orphan.exists() and live.exists()


def test_recording_page_shows_attempts_stages_log_and_actions(client, stored, monkeypatch):
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s1_small_sign_filter")
    run(1)
    html = client.get(f"/recordings/{RID}").get_data(as_text=True)
    assert "exit 3" in html and "s1_small_sign_filter" in html
    assert 'data-action="retry"' in html and 'data-action="delete"' in html
    assert f"/recordings/{RID}/log?attempt=1" in html
    tail = client.get(f"/api/recordings/{RID}/log?lines=5")
    assert tail.status_code == 200 and tail.mimetype == "text/plain"
    assert len(tail.get_data(as_text=True).strip().splitlines()) == 5
    full = client.get(f"/recordings/{RID}/log?attempt=1")
    assert "attachment" in full.headers["Content-Disposition"]
    assert "event=stage_start stage=s0_detection" in full.get_data(as_text=True)
    assert client.get(f"/recordings/{RID}/log?attempt=7").status_code == 404
    assert client.get("/recordings/UNKNOWN").status_code == 404


def test_status_page_shows_workers_and_queue_lengths(client, stored, monkeypatch):
    from signpipe import monitor

    monkeypatch.setattr(monitor, "workers_by_queue", lambda wait=True: {"ingest": ["i@n"], "pipeline": []})
    html = client.get("/status").get_data(as_text=True)
    assert "Workers online" in html and "pipeline 0 (none!)" in html
    assert f'href="/recordings/{RID}"' in html


def test_the_lost_attempt_cap_counts_from_the_last_retry(app, client, stored, monkeypatch):
    app.config["PIPELINE_MAX_ATTEMPTS"] = 2
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s0_detection")
    run(1)
    client.post(f"/api/recordings/{RID}/retry")
    with db.transaction() as session:  # attempt 2 starts, then its worker disappears
        row = session.scalar(select(Attempt).where(Attempt.recording_id == RID, Attempt.number == 2))
        row.status, row.heartbeat_at = "running", utcnow() - timedelta(hours=1)
        session.get(Recording, RID).status = "processing"
    reaper.reap()
    assert attempt(2).status == "lost" and attempt(3).status == "queued"
