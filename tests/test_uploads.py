"""POST /upload: streamed to disk, type checked by name and content, refusals are clear JSON."""

from __future__ import annotations

import io

import pytest
from factories import make_tar, make_zip, recording_files

from signpipe.db import db
from signpipe.models import UploadJob
from signpipe.progress import get_extraction_progress


def post_file(client, data: bytes, name: str, **kwargs):
    return client.post(
        "/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data", **kwargs
    )


def uploads_dir(app):
    from pathlib import Path

    return Path(app.config["DATA_DIR"]) / "uploads"


@pytest.mark.parametrize(
    "name,maker", [("rec.zip", make_zip), ("rec.tar.gz", make_tar), ("rec.tgz", make_tar)]
)
def test_accepted_upload_is_stored_recorded_and_queued(app, client, tmp_path, name, maker):
    data = maker(tmp_path / "a", recording_files("REC_1")).read_bytes()
    response = post_file(client, data, name)
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    stored = list(uploads_dir(app).iterdir())
    assert [p.read_bytes() for p in stored] == [data]
    with db.session() as session:
        job = session.get(UploadJob, job_id)
        assert (job.status, job.filename, job.size_bytes) == ("uploaded", name, len(data))
    assert get_extraction_progress(job_id)["status"] == "queued"


@pytest.mark.parametrize(
    "data,name,status,message",
    [
        (b"<!doctype html><html>login page</html>", "rec.zip", 415, "its content is not an archive"),
        (b"PK\x03\x04" + bytes(600), "rec.tar.gz", 415, "content is a ZIP"),
        (b"a,b,c\n1,2,3\n", "rec.csv", 415, "Only .zip, .tar, .tar.gz and .tgz"),
        (b"", "rec.zip", 400, "empty"),
    ],
)
def test_wrong_files_are_refused_with_a_clear_error_and_leave_nothing(
    app, client, data, name, status, message
):
    response = post_file(client, data, name)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert list(uploads_dir(app).iterdir()) == []


def test_missing_file_field_is_a_400(app, client):
    response = client.post("/upload", data={"other": "x"}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "field 'file'" in response.get_json()["error"]


def test_non_multipart_body_is_refused(app, client):
    response = client.post("/upload", data=b"raw", content_type="application/octet-stream")
    assert response.status_code == 415


def test_declared_size_over_the_limit_is_refused_before_reading(app, client):
    class Exploding(io.BytesIO):
        def read(self, *_):
            raise AssertionError("the body must not be read")

    response = client.post(
        "/upload",
        input_stream=Exploding(b"x"),
        content_type="multipart/form-data; boundary=x",
        environ_overrides={"CONTENT_LENGTH": str(app.config["MAX_UPLOAD_BYTES"] * 2)},
    )
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]


def test_undeclared_size_is_cut_off_at_the_limit(app, client):
    app.config["MAX_UPLOAD_BYTES"] = 100_000
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
            f"Content-Type: application/zip\r\n\r\n"
        ).encode()
        + b"PK\x03\x04"
        + bytes(300_000)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/upload",
        input_stream=io.BytesIO(body),
        content_type=f"multipart/form-data; boundary={boundary}",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert list(uploads_dir(app).iterdir()) == []


def test_extract_status_of_unknown_or_malformed_job_is_404_json(client):
    for job_id in ("0" * 32, "../etc", "nothex"):
        response = client.get(f"/extract_status/{job_id}")
        assert response.status_code == 404
        assert "error" in response.get_json()


def test_extract_status_falls_back_to_the_row_when_redis_forgot(app, client, redis_client, tmp_path):
    data = make_zip(tmp_path / "a.zip", recording_files("REC_1")).read_bytes()
    job_id = post_file(client, data, "a.zip").get_json()["job_id"]
    redis_client.flushall()
    body = client.get(f"/extract_status/{job_id}").get_json()
    assert body["status"] == "queued" and body["percent"] == 0.0
