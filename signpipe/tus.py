"""The tus 1.0.0 resumable-upload protocol: header parsing and the upload's data file.

Plain logic: no Flask, no database. The data file's size is the upload's offset, so the offset
survives a restart of any web node that shares DATA_DIR.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UploadRejected

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CHUNK = 1024 * 1024
METADATA_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_METADATA_HEADER = 4096


class TusError(UploadRejected):
    """A protocol refusal with its HTTP status (400, 404, 409, 410, 412, 413, 415, 423, 460)."""


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_HEADER:
        raise TusError("Upload-Metadata is too long", 400)
    metadata: dict[str, str] = {}
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not METADATA_KEY_RE.match(key) or key in metadata:
            raise TusError(f"Malformed Upload-Metadata key: {key[:64]!r}", 400)
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(f"Upload-Metadata value of {key!r} is not base64 UTF-8", 400) from None
        metadata[key] = _sanitise(value)
    return metadata


def _sanitise(value: str) -> str:
    """Drop control characters and path parts; keep at most 255 characters."""
    value = "".join(ch for ch in value if ch.isprintable())
    return os.path.basename(value.replace("\\", "/"))[:255]


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`; 400 for an unknown algorithm."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise TusError(f"Unsupported checksum algorithm {algorithm[:32]!r}", 400)
    try:
        return algorithm.lower(), base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise TusError("Upload-Checksum digest is not base64", 400) from None


def parse_non_negative(name: str, value: str | None) -> int:
    """An integer header such as Upload-Length or Upload-Offset; 400 when missing or invalid."""
    if value is None or not value.isdigit():
        raise TusError(f"{name} must be a non-negative integer", 400)
    return int(value)


class DataFile:
    """The bytes received so far for one upload, appended in place."""

    def __init__(self, path: Path):
        self.path = path

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "xb"):
            pass

    def exists(self) -> bool:
        return self.path.is_file()

    def offset(self) -> int:
        return self.path.stat().st_size

    def head(self, size: int = 8192) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read(size)

    def append(
        self,
        stream: BinaryIO,
        offset: int,
        limit: int,
        checksum: tuple[str, bytes] | None,
        on_progress: Callable[[int], None] = lambda _n: None,
    ) -> int:
        """Append the body at `offset`, at most `limit` bytes; returns the new offset.

        Without a checksum, what arrived before an interruption is kept (the client resumes
        from it). With one, the chunk is all or nothing: a mismatch, an excess or an
        interruption truncates the file back to `offset`.
        """
        digest = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        received = 0
        with open(self.path, "r+b") as out:
            out.seek(offset)
            try:
                while chunk := stream.read(CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise TusError("The body goes past Upload-Length", 413)
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    on_progress(received)
                if digest is not None and digest.digest() != checksum[1]:
                    raise TusError("Checksum mismatch: the chunk was discarded", 460)
            except BaseException as exc:
                if digest is not None or isinstance(exc, TusError):
                    out.truncate(offset)
                raise
        return offset + received

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
