"""Resumable uploads on the live stack: a real tus client, interruptions, slowness, races, expiry."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from factories import make_zip, recording_files
from live import follow_extraction
from sqlalchemy import create_engine, text

from signpipe.db import normalize_url

pytestmark = pytest.mark.integration
CLIENT = Path(__file__).with_name("tus_client.py")
TUS = {"Tus-Resumable": "1.0.0"}


def create(stack, length: int, name: str) -> str:
    meta = "filename " + base64.b64encode(name.encode()).decode()
    response = requests.post(
        stack.url("/files/"),
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return stack.url(response.headers["Location"])


def test_tuspy_killed_half_way_resumes_from_its_stored_url_and_the_file_is_identical(stack, tmp_path):
    rid = f"TUSPY_{stack.base_url[-5:]}"
    files = recording_files(rid, mp4_size=6 * 1024 * 1024)
    archive = make_zip(tmp_path / f"{rid}.zip", files)
    store = tmp_path / "urls.json"
    argv = [sys.executable, str(CLIENT), stack.url("/files/"), str(archive), str(store)]

    first = subprocess.Popen([*argv, "0.15"], stdout=subprocess.PIPE, text=True)
    for line in first.stdout:
        if line.startswith("offset") and int(line.split()[1]) >= archive.stat().st_size // 3:
            first.kill()
            break
    first.wait(timeout=10)
    assert first.returncode != 0, "the first run should have been killed before the end"

    second = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    lines = second.stdout.splitlines()
    assert int(lines[0].split()[1]) > 0, "the rerun should resume, not start again"
    upload_url = lines[-1].split()[1]

    job_id = requests.get(upload_url + "/job", timeout=5).json()["job_id"]
    assert follow_extraction(stack, job_id)["recording_id"] == rid
    mp4 = next(rel for rel in files if rel.endswith(".mp4"))
    stored = stack.data_dir / "recordings" / mp4
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(files[mp4]).digest()


def patch_slowly(location: str, data: bytes, piece: int, pause: float) -> requests.Response:
    """One chunked PATCH of the whole body from offset 0, `piece` bytes every `pause` seconds."""

    def trickle():
        for start in range(0, len(data), piece):
            yield data[start : start + piece]
            time.sleep(pause)

    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    return requests.patch(location, data=trickle(), timeout=60, headers=headers)


def test_a_slow_upload_outlives_the_gunicorn_worker_timeout(stack, tmp_path):
    """WEB_TIMEOUT is 4 s in this stack; the PATCH below (chunked) takes about 8 s."""
    rid = f"SLOW_{stack.base_url[-5:]}"
    data = make_zip(tmp_path / "slow.zip", recording_files(rid)).read_bytes()
    location = create(stack, len(data), "slow.zip")

    response = patch_slowly(location, data, piece=len(data) // 8 + 1, pause=1)
    assert response.status_code == 204, response.text
    assert follow_extraction(stack, response.headers["Upload-Job-Id"])["status"] == "done"


def test_two_concurrent_patches_one_wins_and_the_file_stays_identical(stack, tmp_path):
    rid = f"RACE_{stack.base_url[-5:]}"
    files = recording_files(rid, mp4_size=3 * 1024 * 1024)
    data = make_zip(tmp_path / "race.zip", files).read_bytes()
    location = create(stack, len(data), "race.zip")
    results: list[int] = []

    def send():
        results.append(patch_slowly(location, data, piece=512 * 1024, pause=0.1).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results)[0] == 204 and sorted(results)[1] in (409, 423), results
    job_id = requests.get(location + "/job", timeout=5).json()["job_id"]
    assert follow_extraction(stack, job_id)["status"] == "done"
    mp4 = next(rel for rel in files if rel.endswith(".mp4"))
    assert (stack.data_dir / "recordings" / mp4).read_bytes() == files[mp4]


def test_beat_sweeps_an_abandoned_upload_after_it_expires(stack):
    location = create(stack, 1000, "abandoned.zip")
    requests.patch(
        location,
        data=b"PK\x03\x04",
        timeout=5,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    uid = location.rsplit("/", 1)[1]
    engine = create_engine(normalize_url(stack.database_url))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tus_uploads SET expires_at = :past WHERE id = :id"),
            {"past": "2000-01-01 00:00:00", "id": uid},
        )
    engine.dispose()
    assert requests.head(location, headers=TUS, timeout=5).status_code == 410
    deadline = time.monotonic() + 20
    while (stack.data_dir / "uploads" / "tus" / f"{uid}.part").exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not (stack.data_dir / "uploads" / "tus" / f"{uid}.part").exists()
    assert requests.head(location, headers=TUS, timeout=5).status_code == 404


def test_the_protocol_answers_over_real_http(stack):
    options = requests.options(stack.url("/files/"), timeout=5)
    assert options.status_code == 204 and options.headers["Tus-Version"] == "1.0.0"
    refused = requests.post(stack.url("/files/"), headers={"Upload-Length": "5"}, timeout=5)
    assert refused.status_code == 412 and refused.headers["Tus-Resumable"] == "1.0.0"
