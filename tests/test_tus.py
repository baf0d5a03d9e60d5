"""The tus 1.0.0 endpoint, status code by status code, and its hand-over to the ingest path."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from factories import make_zip_bytes, recording_files
from sqlalchemy import func, select

from signpipe import resumable
from signpipe.db import db
from signpipe.ingest import ingest_upload
from signpipe.models import TusUpload, UploadJob, utcnow

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK_HEADERS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(filename: str = "rec.zip", **extra: str) -> str:
    pairs = {"filename": filename, **extra}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def create(client, length: int, filename: str = "rec.zip", **headers) -> str:
    response = client.post(
        "/files/",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(filename), **headers},
    )
    assert response.status_code == 201, response.get_json()
    return response.headers["Location"]


def patch(client, location: str, data: bytes, offset: int, **headers):
    return client.patch(
        location, data=data, headers={**CHUNK_HEADERS, "Upload-Offset": str(offset), **headers}
    )


def offset_of(client, location: str) -> int:
    return int(client.head(location, headers=TUS).headers["Upload-Offset"])


def digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def job_count() -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(UploadJob))


@pytest.fixture
def archive() -> bytes:
    return make_zip_bytes(recording_files("TUS_REC"))


def test_options_describes_the_server_without_needing_the_version_header(app, client):
    response = client.options("/files/")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0" and response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert response.headers["Tus-Max-Size"] == str(app.config["MAX_UPLOAD_BYTES"])
    assert {"sha1", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


@pytest.mark.parametrize("version", [None, "0.2.2"])
def test_a_missing_or_other_version_is_412_and_changes_nothing(client, version):
    headers = {"Upload-Length": "10", "Upload-Metadata": metadata()}
    if version:
        headers["Tus-Resumable"] = version
    response = client.post("/files/", headers=headers)
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0" and response.headers["Tus-Resumable"] == "1.0.0"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TusUpload)) == 0


def test_creation_answers_201_with_a_relative_location_and_expiry(client):
    response = client.post("/files/", headers={**TUS, "Upload-Length": "100", "Upload-Metadata": metadata()})
    assert response.status_code == 201
    assert response.headers["Location"].startswith("/files/")
    assert response.headers["Upload-Expires"].endswith("GMT")


@pytest.mark.parametrize(
    "headers,status",
    [
        ({"Upload-Metadata": metadata()}, 400),
        ({"Upload-Length": "-1", "Upload-Metadata": metadata()}, 400),
        ({"Upload-Length": str(10**12), "Upload-Metadata": metadata()}, 413),
        ({"Upload-Length": "10", "Upload-Metadata": "filename !!notbase64"}, 400),
        ({"Upload-Length": "10"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": metadata("notes.txt")}, 415),
        ({"Upload-Length": "10", "Upload-Defer-Length": "1", "Upload-Metadata": metadata()}, 400),
    ],
    ids=["no-length", "negative", "over-max", "bad-metadata", "no-filename", "not-an-archive", "defer"],
)
def test_creation_refusals(client, headers, status):
    response = client.post("/files/", headers={**TUS, **headers})
    assert response.status_code == status
    assert response.get_json()["error"]


def test_metadata_values_are_sanitised_and_returned_as_sent(client):
    sent = metadata("../../etc/re\x07c.zip", filetype="application/zip")
    location = client.post("/files/", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": sent}).headers[
        "Location"
    ]
    head = client.head(location, headers=TUS)
    assert head.headers["Upload-Metadata"] == sent
    with db.session() as session:
        assert session.get(TusUpload, location.rsplit("/", 1)[1]).filename == "rec.zip"


def test_head_reports_offset_length_and_is_never_cached(client):
    location = create(client, 100)
    patch(client, location, b"PK\x03\x04", 0)
    head = client.head(location, headers=TUS)
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("4", "100")
    assert head.headers["Cache-Control"] == "no-store"


def test_unknown_upload_is_404(client):
    assert client.head("/files/" + "0" * 32, headers=TUS).status_code == 404
    assert patch(client, "/files/" + "0" * 32, b"x", 0).status_code == 404


def test_patch_appends_and_answers_the_new_offset(client):
    location = create(client, 10)
    response = patch(client, location, b"PK\x03\x04", 0)
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "4"
    assert "Upload-Expires" in response.headers


def test_patch_needs_the_offset_content_type(client):
    location = create(client, 10)
    response = client.patch(
        location, data=b"x", headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 415


def test_wrong_offset_is_409_and_changes_nothing(client):
    location = create(client, 10)
    patch(client, location, b"PK\x03", 0)
    assert patch(client, location, b"abc", 1).status_code == 409
    assert patch(client, location, b"abc", 5).status_code == 409
    assert offset_of(client, location) == 3


def test_missing_offset_is_400(client):
    location = create(client, 10)
    response = client.patch(location, data=b"x", headers=CHUNK_HEADERS)
    assert response.status_code == 400


def test_body_past_the_length_is_413_and_discarded(client):
    location = create(client, 5)
    assert patch(client, location, b"PK\x03\x04zz", 0).status_code == 413
    assert offset_of(client, location) == 0


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_checksum_is_verified_per_chunk(client, algorithm):
    location = create(client, 10)
    good = patch(client, location, b"PK\x03\x04", 0, **{"Upload-Checksum": digest(algorithm, b"PK\x03\x04")})
    assert good.status_code == 204
    bad = patch(client, location, b"abc", 4, **{"Upload-Checksum": digest(algorithm, b"xyz")})
    assert bad.status_code == 460
    assert offset_of(client, location) == 4


def test_unknown_checksum_algorithm_is_400(client):
    location = create(client, 10)
    response = patch(client, location, b"PK", 0, **{"Upload-Checksum": "crc99 AAAA"})
    assert response.status_code == 400
    assert offset_of(client, location) == 0


def test_a_concurrent_patch_loses_with_423_and_changes_nothing(app, client):
    location = create(client, 10)
    uid = location.rsplit("/", 1)[1]
    with resumable.upload_lock(uid):
        assert patch(client, location, b"PK\x03\x04", 0).status_code == 423
    assert offset_of(client, location) == 0
    assert patch(client, location, b"PK\x03\x04", 0).status_code == 204


def test_an_interrupted_patch_keeps_what_arrived(client):
    location = create(client, 1000)

    class Dropped(io.BytesIO):
        def read(self, size=-1):
            data = super().read(size if size and size > 0 else 300)
            if not data:
                raise ConnectionResetError("client went away")
            return data

    client.patch(
        location,
        input_stream=Dropped(b"PK\x03\x04" + bytes(296)),
        headers={**CHUNK_HEADERS, "Upload-Offset": "0"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert offset_of(client, location) == 300


def test_method_override_reaches_patch_head_and_delete(client):
    location = create(client, 10)
    response = client.post(
        location,
        data=b"PK\x03",
        headers={**CHUNK_HEADERS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "3"
    head = client.post(location, headers={**TUS, "X-HTTP-Method-Override": "HEAD"})
    assert head.headers["Upload-Offset"] == "3"
    assert client.post(location, headers={**TUS, "X-HTTP-Method-Override": "DELETE"}).status_code == 204
    assert client.head(location, headers=TUS).status_code == 404


def test_termination_deletes_the_bytes(app, client):
    location = create(client, 10)
    patch(client, location, b"PK\x03", 0)
    assert client.delete(location, headers=TUS).status_code == 204
    assert client.head(location, headers=TUS).status_code == 404
    assert list((Path(app.config["DATA_DIR"]) / "uploads" / "tus").iterdir()) == []


def expire(location: str) -> None:
    with db.transaction() as session:
        session.get(TusUpload, location.rsplit("/", 1)[1]).expires_at = utcnow() - timedelta(seconds=1)


def test_expired_uploads_answer_410_and_the_sweep_deletes_them(app, client):
    location = create(client, 10)
    patch(client, location, b"PK\x03", 0)
    expire(location)
    assert client.head(location, headers=TUS).status_code == 410
    assert patch(client, location, b"\x04", 3).status_code == 410
    assert resumable.sweep_expired() == 1
    assert client.head(location, headers=TUS).status_code == 404
    assert list((Path(app.config["DATA_DIR"]) / "uploads" / "tus").iterdir()) == []


def test_the_last_byte_starts_exactly_one_job_on_the_same_ingest_path(app, client, archive):
    location = create(client, len(archive))
    half = len(archive) // 2
    assert patch(client, location, archive[:half], 0).status_code == 204
    assert client.get(location + "/job").status_code == 404
    final = patch(
        client, location, archive[half:], half, **{"Upload-Checksum": digest("sha1", archive[half:])}
    )
    job_id = final.headers["Upload-Job-Id"]
    assert final.status_code == 204 and final.headers["Upload-Offset"] == str(len(archive))
    repeat = patch(client, location, b"", len(archive))
    assert repeat.status_code == 204 and repeat.headers["Upload-Job-Id"] == job_id
    assert job_count() == 1
    assert client.get(location + "/job").get_json()["job_id"] == job_id
    assert ingest_upload(job_id) == "TUS_REC"
    stored = Path(app.config["DATA_DIR"]) / "recordings" / "TUS_REC"
    original = recording_files("TUS_REC")
    for rel, data in original.items():
        assert (stored.parent / rel).read_bytes() == data


def test_a_completed_upload_that_is_not_an_archive_becomes_a_refused_job(app, client):
    body = b"<!doctype html><html>" + bytes(600)
    location = create(client, len(body))
    final = patch(client, location, body, 0)
    job_id = final.headers["Upload-Job-Id"]
    status = client.get(f"/extract_status/{job_id}").get_json()
    assert status["status"] == "error" and "not an archive" in status["message"]
    leftovers = [p for p in (Path(app.config["DATA_DIR"]) / "uploads").rglob("*") if p.is_file()]
    assert leftovers == []
