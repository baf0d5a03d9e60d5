"""Archives made by common tools and platforms are accepted; faults of the disk end cleanly."""

from __future__ import annotations

import errno
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from factories import recording_files, write_tree

from signpipe import archive, archive_guard
from signpipe.archive import Limits, extract_archive
from signpipe.errors import StorageFull
from signpipe.validation import validate_recording

RID = "REC_TOOLS"


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "src", recording_files(RID))


def extract_and_validate(path: Path, kind: str, dest: Path) -> str:
    return validate_recording(extract_archive(path, dest, kind))


@pytest.mark.parametrize(
    "tool,args,name,kind",
    [
        ("tar", ["-cf"], "r.tar", "tar"),
        ("tar", ["-czf"], "r.tar.gz", "tar.gz"),
        ("tar", ["--format=ustar", "-czf"], "r.tgz", "tar.gz"),
        ("tar", ["--format=gnu", "-cf"], "r.tar", "tar"),
        ("tar", ["--format=pax", "-czf"], "r.tgz", "tar.gz"),
        ("zip", ["-qr"], "r.zip", "zip"),
        ("zip", ["-qr0"], "r.zip", "zip"),
        ("zip", ["-qrD"], "r.zip", "zip"),
    ],
    ids=[
        "tar",
        "tar-gz",
        "ustar-tgz",
        "gnu-tar",
        "pax-tgz",
        "zip-deflated",
        "zip-stored",
        "zip-no-dir-entries",
    ],
)
def test_archives_made_by_command_line_tools_are_accepted(tree, tmp_path, tool, args, name, kind):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    out = tmp_path / name
    subprocess.run([tool, *args, str(out), RID], cwd=tree, check=True)
    assert archive.kind_from_magic(archive.read_head(out)) == kind
    assert extract_and_validate(out, kind, tmp_path / "x") == RID


def test_deflate64_zip_as_windows_explorer_writes_for_big_files_is_accepted(tree, tmp_path):
    seven_zip = shutil.which("7zz") or shutil.which("7z")
    if not seven_zip:
        pytest.skip("7-Zip not installed")
    out = tmp_path / "r.zip"
    subprocess.run(
        [seven_zip, "a", "-tzip", "-mm=Deflate64", str(out), RID],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    assert 9 in {info.compress_type for info in zipfile.ZipFile(out).infolist()}
    assert extract_and_validate(out, "zip", tmp_path / "x") == RID


def test_zip64_archives_are_accepted(tmp_path):
    out = tmp_path / "r.zip"
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        for rel, data in recording_files(RID).items():
            with zf.open(rel, "w", force_zip64=True) as fh:
                fh.write(data)
    assert extract_and_validate(out, "zip", tmp_path / "x") == RID


def test_macos_finder_archive_with_resource_forks_is_accepted(tmp_path):
    out = tmp_path / "r.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in recording_files(RID).items():
            zf.writestr(rel, data)
            parent, _, leaf = rel.rpartition("/")
            zf.writestr(f"__MACOSX/{parent}/._{leaf}", b"\x00\x05\x16\x07resource fork")
        zf.writestr(f"{RID}/.DS_Store", b"Bud1")
    assert extract_and_validate(out, "zip", tmp_path / "x") == RID
    assert not list((tmp_path / "x").rglob("._*")) and not list((tmp_path / "x").rglob(".DS_Store"))


def test_windows_explorer_archive_without_directory_entries_or_utf8_flag_is_accepted(tmp_path):
    out = tmp_path / "r.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in recording_files(RID).items():
            info = zipfile.ZipInfo(rel, date_time=(2024, 5, 1, 12, 0, 0))
            info.create_system = 0  # MS-DOS, as Explorer writes
            info.external_attr = 0x20  # the archive attribute, no Unix mode
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    assert extract_and_validate(out, "zip", tmp_path / "x") == RID


def test_not_enough_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    out = tmp_path / "r.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for rel, data in recording_files(RID).items():
            zf.writestr(rel, data)
    monkeypatch.setattr(archive_guard.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 10, 1))
    with pytest.raises(StorageFull, match="free disk space"):
        extract_archive(out, tmp_path / "x", "zip", Limits())
    assert not list((tmp_path / "x").rglob("*.*"))


def test_disk_filling_up_while_writing_ends_in_a_clean_error(tmp_path, monkeypatch):
    out = tmp_path / "r.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for rel, data in recording_files(RID).items():
            zf.writestr(rel, data)
    real_fdopen = archive_guard.os.fdopen

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_guard.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(StorageFull, match="ran out of disk space"):
        extract_archive(out, tmp_path / "x", "zip")
