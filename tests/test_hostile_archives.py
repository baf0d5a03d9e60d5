"""Hostile and broken archives through the real upload and ingest path: refused with a reason,
nothing written outside the job's temp folder, nothing left behind, the service still healthy."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from pathlib import Path

import psutil
import pytest
from factories import make_zip, recording_files
from hostile import Case, corpus, gzip_bomb

from signpipe.archive import Limits, extract_archive
from signpipe.errors import UnsafeArchive
from signpipe.ingest import ingest_upload
from signpipe.progress import get_extraction_progress

ENTRY_REASONS = (
    "outside",
    "absolute",
    "backslash",
    "control",
    "UTF-8",
    "255",
    "duplicate",
    "differs",
    "link",
    "special",
    "overlap",
)


@pytest.fixture
def database_url(tmp_path):
    """The corpus is about files, not the database: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'hostile.db'}"


@pytest.fixture
def sandbox(app, tmp_path):
    """A canary folder beside DATA_DIR that no archive may touch."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("untouched")
    app.config["MAX_ARCHIVE_ENTRIES"] = 50
    return tmp_path


def refusal(client, case: Case) -> tuple[str, object]:
    """Upload a case and return (reason, details) of its refusal, at upload or at ingest."""
    response = client.post(
        "/upload", data={"file": (io.BytesIO(case.data), case.filename)}, content_type="multipart/form-data"
    )
    if response.status_code != 202:
        assert 400 <= response.status_code < 500, response.status_code
        return response.get_json()["error"], response.get_json().get("details")
    job_id = response.get_json()["job_id"]
    assert ingest_upload(job_id) is None, f"{case.name} was accepted"
    progress = get_extraction_progress(job_id)
    assert progress["status"] == "error"
    return progress["error_msg"], progress["error_details"]


def assert_nothing_escaped_or_left(app, sandbox: Path) -> None:
    data_dir = Path(app.config["DATA_DIR"])
    assert sorted(p.name for p in (sandbox / "canary").iterdir()) == ["keep.txt"]
    assert (sandbox / "canary" / "keep.txt").read_text() == "untouched"
    assert not list(sandbox.parent.rglob("pwned*")) and not Path("/tmp/pwned.txt").exists()
    for folder in ("uploads", "temp_extracts", "recordings"):
        assert list((data_dir / folder).iterdir()) == [], folder
    for path in data_dir.rglob("*"):
        mode = path.lstat().st_mode
        assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), path
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), path


@pytest.mark.parametrize("case", corpus(), ids=lambda case: case.name)
def test_hostile_archive_is_refused_with_its_reason_and_leaves_nothing(app, client, sandbox, case):
    reason, details = refusal(client, case)
    assert re.search(case.reason, reason), reason
    if any(word in case.reason for word in ENTRY_REASONS):
        assert details and details.get("entry"), details
    assert_nothing_escaped_or_left(app, sandbox)
    healthy = client.post(
        "/upload",
        data={"file": (io.BytesIO(valid_zip(sandbox)), "ok.zip")},
        content_type="multipart/form-data",
    )
    assert healthy.status_code == 202 and ingest_upload(healthy.get_json()["job_id"]) == "SERVICE_OK"


def valid_zip(sandbox: Path) -> bytes:
    return make_zip(sandbox / "ok.zip", recording_files("SERVICE_OK")).read_bytes()


def test_nested_archives_are_stored_as_files_never_opened(app, client, sandbox):
    files = recording_files("NESTED")
    inner = next(iter(c.data for c in corpus() if c.name == "zip-dotdot"))
    files["NESTED/device-7f3a/356938035643809/camera/inner.zip"] = inner
    response = client.post(
        "/upload",
        data={"file": (io.BytesIO(make_zip(sandbox / "n.zip", files).read_bytes()), "n.zip")},
        content_type="multipart/form-data",
    )
    assert ingest_upload(response.get_json()["job_id"]) == "NESTED"
    stored = (
        Path(app.config["DATA_DIR"]) / "recordings" / "NESTED/device-7f3a/356938035643809/camera/inner.zip"
    )
    assert stored.read_bytes() == inner
    assert not list(sandbox.parent.rglob("pwned*"))


def test_a_large_bomb_is_refused_quickly_with_little_memory(tmp_path):
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(gzip_bomb(1024 * 1024 * 1024))  # 1 GiB of zeros in about 1 MB
    rss_before = psutil.Process().memory_info().rss
    began = time.monotonic()
    with pytest.raises(UnsafeArchive, match="ratio"):
        extract_archive(bomb, tmp_path / "out", "tar.gz", Limits())
    assert time.monotonic() - began < 10
    assert psutil.Process().memory_info().rss - rss_before < 64 * 1024 * 1024
    assert sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file()) < 8 * 1024 * 1024
    os.sync()
