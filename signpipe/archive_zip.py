"""ZIP extraction: the central directory and every local header are checked before writing."""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import zipfile_deflate64  # noqa: F401  (teaches zipfile Deflate64, which Windows Explorer uses)

from .archive_guard import Limits, Planned, Writer, check_budget, check_ratio
from .errors import InvalidArchive, UnsafeArchive

ZIP_UTF8_FLAG = 0x800
ZIP_ENCRYPTED_FLAG = 0x1
ZIP_AES_METHOD = 99
EOCD_SEARCH = 22 + 65535 + 20  # end record, the longest comment, the ZIP64 locator
LOCAL_HEADER = struct.Struct("<4s5H3I2H")


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
    check_ratio(limits, info.file_size, info.compress_size, name)


def extract_zip(archive: Path, writer: Writer) -> None:
    check_budget(writer.limits, zip_entry_count(archive), 0)
    with zipfile.ZipFile(archive) as zf, open(archive, "rb") as fh:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        if infos and infos[0].header_offset != 0:
            raise UnsafeArchive("The file is two archives at once (data before the ZIP's first entry)")
        declared = sum(i.file_size for i in infos)
        check_budget(writer.limits, len(infos), declared)
        check_ratio(writer.limits, declared, sum(i.compress_size for i in infos), "(whole archive)")
        plan = []
        for info, following in pairwise([*infos, None]):
            _zip_member_checks(fh, info, following, writer.limits)
            target = writer.claim(zip_name(info), info.is_dir())
            if target is not None:
                plan.append(
                    Planned(target, info.is_dir(), info.file_size, info.orig_filename, partial(zf.open, info))
                )
        writer.write_plan(plan)
