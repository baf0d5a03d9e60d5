"""The checks every extractor shares: safe member paths, budgets, and the one place that writes.

Only regular files and directories are ever created, with fixed permissions; budgets count the
bytes actually produced, while writing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import StorageFull, UnsafeArchive

CHUNK = 1024 * 1024
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


class Writer:
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
        ensure_free_space(self.dest, total)
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
                    check_ratio(self.limits, self.bytes, consumed(), name)
                out.write(chunk)
                self.progress(self.files, self.bytes, fraction(), self.total_files)
        self.files += 1
        self.progress(self.files, self.bytes, fraction(), self.total_files)


def ensure_free_space(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    margin = 256 * 1024 * 1024
    if needed + margin > free:
        raise StorageFull(
            "Not enough free disk space to extract this archive",
            {"needed_bytes": needed, "free_bytes": free},
        )


def check_ratio(limits: Limits, produced: int, consumed: int, name: str) -> None:
    if produced > limits.ratio_floor and produced > limits.max_ratio * max(consumed, 1):
        raise UnsafeArchive(f"Compression ratio over {limits.max_ratio:g}:1 (zip bomb)", {"entry": name})


def check_budget(limits: Limits, count: int, declared: int) -> None:
    if count > limits.max_entries:
        raise UnsafeArchive(f"Archive has more than {limits.max_entries} entries")
    if declared > limits.max_bytes:
        raise UnsafeArchive(f"Archive declares more than the {limits.max_bytes} byte limit")
