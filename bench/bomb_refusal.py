"""Time and memory to refuse archive bombs, each in a fresh process, against an idle baseline.

    .venv/bin/python bench/bomb_refusal.py [--gib 12] [--runs 5]

Bombs: a TAR.GZ of --gib GiB of zeros (compressed about 1000:1), a ZIP of 1 GiB of zeros in one
deflated entry, and a non-recursive overlapping ZIP (2000 directory entries sharing one 1 MiB
deflated stream, 2 GiB declared). Each refusal runs `extract_archive` with the default limits in
a child process; the baseline child imports the same modules and does nothing. Medians of the
runs; RSS is the child's peak (ru_maxrss).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from report import ROOT, machine_line, summary_row, write_section, write_summary

MIB = 1024 * 1024
CHILD = """
import json, resource, shutil, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from signpipe.archive import extract_archive, Limits
from signpipe.errors import SignpipeError
path, kind, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
began = time.perf_counter()
outcome = "idle"
if kind != "idle":
    try:
        extract_archive(Path(path), dest, kind, Limits())
        outcome = "ACCEPTED"
    except SignpipeError as exc:
        outcome = exc.message
elapsed = time.perf_counter() - began
written = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) if dest.exists() else 0
shutil.rmtree(dest, ignore_errors=True)
print(json.dumps({{"seconds": elapsed, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "written": written, "outcome": outcome}}))
"""


def tgz_bomb(path: Path, gib: int) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("BOMB/zeros.csv")
        info.size = gib * 1024 * MIB
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        zeros = bytes(16 * MIB)
        for _ in range(info.size // len(zeros)):
            gz.write(zeros)


def zip_ratio_bomb(path: Path) -> None:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("BOMB/zeros.csv", "w") as fh,
    ):
        for _ in range(64):
            fh.write(bytes(16 * MIB))


def zip_overlap_bomb(path: Path, entries: int = 2000) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BOMB/f00000.csv", bytes(MIB))
    data = buffer.getvalue()
    cd, eocd = data.index(b"PK\x01\x02"), data.index(b"PK\x05\x06")
    entry = data[cd:eocd]
    directory = b"".join(entry.replace(b"f00000", f"f{i:05d}".encode()) for i in range(entries))
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, entries, entries, len(directory), cd)
    path.write_bytes(data[:cd] + directory + bytes(tail))


def measure(path: Path, kind: str, work: Path) -> dict:
    script = CHILD.format(root=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), kind, str(work / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=12)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bomb-bench-") as tmp:
        work = Path(tmp)
        bombs = [
            (
                f"TAR.GZ, {args.gib} GiB of zeros",
                work / "bomb.tgz",
                "tar.gz",
                lambda p: tgz_bomb(p, args.gib),
            ),
            ("ZIP, 1 GiB of zeros in one entry", work / "ratio.zip", "zip", zip_ratio_bomb),
            ("ZIP, 2000 overlapping entries", work / "overlap.zip", "zip", zip_overlap_bomb),
        ]
        for _, path, _, build in bombs:
            build(path)
        baseline = [measure(work / "none", "idle", work) for _ in range(args.runs)]
        base_s = statistics.median(r["seconds"] for r in baseline)
        base_mb = statistics.median(r["rss_kb"] for r in baseline) / 1024
        rows = [f"| idle process (baseline) | – | {base_s:.3f} | {base_mb:.1f} | – | – | – |"]
        summary = []
        for label, path, kind, _ in bombs:
            runs = [measure(path, kind, work) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = statistics.median(r["rss_kb"] for r in runs) / 1024
            written = max(r["written"] for r in runs) / MIB
            outcome = runs[0]["outcome"]
            rows.append(
                f"| {label} | {path.stat().st_size / MIB:.1f} MiB | {seconds:.3f} | {rss:.1f} | "
                f"+{rss - base_mb:.1f} | {written:.1f} | {outcome} |"
            )
            ok = seconds <= 5 and rss - base_mb <= 16
            summary.append(
                summary_row(
                    f"Refuse a bomb: {label} (seconds; RSS over an idle process)",
                    f"idle process: {base_mb:.0f} MB",
                    f"{seconds:.3f} s; +{rss - base_mb:.1f} MB; {written:.1f} MiB written",
                    "—",
                    "≤ 5 s, ≤ 16 MB over idle",
                    ok,
                )
            )
    text = "\n".join(
        [
            "## Archive bombs: time and memory to refuse",
            "",
            "Target: a multi-GB bomb is refused within seconds and a few MB of RAM above an idle process.",
            "",
            machine_line(),
            f"- Command: `.venv/bin/python bench/bomb_refusal.py --gib {args.gib} --runs {args.runs}`; "
            f"medians of {args.runs} fresh processes each, default limits",
            "",
            "| bomb | file size | seconds to refuse | peak RSS MB | RSS over idle MB | MiB written (max) "
            "| reason |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section("bench/bomb_refusal.py", text)
        write_summary("bench/bomb_refusal.py", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
