"""Extraction of ZIP, TAR and TAR.GZ recordings, and the guards around it."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest
from factories import make_tar, make_zip, recording_files

from signpipe.archive import Limits, extract_archive, kind_from_magic, kind_from_name, member_path, read_head
from signpipe.errors import InvalidArchive, UnsafeArchive

RID = "REC_2024_05_01"


@pytest.fixture
def files():
    return recording_files(RID)


def assert_tree_matches(root, files):
    got = {p.relative_to(root.parent).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert got == files


@pytest.mark.parametrize("dirs", [True, False], ids=["with-dir-entries", "files-only"])
def test_zip_extracts_every_file_byte_for_byte(tmp_path, files, dirs):
    archive = make_zip(tmp_path / "r.zip", files, dirs=dirs)
    root = extract_archive(archive, tmp_path / "out", "zip")
    assert root == tmp_path / "out" / RID
    assert_tree_matches(root, files)


@pytest.mark.parametrize(
    "compress,fmt,kind",
    [
        (False, tarfile.USTAR_FORMAT, "tar"),
        (True, tarfile.GNU_FORMAT, "tar.gz"),
        (True, tarfile.PAX_FORMAT, "tar.gz"),
    ],
    ids=["tar-ustar", "tgz-gnu", "tgz-pax"],
)
def test_tar_family_extracts_every_file(tmp_path, files, compress, fmt, kind):
    archive = make_tar(tmp_path / "r.tar", files, compress=compress, fmt=fmt)
    root = extract_archive(archive, tmp_path / "out", kind)
    assert_tree_matches(root, files)


def test_files_get_safe_permissions_whatever_the_archive_says(tmp_path, files):
    buf = tmp_path / "r.tar"
    with tarfile.open(buf, "w") as tf:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(data), 0o6777
            tf.addfile(info, io.BytesIO(data))
    root = extract_archive(buf, tmp_path / "out", "tar")
    for path in root.rglob("*"):
        mode = path.stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH | stat.S_IWGRP)


def test_progress_follows_bytes_to_the_end(tmp_path, files):
    archive = make_zip(tmp_path / "r.zip", files)
    calls = []
    extract_archive(archive, tmp_path / "out", "zip", progress=lambda *a: calls.append(a))
    fractions = [c[2] for c in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert calls[-1][0] == calls[-1][3] == len(files)


def test_macos_junk_is_dropped(tmp_path, files):
    junk = {
        f"__MACOSX/{RID}/._x.csv": b"junk",
        f"{RID}/.DS_Store": b"junk",
        f"{RID}/device-7f3a/._camera_params.csv": b"junk",
    }
    archive = make_zip(tmp_path / "r.zip", files, dirs=False, extra=junk)
    root = extract_archive(archive, tmp_path / "out", "zip")
    assert_tree_matches(root, files)
    assert not (tmp_path / "out" / "__MACOSX").exists()


def test_duplicated_root_folder_is_collapsed(tmp_path, files):
    doubled = {f"{RID}/{rel}": data for rel, data in files.items()}
    archive = make_zip(tmp_path / "r.zip", doubled)
    root = extract_archive(archive, tmp_path / "out", "zip")
    assert root == tmp_path / "out" / RID
    assert_tree_matches(root, files)


@pytest.mark.parametrize(
    "extra,reason",
    [
        ({"OTHER/x.csv": b"a,b\n"}, "exactly one root folder"),
        ({"loose.txt": b"x"}, "exactly one root folder"),
    ],
)
def test_more_than_one_root_is_refused(tmp_path, files, extra, reason):
    archive = make_zip(tmp_path / "r.zip", files, extra=extra)
    with pytest.raises(InvalidArchive, match=reason) as info:
        extract_archive(archive, tmp_path / "out", "zip")
    assert "top_level_entries" in info.value.details


def test_empty_archive_is_refused(tmp_path):
    archive = make_zip(tmp_path / "r.zip", {}, dirs=False)
    with pytest.raises(InvalidArchive, match="empty"):
        extract_archive(archive, tmp_path / "out", "zip")


@pytest.mark.parametrize(
    "name", ["../evil.csv", "REC/../../evil.csv", "/etc/evil", "C:/evil.csv", "REC\\..\\evil", "REC/a\x00b"]
)
def test_zip_slip_names_are_refused_and_nothing_escapes(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("REC/ok.csv", b"a,b\n")
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # bypass zipfile's own sanitising of written names
        zf.writestr(info, b"pwned")
    with pytest.raises(UnsafeArchive):
        extract_archive(archive, tmp_path / "out" / "job", "zip")
    assert not list(tmp_path.rglob("evil*")) or all(p == archive for p in tmp_path.rglob("evil*"))


def test_symlink_in_zip_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("REC/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract_archive(archive, tmp_path / "out", "zip")
    assert not os.path.lexists(tmp_path / "out" / "REC" / "link")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_in_tar_are_refused(tmp_path, kind):
    archive = tmp_path / "special.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("REC/thing")
        info.type, info.linkname = kind, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArchive):
        extract_archive(archive, tmp_path / "out", "tar")
    assert not os.path.lexists(tmp_path / "out" / "REC" / "thing")


def test_duplicate_and_case_colliding_entries_are_refused(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("REC/a.csv", b"1")
        zf.writestr("REC/A.csv", b"2")
    with pytest.raises(UnsafeArchive, match="duplicate"):
        extract_archive(archive, tmp_path / "out", "zip")


def test_entry_budget_is_enforced(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"REC/f{i}.csv": b"x" for i in range(30)}, dirs=False)
    with pytest.raises(UnsafeArchive, match="more than 20 entries"):
        extract_archive(archive, tmp_path / "out", "zip", Limits(max_entries=20))


def test_byte_budget_counts_real_bytes_while_writing(tmp_path):
    archive = make_tar(tmp_path / "big.tar.gz", {"REC/big.bin": os.urandom(300_000)})
    with pytest.raises(UnsafeArchive, match="byte limit"):
        extract_archive(archive, tmp_path / "out", "tar.gz", Limits(max_bytes=200_000))


@pytest.mark.parametrize("kind,maker", [("zip", make_zip), ("tar.gz", make_tar)])
def test_compression_bomb_is_refused(tmp_path, kind, maker):
    archive = maker(tmp_path / "bomb", {"REC/zeros.csv": bytes(20 * 1024 * 1024)})
    with pytest.raises(UnsafeArchive, match="ratio"):
        extract_archive(archive, tmp_path / "out", kind, Limits(max_ratio=100))


@pytest.mark.parametrize("kind,maker", [("zip", make_zip), ("tar.gz", make_tar)])
def test_truncated_archive_is_refused_cleanly(tmp_path, files, kind, maker):
    archive = maker(tmp_path / "r", files)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidArchive):
        extract_archive(archive, tmp_path / "out", kind)


def test_kind_is_read_from_name_and_from_magic_bytes(tmp_path, files):
    assert kind_from_name("a.ZIP") == "zip"
    assert kind_from_name("a.tgz") == kind_from_name("a.tar.gz") == "tar.gz"
    assert kind_from_name("a.tar") == "tar"
    assert kind_from_name("a.rar") is None
    assert kind_from_magic(read_head(make_zip(tmp_path / "a", files))) == "zip"
    assert kind_from_magic(read_head(make_tar(tmp_path / "b", files))) == "tar.gz"
    assert kind_from_magic(read_head(make_tar(tmp_path / "c", files, compress=False))) == "tar"
    assert kind_from_magic(b"<!doctype html><html>" + bytes(600)) is None


@pytest.mark.parametrize("name", ["", "a/../b", "/abs", "a\\b", "x\x01y", "c:/x", "a/" + "n" * 256])
def test_member_path_rejects_unsafe_names(name):
    with pytest.raises(UnsafeArchive):
        member_path(name)


def test_member_path_normalises_harmless_forms():
    assert str(member_path("./REC//a/./b.csv")) == "REC/a/b.csv"
    assert member_path("__MACOSX/REC/x") is None
