"""Safe extraction of recording archives (ZIP, TAR, TAR.GZ/TGZ) into a job's temp folder.

Policy: every member's name and type is checked before it is written; only regular files and
directories are created, with fixed permissions; budgets count the bytes actually written.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import InvalidArchive, StorageFull, UnsafeArchive

CHUNK = 1024 * 1024
ARCHIVE_SUFFIXES = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}
JUNK_DIRS = {"__MACOSX"}
JUNK_FILES = {".DS_Store", "Thumbs.db"}

Progress = Callable[[int, int, float, int], None]


@dataclass(frozen=True)
class Limits:
    """Budgets that bound what one archive may make us write."""

    max_bytes: int = 10 * 1024**3
    max_entries: int = 5000
    max_ratio: float = 200.0
    ratio_floor: int = 1024 * 1024  # smaller members are never judged by their ratio


def kind_from_name(filename: str) -> str | None:
    """Archive kind named by a file's extension, or None."""
    lower = filename.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return ARCHIVE_SUFFIXES[suffix]
    return None


def kind_from_magic(head: bytes) -> str | None:
    """Archive kind named by the first bytes of a file (at least 512 for tar), or None."""
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 512)
        except zlib.error:
            return None
        return "tar.gz" if len(inner) < 512 or _is_tar_header(inner[:512]) else None
    return "tar" if _is_tar_header(head[:512]) else None


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:  # pre-POSIX tar: no magic, but the header checksum must hold
        stored = int(block[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


def read_head(path: Path, size: int = 8192) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for junk; raises UnsafeArchive."""
    if not name or "\\" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UnsafeArchive("Archive entry has an unsafe name", {"entry": name})
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive("Archive entry has an absolute path", {"entry": name})
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive("Archive entry points outside the archive ('..')", {"entry": name})
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        raise UnsafeArchive("Archive entry has a name component over 255 bytes", {"entry": name})
    if not parts:
        return None
    if parts[0] in JUNK_DIRS or parts[-1] in JUNK_FILES or parts[-1].startswith("._"):
        return None
    return PurePosixPath(*parts)


class _Writer:
    """Creates checked members under one folder and enforces the budgets while writing."""

    def __init__(self, dest: Path, limits: Limits, progress: Progress | None):
        self.dest = dest
        self.limits = limits
        self.progress = progress or (lambda *a: None)
        self.files = 0
        self.entries = 0
        self.bytes = 0
        self.total_files = 0  # known up front for ZIP only
        self.seen: dict[str, str] = {}

    def claim(self, name: str, is_dir: bool) -> Path | None:
        """Check a member's name before anything is written; None means skip it."""
        rel = member_path(name)
        if rel is None:
            return None
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnsafeArchive(f"Archive has more than {self.limits.max_entries} entries", {"entry": name})
        key = str(rel).lower()
        previous = self.seen.get(key)
        if previous is not None and not (is_dir and previous == "dir"):
            raise UnsafeArchive("Archive has duplicate entries", {"entry": name})
        self.seen[key] = "dir" if is_dir else "file"
        for parent in list(rel.parents)[:-1]:
            if self.seen.setdefault(str(parent).lower(), "dir") != "dir":
                raise UnsafeArchive("Archive entry is nested under a file", {"entry": name})
        return self.dest.joinpath(*rel.parts)

    def make_dir(self, target: Path) -> None:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)

    def write_file(self, target: Path, source: BinaryIO, name: str, fraction, consumed=None) -> None:
        """Copy one member, counting real bytes against the budgets as they arrive.

        `consumed()` gives the compressed bytes read so far, for a running ratio check.
        """
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise UnsafeArchive(
                        f"Archive expands past the {self.limits.max_bytes} byte limit",
                        {"entry": name},
                    )
                if consumed is not None:
                    _check_ratio(self.limits, self.bytes, consumed(), name)
                out.write(chunk)
                self.progress(self.files, self.bytes, fraction(), self.total_files)
        self.files += 1
        self.progress(self.files, self.bytes, fraction(), self.total_files)


def extract_archive(
    archive: Path, dest: Path, kind: str, limits: Limits = Limits(), progress: Progress | None = None
) -> Path:
    """Extract into the empty folder `dest` and return the recording's root folder inside it."""
    dest.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dest, limits, progress)
    try:
        if kind == "zip":
            _extract_zip(archive, writer)
        elif kind in ("tar", "tar.gz"):
            _extract_tar(archive, writer)
        else:
            raise InvalidArchive(f"Unsupported archive type: {kind}")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("The server ran out of disk space while extracting") from exc
        raise InvalidArchive(f"The archive could not be read: {exc}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidArchive(f"The archive is corrupt or truncated: {exc}") from exc
    except (RuntimeError, ValueError, UnicodeError, NotImplementedError) as exc:
        raise InvalidArchive(f"The archive could not be read: {exc}") from exc
    return single_root(dest)


def _ensure_free_space(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    margin = 256 * 1024 * 1024
    if needed + margin > free:
        raise StorageFull(
            "Not enough free disk space to extract this archive",
            {"needed_bytes": needed, "free_bytes": free},
        )


def _zip_members(zf: zipfile.ZipFile, limits: Limits) -> Iterator[zipfile.ZipInfo]:
    """Members in data order after the whole-archive checks (encryption, overlap, types)."""
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    if len(infos) > limits.max_entries:
        raise UnsafeArchive(f"Archive has more than {limits.max_entries} entries")
    for info, following in zip(infos, infos[1:] + [None], strict=False):
        if info.flag_bits & 0x1:
            raise InvalidArchive("Password-protected archives are not supported", {"entry": info.filename})
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
            raise UnsafeArchive(f"Archive entry is {kind}", {"entry": info.filename})
        if following is not None and info.header_offset + info.compress_size > following.header_offset:
            raise UnsafeArchive("Archive entries overlap (zip bomb)", {"entry": info.filename})
        yield info


def _check_ratio(limits: Limits, produced: int, consumed: int, name: str) -> None:
    if produced > limits.ratio_floor and produced > limits.max_ratio * max(consumed, 1):
        raise UnsafeArchive(f"Compression ratio over {limits.max_ratio:g}:1 (zip bomb)", {"entry": name})


def _extract_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = list(_zip_members(zf, writer.limits))
        files = [i for i in members if not i.is_dir() and member_path(i.orig_filename) is not None]
        writer.total_files = len(files)
        total = sum(i.file_size for i in files) or 1
        _ensure_free_space(writer.dest, total)
        for info in members:
            # orig_filename keeps what zipfile cuts at a NUL byte, so such names are caught
            target = writer.claim(info.orig_filename, info.is_dir())
            if target is None:
                continue
            if info.is_dir():
                writer.make_dir(target)
                continue
            _check_ratio(writer.limits, info.file_size, info.compress_size, info.filename)
            with zf.open(info) as source:
                writer.write_file(target, source, info.filename, lambda: writer.bytes / total)


def _extract_tar(archive: Path, writer: _Writer) -> None:
    size = archive.stat().st_size or 1
    _ensure_free_space(writer.dest, size)
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tf:
        fraction = lambda: raw.tell() / size  # noqa: E731 - compressed position tracks bytes
        for member in tf:
            if not (member.isreg() or member.isdir()) or member.issparse():
                kind = "a link" if member.issym() or member.islnk() else "a special file"
                raise UnsafeArchive(f"Archive entry is {kind}", {"entry": member.name})
            target = writer.claim(member.name, member.isdir())
            if target is None:
                continue
            if member.isdir():
                writer.make_dir(target)
                continue
            source = tf.extractfile(member)
            writer.write_file(target, source, member.name, fraction, raw.tell)


def single_root(dest: Path) -> Path:
    """The one top-level folder of an extracted archive, with a doubled `X/X/` collapsed."""
    entries = sorted(dest.iterdir())
    if not entries:
        raise InvalidArchive("The archive is empty")
    folders = [e.name for e in entries if e.is_dir()]
    if len(entries) != 1 or len(folders) != 1:
        raise InvalidArchive(
            "The archive must contain exactly one root folder (the recording id)",
            {"top_level_entries": [e.name + ("/" if e.is_dir() else "") for e in entries]},
        )
    root = entries[0]
    inner = list(root.iterdir())
    if len(inner) == 1 and inner[0].is_dir() and inner[0].name == root.name:
        parked = dest / (".collapse-" + root.name)
        inner[0].rename(parked)
        root.rmdir()
        parked.rename(root)
    return root
