"""Receiving an upload: the multipart body is parsed as it streams, straight into its file."""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget

from .archive import kind_from_magic, kind_from_name
from .errors import StorageFull, UploadRejected

CHUNK = 1024 * 1024
HEAD_BYTES = 8192
MULTIPART_OVERHEAD = 64 * 1024
EXTENSIONS = {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz"}


@dataclass(frozen=True)
class ReceivedArchive:
    """An upload stored under its final name, with what the browser said it was."""

    path: Path
    filename: str
    kind: str
    size: int


class _ArchiveTarget(BaseTarget):
    """Writes the file part to disk as it arrives, keeping only its first bytes in memory."""

    def __init__(self, out: BinaryIO, max_bytes: int):
        super().__init__()
        self.out = out
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self.parts = 0

    def on_start(self) -> None:
        self.parts += 1

    def on_data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadRejected(f"The file is larger than the {self.max_bytes} byte limit", 413)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.out.write(chunk)


def check_declared_size(content_length: int | None, max_bytes: int, uploads_dir: Path) -> None:
    """Refuse before reading a body that is declared too large or cannot fit on disk."""
    if content_length is None:
        return
    if content_length > max_bytes + MULTIPART_OVERHEAD:
        raise UploadRejected(f"The upload is larger than the {max_bytes} byte limit", 413)
    if content_length > shutil.disk_usage(uploads_dir).free:
        raise StorageFull("Not enough free disk space on the server for this upload")


def receive_multipart(
    stream: BinaryIO, content_type: str, uploads_dir: Path, job_id: str, max_bytes: int
) -> ReceivedArchive:
    """Stream the `file` field into uploads_dir; check its name and its bytes agree on a kind."""
    if not content_type.startswith("multipart/form-data"):
        raise UploadRejected("Send the archive as multipart/form-data in the field 'file'", 415)
    partial = uploads_dir / f"{job_id}.part"
    try:
        with open(partial, "xb") as out:
            target = _copy_body(stream, content_type, out, max_bytes)
        final = _accept(target, partial, job_id)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("The server ran out of disk space during the upload") from exc
        raise
    return final


def _copy_body(stream: BinaryIO, content_type: str, out: BinaryIO, max_bytes: int) -> _ArchiveTarget:
    try:
        parser = StreamingFormDataParser(headers={"Content-Type": content_type})
    except Exception as exc:  # the library raises plain exceptions for bad headers
        raise UploadRejected(f"Malformed multipart request: {exc}") from exc
    target = _ArchiveTarget(out, max_bytes)
    parser.register("file", target)
    received = 0
    while chunk := stream.read(CHUNK):
        received += len(chunk)
        if received > max_bytes + MULTIPART_OVERHEAD:
            raise UploadRejected(f"The upload is larger than the {max_bytes} byte limit", 413)
        try:
            parser.data_received(chunk)
        except UploadRejected:
            raise
        except Exception as exc:
            raise UploadRejected(f"Malformed multipart body: {exc}") from exc
    return target


def _accept(target: _ArchiveTarget, partial: Path, job_id: str) -> ReceivedArchive:
    filename = os.path.basename((target.multipart_filename or "").replace("\\", "/"))
    if target.parts == 0 or not filename:
        raise UploadRejected("No file was sent in the form field 'file'")
    if target.parts > 1:
        raise UploadRejected("Send exactly one file per upload")
    return accept_archive(partial, filename, target.size, target.head, partial.parent, job_id)


def archive_kind_of_name(filename: str) -> str:
    """The archive kind a file name promises; raises UploadRejected (415) for other names."""
    kind = kind_from_name(filename)
    if kind is None:
        raise UploadRejected("Only .zip, .tar, .tar.gz and .tgz archives are accepted", 415)
    return kind


def accept_archive(
    data: Path, filename: str, size: int, head: bytes, uploads_dir: Path, job_id: str
) -> ReceivedArchive:
    """Check a received file's name and first bytes agree, then give it the job's name (a rename)."""
    kind = archive_kind_of_name(filename)
    if size == 0:
        raise UploadRejected("The uploaded file is empty")
    actual = kind_from_magic(head)
    if actual != kind:
        found = f"a {actual.upper()} archive" if actual else "not an archive"
        raise UploadRejected(f"'{filename}' is named as {kind.upper()} but its content is {found}", 415)
    final = uploads_dir / (job_id + EXTENSIONS[kind])
    data.rename(final)
    return ReceivedArchive(final, filename[:255], kind, size)
