"""Extraction speed: our ingest extractor against `unzip -q` and `tar -xzf` on the same file and disk.

    .venv/bin/python bench/extract_speed.py [--mib 2048] [--runs 5]

Builds one recording (an incompressible MP4 of --mib MiB plus its CSVs) as a ZIP with the MP4
stored and as a TAR.GZ, then times, per run and format: the system tool, our extractor with
progress reporting (to an in-memory Redis) and every guard on, and our extractor without
progress. Each output is deleted and the disk synced between timings. Medians and ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import fakeredis
from report import ROOT, machine_line, write_section

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from factories import recording_files  # noqa: E402

from signpipe.archive import Limits, extract_archive  # noqa: E402
from signpipe.progress import ProgressStore, ThrottledReporter, new_progress  # noqa: E402

MIB = 1024 * 1024
RID = "BENCH_EXTRACT"


def build(work: Path, mib: int) -> tuple[Path, Path]:
    """The same recording as a ZIP (stored MP4) and a TAR.GZ, written in chunks."""
    files = recording_files(RID, mp4_size=1024)
    mp4_rel = next(rel for rel in files if rel.endswith(".mp4"))
    mp4 = work / "video.mp4"
    with open(mp4, "wb") as out:
        out.write(files[mp4_rel][:32])  # the ftyp box
        for _ in range(mib):
            out.write(os.urandom(MIB))
    zip_path, tgz_path = work / "rec.zip", work / "rec.tar.gz"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for rel, data in files.items():
            if rel == mp4_rel:
                zf.write(mp4, rel, compress_type=zipfile.ZIP_STORED)
            else:
                zf.writestr(rel, data)
    with tarfile.open(tgz_path, "w:gz", compresslevel=1) as tf:
        for rel, data in files.items():
            if rel == mp4_rel:
                tf.add(mp4, rel)
            else:
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    mp4.unlink()
    return zip_path, tgz_path


def timed(action) -> float:
    os.sync()
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def ours(archive: Path, out: Path, kind: str, progress: bool) -> None:
    store = ProgressStore(fakeredis.FakeRedis())
    reporter = ThrottledReporter(store, "bench", new_progress("bench")) if progress else None
    extract_archive(archive, out, kind, Limits(max_bytes=64 * 1024**3), reporter)


def measure(archive: Path, kind: str, work: Path, runs: int) -> dict[str, float]:
    out = work / "out"
    tool = (
        ["unzip", "-q", str(archive), "-d", str(out)]
        if kind == "zip"
        else ["tar", "-xzf", str(archive), "-C", str(out)]
    )
    cases = {
        "tool": lambda: (out.mkdir(), subprocess.run(tool, check=True)),
        "ours": lambda: ours(archive, out, kind, True),
        "ours, progress off": lambda: ours(archive, out, kind, False),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for run in range(runs):
        for name in names[run % 3 :] + names[: run % 3]:  # rotate, so no case always goes first
            shutil.rmtree(out, ignore_errors=True)
            samples[name].append(timed(cases[name]))
    shutil.rmtree(out, ignore_errors=True)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="extract-bench-", dir=ROOT.parent) as tmp:
        work = Path(tmp)
        zip_path, tgz_path = build(work, args.mib)
        results = {
            "ZIP (stored MP4)": measure(zip_path, "zip", work, args.runs),
            "TAR.GZ": measure(tgz_path, "tar.gz", work, args.runs),
        }
    rows, met = [], True
    for fmt, r in results.items():
        ratio, overhead = r["ours"] / r["tool"], r["ours"] / r["ours, progress off"] - 1
        ok = ratio <= 1.1 and overhead <= 0.02
        met &= ok
        tool = "unzip -q" if fmt.startswith("ZIP") else "tar -xzf"
        rows.append(
            f"| {fmt} | {tool} {r['tool']:.2f} s | {r['ours']:.2f} s | {ratio:.2f} | "
            f"{r['ours, progress off']:.2f} s | {overhead * 100:+.1f} % | {'met' if ok else '**not met**'} |"
        )
    text = "\n".join(
        [
            f"## Extraction: {args.mib} MiB recording, ours vs unzip and tar",
            "",
            "Target: ≤ 1.1× the tool's wall time; progress reporting costs ≤ 2 %.",
            "",
            machine_line(),
            f"- Command: `.venv/bin/python bench/extract_speed.py --mib {args.mib} --runs {args.runs}`; "
            "medians, outputs deleted and the disk synced before each timing; progress goes to an "
            "in-memory Redis",
            "",
            "| format | tool | ours (guards + progress) | ratio | ours, progress off | progress cost "
            "| target |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section("bench/extract_speed.py", text)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
