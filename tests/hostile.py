"""A generated corpus of hostile and broken archives: (name, file name, bytes, expected reason).

Every archive is built here, in memory, so no binary sample is committed.
"""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import warnings
import zipfile
from dataclasses import dataclass

from factories import make_tar_bytes, make_zip_bytes, recording_files

RID = "HOSTILE_REC"
ESCAPE = "../../../../pwned.txt"


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    data: bytes
    reason: str  # a regular expression the refusal must match


def valid_files() -> dict[str, bytes]:
    return recording_files(RID)


def zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]], base: bool = True) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        if base:
            for rel, data in valid_files().items():
                zf.writestr(rel, data)
        for info, data in entries:
            zf.writestr(info, data)
    return buffer.getvalue()


def raw_name(name: str) -> zipfile.ZipInfo:
    """A ZipInfo whose name zipfile will write as given (no sanitising)."""
    info = zipfile.ZipInfo("placeholder")
    info.filename = name
    return info


def zip_link(target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{RID}/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def tar_with(
    members: list[tarfile.TarInfo | tuple[str, bytes]],
    compress: bool = True,
    base: bool = True,
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer,
        mode="w:gz" if compress else "w",
        format=fmt,
        encoding="utf-8",
        errors="surrogateescape",
    ) as tf:
        if base:
            for rel, data in valid_files().items():
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        for member in members:
            if isinstance(member, tuple):
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
            else:
                tf.addfile(member)
    return buffer.getvalue()


def tar_special(kind: bytes, name: str = f"{RID}/special", linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def zip_mismatched_local_name() -> bytes:
    data = zip_with([(f"{RID}/aaaa.csv", b"a\n")], base=False)
    local = data.index(f"{RID}/aaaa.csv".encode())  # the local header's copy comes first
    return (
        data[:local]
        + f"{RID}/../x.csv".encode()[: len(f"{RID}/aaaa.csv")]
        + data[local + len(f"{RID}/aaaa.csv") :]
    )


def zip_overlapping() -> bytes:
    """Two central-directory entries pointing at the same local data (non-recursive zip bomb)."""
    data = zip_with([(f"{RID}/a.csv", b"x" * 5000)], base=False)
    cd = data.index(b"PK\x01\x02")
    eocd = data.index(b"PK\x05\x06")
    entry = data[cd:eocd]
    twin = entry.replace(f"{RID}/a.csv".encode(), f"{RID}/b.csv".encode())
    directory = entry + twin
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, 2, 2, len(directory), cd)
    return data[:cd] + directory + bytes(tail)


def zip_size_lie() -> bytes:
    """The declared uncompressed size is smaller than the data really inflates to."""
    data = bytearray(zip_with([(f"{RID}/big.csv", b"y" * 100_000)], base=False))
    struct.pack_into("<I", data, 22, 1000)  # local header
    cd = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 1000)  # central directory
    return bytes(data)


def zip_declares_too_much() -> bytes:
    """A central directory that claims a 4 GB member: refused before anything is inflated."""
    data = bytearray(zip_with([(f"{RID}/huge.csv", b"z" * 1000)], base=False))
    cd = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 0xFFFFFFF0)
    return bytes(data)


def zip_encrypted() -> bytes:
    data = bytearray(make_zip_bytes(valid_files()))
    struct.pack_into("<H", data, 6, struct.unpack_from("<H", data, 6)[0] | 0x1)
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) >= 0:
        struct.pack_into("<H", data, offset + 8, struct.unpack_from("<H", data, offset + 8)[0] | 0x1)
        offset += 4
    return bytes(data)


def zip_non_utf8_name() -> bytes:
    """A name byte that is not UTF-8, without the UTF-8 flag (in both headers)."""
    data = zip_with([(f"{RID}/caf#.csv", b"a\n")], base=False)
    return data.replace(f"{RID}/caf#.csv".encode(), f"{RID}/caf\xff.csv".encode("latin-1"))


def gzip_bomb(size: int) -> bytes:
    """A TAR.GZ with one member of `size` zero bytes, built in streaming fashion."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz:
        info = tarfile.TarInfo(f"{RID}/zeros.csv")
        info.size = size
        gz.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        chunk = bytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            gz.write(chunk)
    return buffer.getvalue()


def polyglot() -> bytes:
    """A valid TAR.GZ with a ZIP appended: two tools would see two different trees."""
    return make_tar_bytes(valid_files()) + make_zip_bytes({f"{RID}/other.csv": b"a\n"})


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


def corpus() -> list[Case]:
    long = "n" * 256
    many = [(f"{RID}/f{i}.csv", b"a\n") for i in range(60)]
    return [
        Case("zip-dotdot", "a.zip", zip_with([(raw_name(f"{RID}/{ESCAPE}"), b"x")]), r"outside"),
        Case("zip-leading-dotdot", "a.zip", zip_with([(raw_name(ESCAPE), b"x")]), r"outside"),
        Case("zip-absolute", "a.zip", zip_with([(raw_name("/tmp/pwned.txt"), b"x")]), r"absolute"),
        Case("zip-drive-letter", "a.zip", zip_with([(raw_name("C:/pwned.txt"), b"x")]), r"absolute"),
        Case(
            "zip-backslash", "a.zip", zip_with([(raw_name(f"{RID}\\..\\..\\pwned.txt"), b"x")]), r"backslash"
        ),
        Case("zip-nul", "a.zip", zip_with([(raw_name(f"{RID}/a\x00.csv"), b"x")]), r"control"),
        Case("zip-control-char", "a.zip", zip_with([(raw_name(f"{RID}/a\x1b.csv"), b"x")]), r"control"),
        Case("zip-non-utf8", "a.zip", zip_non_utf8_name(), r"UTF-8"),
        Case("zip-long-component", "a.zip", zip_with([(f"{RID}/{long}.csv", b"x")]), r"255"),
        Case(
            "zip-duplicate",
            "a.zip",
            zip_with([(f"{RID}/dup.csv", b"1"), (f"{RID}/dup.csv", b"2")]),
            r"duplicate",
        ),
        Case(
            "zip-case-collision",
            "a.zip",
            zip_with([(f"{RID}/Dup.csv", b"1"), (f"{RID}/dUP.csv", b"2")]),
            r"duplicate",
        ),
        Case("zip-name-mismatch", "a.zip", zip_mismatched_local_name(), r"differs"),
        Case("zip-symlink", "a.zip", zip_with([(zip_link("/etc/passwd"), b"/etc/passwd")]), r"symbolic link"),
        Case("zip-fifo", "a.zip", zip_with([(_zip_mode(f"{RID}/fifo", stat.S_IFIFO), b"")]), r"special"),
        Case("zip-overlap-bomb", "a.zip", zip_overlapping(), r"overlap"),
        Case("zip-ratio-bomb", "a.zip", zip_with([(f"{RID}/zeros.csv", bytes(30 * 1024 * 1024))]), r"ratio"),
        Case("zip-size-lie", "a.zip", zip_size_lie(), r"corrupt|CRC"),
        Case("zip-declares-too-much", "a.zip", zip_declares_too_much(), r"declares more than"),
        Case("zip-too-many-entries", "a.zip", zip_with(many), r"entries"),
        Case("zip-encrypted", "a.zip", zip_encrypted(), r"Password-protected"),
        Case("zip-truncated", "a.zip", truncated(make_zip_bytes(valid_files())), r"corrupt|truncated|read"),
        Case("zip-corrupt-data", "a.zip", corrupt_middle(make_zip_bytes(valid_files())), r"corrupt|read|CRC"),
        Case("zip-empty", "a.zip", make_zip_bytes({}), r"empty"),
        Case("zip-two-roots", "a.zip", zip_with([("OTHER_ROOT/a.csv", b"a\n")]), r"exactly one root"),
        Case("tgz-dotdot", "a.tgz", tar_with([(f"{RID}/{ESCAPE}", b"x")]), r"outside"),
        Case("tgz-absolute", "a.tgz", tar_with([("/tmp/pwned.txt", b"x")]), r"absolute"),
        Case(
            "tgz-non-utf8",
            "a.tgz",
            tar_with([(f"{RID}/caf\udcff.csv", b"x")], fmt=tarfile.GNU_FORMAT),
            r"UTF-8",
        ),
        Case("tgz-symlink", "a.tgz", tar_with([tar_special(tarfile.SYMTYPE, linkname="/etc")]), r"link"),
        Case(
            "tgz-symlink-then-write",
            "a.tgz",
            tar_with([tar_special(tarfile.SYMTYPE, f"{RID}/out", "/tmp"), (f"{RID}/out/pwned.txt", b"x")]),
            r"link",
        ),
        Case(
            "tgz-hardlink", "a.tgz", tar_with([tar_special(tarfile.LNKTYPE, linkname="/etc/passwd")]), r"link"
        ),
        Case("tar-chardev", "a.tar", tar_with([tar_special(tarfile.CHRTYPE)], compress=False), r"special"),
        Case("tar-blockdev", "a.tar", tar_with([tar_special(tarfile.BLKTYPE)], compress=False), r"special"),
        Case("tar-fifo", "a.tar", tar_with([tar_special(tarfile.FIFOTYPE)], compress=False), r"special"),
        Case(
            "tar-sparse",
            "a.tar",
            tar_with([tar_special(tarfile.GNUTYPE_SPARSE)], compress=False, fmt=tarfile.GNU_FORMAT),
            r"sparse|special|corrupt",
        ),
        Case("tar-dotdot", "a.tar", tar_with([(f"{RID}/{ESCAPE}", b"x")], compress=False), r"outside"),
        Case("tgz-bomb", "a.tgz", gzip_bomb(64 * 1024 * 1024), r"ratio"),
        Case("tgz-truncated", "a.tgz", truncated(make_tar_bytes(valid_files())), r"corrupt|truncated"),
        Case(
            "tar-truncated",
            "a.tar",
            truncated(make_tar_bytes(valid_files(), compress=False)),
            r"corrupt|truncated|read",
        ),
        Case(
            "tar-cut-in-a-header",
            "a.tar",
            make_tar_bytes(valid_files(), compress=False)[: 512 * 3 + 100],
            r"truncated",
        ),
        Case("tgz-bad-crc", "a.tgz", _flip_gzip_crc(make_tar_bytes(valid_files())), r"CRC|corrupt|read"),
        Case("tgz-empty", "a.tgz", tar_with([], base=False), r"empty"),
        Case("tgz-two-roots", "a.tgz", tar_with([("OTHER_ROOT/a.csv", b"a\n")]), r"exactly one root"),
        Case(
            "tgz-duplicate", "a.tgz", tar_with([(f"{RID}/d.csv", b"1"), (f"{RID}/d.csv", b"2")]), r"duplicate"
        ),
        Case("tgz-zip-polyglot", "a.tgz", polyglot(), r"two archives"),
        Case("tgz-two-tars", "a.tgz", two_tars_in_one_gzip(), r"after the end"),
        Case("tar-two-tars", "a.tar", two_tars(), r"after the end"),
        Case("zip-two-zips", "a.zip", two_zips(), r"two archives"),
        Case(
            "zip-junk-flood",
            "a.zip",
            zip_with([(f"__MACOSX/{RID}/._f{i}", b"j") for i in range(60)]),
            r"entries",
        ),
        Case("tar-too-many-entries", "a.tar", tar_with(many, compress=False), r"entries"),
        Case("zip-utf8-flag-bad-bytes", "a.zip", zip_bad_utf8_flagged(), r"UTF-8"),
        Case("gzip-not-tar", "a.tar.gz", gzip.compress(b"ID,value\n1,2\n" * 100), r"not an archive"),
        Case("csv-named-zip", "a.zip", b"ID,value\n1,2\n", r"not an archive"),
        Case("html-named-tgz", "a.tgz", b"<!doctype html><html></html>" + bytes(600), r"not an archive"),
        Case("zip-named-tar", "a.tar", make_zip_bytes(valid_files()), r"ZIP archive"),
    ]


def _zip_mode(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (kind | 0o644) << 16
    return info


def _flip_gzip_crc(data: bytes) -> bytes:
    """The gzip trailer's CRC no longer matches the data: silent corruption must be caught."""
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


def two_tars() -> bytes:
    """A second TAR after the first one's end marker: tools that read on would see more files."""
    return make_tar_bytes(valid_files(), compress=False) + make_tar_bytes(
        {"OTHER/x.csv": b"a\n"}, compress=False
    )


def two_tars_in_one_gzip() -> bytes:
    return gzip.compress(two_tars())


def two_zips() -> bytes:
    return make_zip_bytes({"OTHER/x.csv": b"a\n"}) + make_zip_bytes(valid_files())


def zip_bad_utf8_flagged() -> bytes:
    """The UTF-8 flag is set but the name bytes are not UTF-8."""
    data = zip_with([(f"{RID}/caf\u00e9.csv", b"a\n")], base=False)  # written with the flag
    return data.replace("caf\u00e9".encode(), b"caf\xff\xfe")
