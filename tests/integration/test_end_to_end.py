"""End to end over HTTP on real Gunicorn, Celery workers, Redis and the database."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import zipfile
from pathlib import Path

import pytest
import requests
from factories import (
    PROGRESS_FIELDS,
    SIGN_HEADER,
    SUPPORT_HEADER,
    make_tar,
    make_zip,
    recording_files,
    track_rows,
    without,
)
from live import follow_extraction, wait_for_recording

pytestmark = pytest.mark.integration


def upload(stack, path: Path) -> str:
    with open(path, "rb") as fh:
        response = requests.post(stack.url("/upload"), files={"file": (path.name, fh)}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def read_zip_csvs(content: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return {name: list(csv.reader(io.TextIOWrapper(zf.open(name), "utf-8"))) for name in zf.namelist()}


def leftovers(stack) -> list[str]:
    return [str(p) for d in ("uploads", "temp_extracts") for p in (stack.data_dir / d).rglob("*")]


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_operator_uploads_a_recording_and_downloads_results_along_its_own_track(stack, tmp_path, fmt):
    rid = f"SURVEY_{fmt.replace('.', '_').upper()}_{stack.base_url[-5:]}"
    files = recording_files(rid, mp4_size=2 * 1024 * 1024)
    archive = (make_zip if fmt == "zip" else make_tar)(tmp_path / f"{rid}.{fmt}", files)

    job_id = upload(stack, archive)
    done = follow_extraction(stack, job_id)
    assert (done["status"], done["recording_id"], done["percent"]) == ("done", rid, 100.0), done
    assert done["extracted_files"] == 8

    key = f"extraction:{job_id}"
    record = json.loads(stack.redis.get(key))
    assert record.keys() >= PROGRESS_FIELDS
    assert 0 < stack.redis.ttl(key) <= 3600

    finished = wait_for_recording(stack, rid)
    assert finished["status"] == "completed", finished
    assert finished["stage_index"] == 8 and all(s["state"] == "done" for s in finished["stages"])

    response = requests.get(stack.url(f"/download/{rid}"), timeout=10)
    assert response.status_code == 200
    assert f'filename="{rid}_results.zip"' in response.headers["Content-Disposition"]
    tables = read_zip_csvs(response.content)
    assert tables["supports.csv"][0] == SUPPORT_HEADER and tables["signs.csv"][0] == SIGN_HEADER
    track = {(round(lat, 6), round(lon, 6)) for lat, lon in track_rows(rid)}
    assert len(tables["supports.csv"]) > 2
    assert all((round(float(r[3]), 6), round(float(r[2]), 6)) in track for r in tables["supports.csv"][1:])

    assert (stack.data_dir / "recordings" / rid / "logs" / "pipeline-1.log").is_file()
    assert leftovers(stack) == []
    status_page = requests.get(stack.url("/status"), timeout=5).text
    assert rid in status_page and f"/download/{rid}" in status_page


def test_broken_tree_is_refused_with_every_problem_listed_and_leaves_no_file(stack, tmp_path):
    rid = "BROKEN_TREE"
    files = without(recording_files(rid), "/calibration/", "camera_params.csv", "_loc_cleaned.csv")
    files[f"{rid}/second-device/x/readme.csv"] = b"a,b\n"
    archive = make_zip(tmp_path / "broken.zip", files)

    body = follow_extraction(stack, upload(stack, archive))
    assert body["status"] == "error"
    assert "4 problems" in body["message"]
    details = body["details"]
    assert len(details["problems"]) == 4
    assert details["extra_folders"] == [f"{rid}/second-device"]
    assert any(f.endswith("/calibration") for f in details["missing_folders"])
    assert leftovers(stack) == []
    assert not (stack.data_dir / "recordings" / rid).exists()
    assert requests.get(stack.url(f"/api/recordings/{rid}"), timeout=5).status_code == 404


def test_a_web_page_disguised_as_zip_is_refused_over_http(stack, tmp_path):
    fake = tmp_path / "recording.zip"
    fake.write_text("<!doctype html><html><body>Sign in to continue</body></html>")
    with open(fake, "rb") as fh:
        response = requests.post(stack.url("/upload"), files={"file": (fake.name, fh)}, timeout=10)
    assert response.status_code == 415
    assert "not an archive" in response.json()["error"]
    assert leftovers(stack) == []


def test_an_upload_cut_off_half_way_leaves_no_partial_file(stack):
    boundary = "cutoff"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.zip"\r\n\r\n'
    ).encode() + b"PK\x03\x04"
    host, port = stack.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}"
            f"\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n".encode()
            + head
            + bytes(3 * 1024 * 1024)
        )
        partial_seen = time.monotonic() + 10
        while not leftovers(stack) and time.monotonic() < partial_seen:
            time.sleep(0.05)
        assert leftovers(stack), "the upload should be in progress before the connection drops"
    deadline = time.monotonic() + 10
    while leftovers(stack) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(stack) == []
    health = requests.get(stack.url("/healthz"), timeout=5)
    assert health.status_code == 200, health.text
