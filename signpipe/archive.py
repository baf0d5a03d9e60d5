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
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

from .archive_guard import Limits, Progress, Writer, member_path
from .archive_tar import TruncatedTar, extract_plain_tar, extract_tar_stream
from .archive_zip import extract_zip
from .errors import InvalidArchive, StorageFull, UnsafeArchive

__all__ = ["Limits", "extract_archive", "kind_from_magic", "kind_from_name", "member_path", "read_head"]

ARCHIVE_SUFFIXES = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}


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


def extract_archive(
    archive: Path, dest: Path, kind: str, limits: Limits = Limits(), progress: Progress | None = None
) -> Path:
    """Extract into the empty folder `dest` and return the recording's root folder inside it."""
    dest.mkdir(parents=True, exist_ok=True)
    writer = Writer(dest, limits, progress)
    extractors = {"zip": extract_zip, "tar": extract_plain_tar, "tar.gz": extract_tar_stream}
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
        TruncatedTar,
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
