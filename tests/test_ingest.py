"""Ingest and pipeline jobs on the database: states, files on disk, nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from factories import make_tar, make_zip, recording_files, without
from sqlalchemy import select

from signpipe.db import db
from signpipe.ingest import ingest_upload
from signpipe.models import Attempt, Recording, UploadJob
from signpipe.processing import process_recording
from signpipe.progress import get_extraction_progress

RID = "REC_2024_06_01"


def upload(client, data: bytes, name: str) -> str:
    response = client.post(
        "/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job_id"]


def data_files(app) -> list[str]:
    """Every file under DATA_DIR except the SQLite database."""
    root = Path(app.config["DATA_DIR"])
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "signpipe.db" not in p.name
    )


def leftovers(app) -> list[Path]:
    """Whatever is still in the upload and temp folders."""
    root = Path(app.config["DATA_DIR"])
    return [p for d in ("uploads", "temp_extracts") for p in (root / d).iterdir()]


def current_token(rid: str) -> str:
    """The token the queued message of the recording's current attempt carries."""
    with db.session() as session:
        number = session.get(Recording, rid).attempt
        query = select(Attempt.token).where(Attempt.recording_id == rid, Attempt.number == number)
        return session.scalar(query)


def row(model, key):
    with db.session() as session:
        return session.get(model, key)


@pytest.mark.parametrize("name,maker", [("r.zip", make_zip), ("r.tar.gz", make_tar)])
def test_valid_upload_is_extracted_stored_and_processed(app, client, tmp_path, name, maker):
    job_id = upload(client, maker(tmp_path / name, recording_files(RID)).read_bytes(), name)
    assert ingest_upload(job_id) == RID
    progress = get_extraction_progress(job_id)
    assert (progress["status"], progress["recording_id"], progress["percent"]) == ("done", RID, 100.0)
    assert progress["extracted_files"] == progress["total_files"] == 8
    assert row(UploadJob, job_id).status == "validated"
    assert row(Recording, RID).status == "queued"
    stored = Path(app.config["DATA_DIR"]) / "recordings" / RID
    assert (stored / "device-7f3a").is_dir()
    assert leftovers(app) == []

    assert process_recording(RID, current_token(RID)) == "completed"
    rec = row(Recording, RID)
    assert (rec.stage_index, rec.stage) == (8, "s7_export_csv")
    assert [s["state"] for s in rec.stages] == ["done"] * 8
    assert rec.started_at and rec.finished_at
    assert (stored / "logs" / "pipeline-1.log").is_file()
    assert rec.attempt == 1


def test_invalid_tree_is_refused_with_every_problem_and_leaves_nothing(app, client, tmp_path):
    files = without(recording_files(RID), "camera_params", f"{RID}_loc.csv", "/processed/")
    job_id = upload(client, make_zip(tmp_path / "r.zip", files).read_bytes(), "r.zip")
    assert ingest_upload(job_id) is None
    progress = get_extraction_progress(job_id)
    assert progress["status"] == "error"
    assert "3 problems" in progress["error_msg"]
    assert len(progress["error_details"]["problems"]) == 3
    job = row(UploadJob, job_id)
    assert job.status == "failed" and job.error_details["missing_folders"]
    assert data_files(app) == []
    assert row(Recording, RID) is None


def test_an_existing_recording_is_never_overwritten(app, client, tmp_path):
    first = upload(client, make_zip(tmp_path / "a.zip", recording_files(RID)).read_bytes(), "a.zip")
    ingest_upload(first)
    marker = Path(app.config["DATA_DIR"]) / "recordings" / RID / "marker.txt"
    marker.write_text("original")
    second = upload(
        client, make_tar(tmp_path / "b.tgz", recording_files(RID, mp4_size=99)).read_bytes(), "b.tgz"
    )
    assert ingest_upload(second) is None
    assert "already exists" in get_extraction_progress(second)["error_msg"]
    assert marker.read_text() == "original"
    assert row(Recording, RID).upload_job_id == first
    assert leftovers(app) == []


def test_hostile_archive_is_refused_and_cleaned_up(app, client, tmp_path):
    import zipfile

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{RID}/ok.csv", b"a\n")
        zf.writestr(f"{RID}/../../escaped.txt", b"pwned")
    job_id = upload(client, archive.read_bytes(), "evil.zip")
    assert ingest_upload(job_id) is None
    assert get_extraction_progress(job_id)["error_details"] == {"entry": f"{RID}/../../escaped.txt"}
    assert data_files(app) == []
    assert not list(tmp_path.parent.rglob("escaped.txt"))


def test_a_job_is_ingested_only_once(app, client, tmp_path):
    job_id = upload(client, make_zip(tmp_path / "a.zip", recording_files(RID)).read_bytes(), "a.zip")
    assert ingest_upload(job_id) == RID
    assert ingest_upload(job_id) is None
    assert row(Recording, RID).status == "queued"


def test_failed_pipeline_records_the_stage_and_log_tail(app, client, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_FAIL_AT", "s4_classification")
    job_id = upload(client, make_zip(tmp_path / "a.zip", recording_files(RID)).read_bytes(), "a.zip")
    ingest_upload(job_id)
    token = current_token(RID)
    assert process_recording(RID, token) == "failed"
    rec = row(Recording, RID)
    assert "s4_classification" in rec.error and "exit code 3" in rec.error
    assert any("simulated failure" in line for line in rec.error_details["log_tail"])
    states = {s["name"]: s["state"] for s in rec.stages}
    assert states["s3_small_track_filter"] == "done" and states["s4_classification"] == "failed"
    assert process_recording(RID, token) is None  # a redelivered message does not run it again


def test_redis_outage_during_extraction_costs_only_live_progress(app, client, tmp_path):
    import redis

    from signpipe.extensions import bind_redis

    job_id = upload(client, make_zip(tmp_path / "a.zip", recording_files(RID)).read_bytes(), "a.zip")
    bind_redis(app, redis.Redis(port=1, socket_connect_timeout=0.1, retry=None))
    assert ingest_upload(job_id) == RID
    assert row(UploadJob, job_id).status == "validated"
    assert row(Recording, RID).status == "queued"


def test_database_outage_at_upload_is_a_503_and_keeps_no_file(app, client, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken_transaction():
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(db, "transaction", broken_transaction)
    data = make_zip(tmp_path / "a.zip", recording_files(RID)).read_bytes()
    response = client.post(
        "/upload", data={"file": (io.BytesIO(data), "a.zip")}, content_type="multipart/form-data"
    )
    assert response.status_code == 503
    assert "database is unavailable" in response.get_json()["error"]
    assert leftovers(app) == []
