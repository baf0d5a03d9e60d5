"""Safe extraction of recording archives (ZIP, TAR, TAR.GZ/TGZ) into a job's temp folder.

Policy: only regular files and directories are ever created, with fixed permissions; budgets
count the bytes actually produced, while writing. ZIP and plain TAR members are all inspected
before the first byte is written (their headers can be read without inflating anything); a
TAR.GZ is inspected member by member as it streams, each before its own bytes are written,
because a second inflating pass would double the extraction time. Either way nothing is written
outside the job's private temp folder, which the caller deletes on refusal.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import zipfile_deflate64  # noqa: F401  (teaches zipfile Deflate64, which Windows Explorer uses)

from .errors import InvalidArchive, StorageFull, UnsafeArchive

ZIP_UTF8_FLAG = 0x800
ZIP_ENCRYPTED_FLAG = 0x1
ZIP_AES_METHOD = 99
EOCD_SEARCH = 22 + 65535 + 20  # end record, the longest comment, the ZIP64 locator
MAX_TRAILING_BYTES = 1024 * 1024  # TAR writers pad to a record (10 KiB by default)
LOCAL_HEADER = struct.Struct("<4s5H3I2H")

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
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # the second: an empty ZIP
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
    if block[257:262] == b"ustar" or block == bytes(512):  # zeros: an empty TAR's end marker
        return True
    try:  # pre-POSIX tar: no magic, but the header checksum must hold
        stored = int(block[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


def read_head(path: Path, size: int = 8192) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for junk; raises UnsafeArchive."""
    if not name or "\\" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UnsafeArchive(
            "Archive entry has an unsafe name (backslash or control character)", {"entry": name}
        )
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        raise UnsafeArchive("Archive entry name is not valid UTF-8", {"entry": _printable(name)})
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


@dataclass(frozen=True)
class Planned:
    """A member that passed every check, ready to be written."""

    target: Path
    is_dir: bool
    size: int
    name: str
    open: Callable[[], BinaryIO]


class _Writer:
    """Creates checked members under one folder and enforces the budgets while writing."""

    def __init__(self, dest: Path, limits: Limits, progress: Progress | None):
        self.dest = dest
        self.limits = limits
        self.progress = progress or (lambda *a: None)
        self.files = 0
        self.entries = 0
        self.bytes = 0
        self.total_files = 0  # known up front for ZIP and plain TAR
        self.seen: dict[str, str] = {}

    def claim(self, name: str, is_dir: bool) -> Path | None:
        """Check a member's name before anything is written; None means skip it (junk)."""
        self.entries += 1  # junk counts too, or a flood of it would slip past the budget
        if self.entries > self.limits.max_entries:
            raise UnsafeArchive(f"Archive has more than {self.limits.max_entries} entries", {"entry": name})
        rel = member_path(name)
        if rel is None:
            return None
        key = str(rel).lower()
        previous = self.seen.get(key)
        if previous is not None and not (is_dir and previous == "dir"):
            raise UnsafeArchive("Archive has duplicate entries", {"entry": name})
        self.seen[key] = "dir" if is_dir else "file"
        for parent in list(rel.parents)[:-1]:
            if self.seen.setdefault(str(parent).lower(), "dir") != "dir":
                raise UnsafeArchive("Archive entry is nested under a file", {"entry": name})
        return self.dest.joinpath(*rel.parts)

    def write_plan(self, plan: list[Planned]) -> None:
        """Write a fully inspected archive, once the disk is known to have room for it."""
        files = [item for item in plan if not item.is_dir]
        self.total_files = len(files)
        total = sum(item.size for item in files) or 1
        _ensure_free_space(self.dest, total)
        for item in plan:
            if item.is_dir:
                self.make_dir(item.target)
                continue
            with item.open() as source:
                self.write_file(item.target, source, item.name, lambda: self.bytes / total)

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
    extractors = {"zip": _extract_zip, "tar": _extract_plain_tar, "tar.gz": _extract_tar_stream}
    if kind not in extractors:
        raise InvalidArchive(f"Unsupported archive type: {kind}")
    try:
        _refuse_polyglot(archive, kind)
        extractors[kind](archive, writer)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("The server ran out of disk space while extracting") from exc
        raise InvalidArchive(f"The archive could not be read: {exc}") from exc
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        EOFError,
        zlib.error,
        _TruncatedTar,
    ) as exc:
        raise InvalidArchive(f"The archive is corrupt or truncated: {exc}") from exc
    except UnicodeDecodeError as exc:  # a ZIP that flags its names as UTF-8 but is not
        raise UnsafeArchive(
            "Archive entry name is not valid UTF-8", {"entry": repr(exc.object)[:300]}
        ) from exc
    except (RuntimeError, ValueError, UnicodeError, NotImplementedError, struct.error) as exc:
        raise InvalidArchive(f"The archive could not be read: {exc}") from exc
    return single_root(dest)


def _refuse_polyglot(archive: Path, kind: str) -> None:
    """A file that parses as two kinds of archive could show each tool a different tree."""
    head = read_head(archive, 512)
    other = _is_tar_header(head) if kind == "zip" else zipfile.is_zipfile(archive)
    if other:
        raise UnsafeArchive("The file is two archives at once (ZIP and TAR); upload a plain archive")


def _ensure_free_space(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    margin = 256 * 1024 * 1024
    if needed + margin > free:
        raise StorageFull(
            "Not enough free disk space to extract this archive",
            {"needed_bytes": needed, "free_bytes": free},
        )


def _check_ratio(limits: Limits, produced: int, consumed: int, name: str) -> None:
    if produced > limits.ratio_floor and produced > limits.max_ratio * max(consumed, 1):
        raise UnsafeArchive(f"Compression ratio over {limits.max_ratio:g}:1 (zip bomb)", {"entry": name})


def _check_budget(limits: Limits, count: int, declared: int) -> None:
    if count > limits.max_entries:
        raise UnsafeArchive(f"Archive has more than {limits.max_entries} entries")
    if declared > limits.max_bytes:
        raise UnsafeArchive(f"Archive declares more than the {limits.max_bytes} byte limit")


def zip_entry_count(archive: Path) -> int:
    """Entries the ZIP's end record announces, read before zipfile loads the whole directory."""
    with open(archive, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - EOCD_SEARCH))
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise InvalidArchive("The archive is corrupt or truncated: no ZIP end record")
    count = struct.unpack_from("<H", tail, at + 10)[0]
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        with open(archive, "rb") as fh:
            fh.seek(struct.unpack_from("<Q", tail, locator + 8)[0])
            record = fh.read(56)
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            count = struct.unpack_from("<Q", record, 32)[0]
    return count


def zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name as UTF-8 text; raises UnsafeArchive for bytes that are not UTF-8.

    Without the UTF-8 flag zipfile decodes names as CP437, so any byte decodes; tools that
    omit the flag still write UTF-8, so the raw bytes are decoded again as UTF-8.
    """
    if info.flag_bits & ZIP_UTF8_FLAG:
        return info.orig_filename  # keeps what zipfile cuts at a NUL byte
    raw = info.orig_filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchive("Archive entry name is not valid UTF-8", {"entry": info.orig_filename}) from None


def _zip_member_checks(
    fh: BinaryIO, info: zipfile.ZipInfo, following: zipfile.ZipInfo | None, limits: Limits
):
    """Whole-entry checks from the central directory and the entry's local header."""
    name = info.orig_filename
    if info.flag_bits & ZIP_ENCRYPTED_FLAG or info.compress_type == ZIP_AES_METHOD:
        raise InvalidArchive("Password-protected archives are not supported", {"entry": name})
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
        raise UnsafeArchive(f"Archive entry is {kind}", {"entry": name})
    if following is not None and info.header_offset + info.compress_size > following.header_offset:
        raise UnsafeArchive("Archive entries overlap (zip bomb)", {"entry": name})
    fh.seek(info.header_offset)
    header = fh.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise InvalidArchive("The archive is corrupt: an entry's local header is missing", {"entry": name})
    name_length = LOCAL_HEADER.unpack(header)[9]
    central = name.encode("utf-8" if info.flag_bits & ZIP_UTF8_FLAG else "cp437")
    if fh.read(name_length) != central:
        raise UnsafeArchive(
            "Entry name differs between the ZIP directory and its local header", {"entry": name}
        )
    _check_ratio(limits, info.file_size, info.compress_size, name)


def _extract_zip(archive: Path, writer: _Writer) -> None:
    _check_budget(writer.limits, zip_entry_count(archive), 0)
    with zipfile.ZipFile(archive) as zf, open(archive, "rb") as fh:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        if infos and infos[0].header_offset != 0:
            raise UnsafeArchive("The file is two archives at once (data before the ZIP's first entry)")
        declared = sum(i.file_size for i in infos)
        _check_budget(writer.limits, len(infos), declared)
        _check_ratio(writer.limits, declared, sum(i.compress_size for i in infos), "(whole archive)")
        plan = []
        for info, following in pairwise([*infos, None]):
            _zip_member_checks(fh, info, following, writer.limits)
            target = writer.claim(zip_name(info), info.is_dir())
            if target is not None:
                plan.append(
                    Planned(target, info.is_dir(), info.file_size, info.orig_filename, partial(zf.open, info))
                )
        writer.write_plan(plan)


class _TruncatedTar(Exception):
    """A header after the first that is cut short or garbled: tarfile would silently stop there."""


class _StrictTarInfo(tarfile.TarInfo):
    """Reads headers like TarInfo, but a bad header is an error instead of a quiet end of archive."""

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except tarfile.EOFHeaderError:
            raise  # a zero block: the archive's proper end
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as exc:
            if tf.offset == 0:
                raise
            raise _TruncatedTar(
                f"the archive is truncated or has a damaged header at byte {tf.offset}"
            ) from exc


def _tar_member_check(member: tarfile.TarInfo) -> None:
    if member.isreg() and not member.issparse() or member.isdir():
        return
    kind = "a link" if member.issym() or member.islnk() else "a special file"
    kind = "a sparse file" if member.issparse() else kind
    raise UnsafeArchive(f"Archive entry is {kind}", {"entry": member.name})


def _extract_plain_tar(archive: Path, writer: _Writer) -> None:
    """Uncompressed TAR: every header is read (seeking past the data) before anything is written."""
    with tarfile.open(archive, mode="r:", tarinfo=_StrictTarInfo) as tf:
        plan, declared = [], 0
        for member in tf:  # one header at a time, so a flood of entries stops at the budget
            _tar_member_check(member)
            declared += member.size
            _check_budget(writer.limits, 0, declared)
            target = writer.claim(member.name, member.isdir())
            if target is not None:
                plan.append(
                    Planned(target, member.isdir(), member.size, member.name, partial(tf.extractfile, member))
                )
        writer.write_plan(plan)
        tf.fileobj.seek(tf.offset)
        _refuse_trailing_data(tf.fileobj)


def _extract_tar_stream(archive: Path, writer: _Writer) -> None:
    """TAR.GZ in one pass: each member is checked before its bytes are written."""
    size = archive.stat().st_size or 1
    _ensure_free_space(writer.dest, size)
    # GzipFile checks each member's CRC and length, which tarfile's own stream reader skips.
    with (
        open(archive, "rb") as raw,
        gzip.GzipFile(fileobj=raw) as inflated,
        tarfile.open(fileobj=inflated, mode="r|", tarinfo=_StrictTarInfo) as tf,
    ):
        fraction = lambda: raw.tell() / size  # noqa: E731 - compressed position tracks bytes
        for member in tf:
            _tar_member_check(member)
            target = writer.claim(member.name, member.isdir())
            if target is None:
                continue
            if member.isdir():
                writer.make_dir(target)
                continue
            writer.write_file(target, tf.extractfile(member), member.name, fraction, raw.tell)
        # Reading on to the gzip trailer is what makes GzipFile check the CRC and length.
        _refuse_trailing_data(inflated)


def _refuse_trailing_data(stream: BinaryIO) -> None:
    """After a TAR's end marker only zero padding may follow: anything else is a second archive."""
    trailing = 0
    while chunk := stream.read(CHUNK):
        trailing += len(chunk)
        if trailing > MAX_TRAILING_BYTES or chunk.count(0) != len(chunk):
            raise UnsafeArchive("Unexpected data after the end of the TAR archive")


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
