"""TAR and TAR.GZ extraction: strict headers, regular members only, nothing after the end marker."""

from __future__ import annotations

import gzip
import tarfile
from functools import partial
from pathlib import Path
from typing import BinaryIO

from .archive_guard import CHUNK, Planned, Writer, check_budget, ensure_free_space
from .errors import UnsafeArchive

MAX_TRAILING_BYTES = 1024 * 1024  # TAR writers pad to a record (10 KiB by default)


class TruncatedTar(Exception):
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
            raise TruncatedTar(
                f"the archive is truncated or has a damaged header at byte {tf.offset}"
            ) from exc


def _tar_member_check(member: tarfile.TarInfo) -> None:
    if member.isreg() and not member.issparse() or member.isdir():
        return
    kind = "a link" if member.issym() or member.islnk() else "a special file"
    kind = "a sparse file" if member.issparse() else kind
    raise UnsafeArchive(f"Archive entry is {kind}", {"entry": member.name})


def extract_plain_tar(archive: Path, writer: Writer) -> None:
    """Uncompressed TAR: every header is read (seeking past the data) before anything is written."""
    with tarfile.open(archive, mode="r:", tarinfo=_StrictTarInfo) as tf:
        plan, declared = [], 0
        for member in tf:  # one header at a time, so a flood of entries stops at the budget
            _tar_member_check(member)
            declared += member.size
            check_budget(writer.limits, 0, declared)
            target = writer.claim(member.name, member.isdir())
            if target is not None:
                plan.append(
                    Planned(target, member.isdir(), member.size, member.name, partial(tf.extractfile, member))
                )
        writer.write_plan(plan)
        tf.fileobj.seek(tf.offset)
        refuse_trailing_data(tf.fileobj)


def extract_tar_stream(archive: Path, writer: Writer) -> None:
    """TAR.GZ in one pass: each member is checked before its bytes are written."""
    size = archive.stat().st_size or 1
    ensure_free_space(writer.dest, size)
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
        refuse_trailing_data(inflated)


def refuse_trailing_data(stream: BinaryIO) -> None:
    """After a TAR's end marker only zero padding may follow: anything else is a second archive."""
    trailing = 0
    while chunk := stream.read(CHUNK):
        trailing += len(chunk)
        if trailing > MAX_TRAILING_BYTES or chunk.count(0) != len(chunk):
            raise UnsafeArchive("Unexpected data after the end of the TAR archive")
