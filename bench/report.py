"""Shared by the benchmark scripts: machine facts and writing one section of BENCHMARKS.md."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def sh(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_line() -> str:
    """Date, machine, Python and commit, for the head of a section."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    ram = psutil.virtual_memory().total / 2**30
    python = platform.python_version()
    return (
        f"- Date: {sh(['date', '-u'])}\n"
        f"- Machine: {psutil.cpu_count()} CPUs ({cpu}), {ram:.1f} GiB RAM, Python {python}\n"
        f"- Commit: `{sh(['git', 'rev-parse', '--short', 'HEAD'])}`"
    )


def write_section(script: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace this script's section (between its marker comments), or append it."""
    begin = f"<!-- BEGIN {script} (generated; edit the script, not this section) -->"
    end = f"<!-- END {script} -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    start, stop = current.find(begin), current.find(end)
    if start != -1 and stop > start:
        new = current[:start] + block + current[stop + len(end) :].lstrip("\n")
    else:
        new = current.rstrip("\n") + "\n\n" + block
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(path)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
