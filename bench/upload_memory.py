"""Upload benchmark: memory and throughput of POST /upload under real Gunicorn.

    .venv/bin/python bench/upload_memory.py [--sizes 1024,2048] [--runs 3] [--workdir DIR]

For each size (MiB) it builds a real stored ZIP (one big member, written in chunks), starts
Gunicorn exactly as production does (`gunicorn -c gunicorn.conf.py app:app`, gthread workers)
with its own DATA_DIR, SQLite database and Redis DB index, and then, per run:

* baseline: times `cat file > dest` on DATA_DIR's filesystem (no fsync, like the upload);
* upload: times `curl -F file=@...` (curl streams the file from disk) against /upload,
  sampling every 50 ms the RSS of the Gunicorn master and of each worker, and reading
  /proc/<pid>/io of the workers before and after to get the bytes written per byte uploaded.

Medians of the runs go into a table printed on stdout and into BENCHMARKS.md (only the section
between this script's marker comments is replaced). No Celery worker runs: the ingest job
waits in the queue, and at the end the script deletes only the Redis keys it created in its DB.
Only loopback traffic; every wait has a timeout; Gunicorn is always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
import requests
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MIB = 1024 * 1024
MB = 1_000_000
CHUNK = 4 * MIB
SAMPLE_INTERVAL = 0.05
TARGET_RSS_MB = 150
TARGET_SIZE_MIB = 2048
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
SECTION_TITLE = "Upload: memory and throughput (POST /upload)"
OWN_PREFIXES = ("_kombu.", "unacked")
QUEUE_KEY = "ingest"


# --------------------------------------------------------------------------- test data


def make_zip(path: Path, size: int) -> int:
    """A real stored ZIP of about `size` bytes: one member written in chunks. Returns its size."""
    member = max(size - 1024, 0)  # headers, zip64 extra fields and the central directory
    block = bytearray(os.urandom(CHUNK))
    info = zipfile.ZipInfo("recording/video.bin", date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
        zf.open(info, "w", force_zip64=True) as out,
    ):
        written, n = 0, 0
        while written < member:
            block[:8] = n.to_bytes(8, "little")  # no two chunks alike
            piece = memoryview(block)[: min(CHUNK, member - written)]
            out.write(piece)
            written += len(piece)
            n += 1
    return path.stat().st_size


# --------------------------------------------------------------------------- Gunicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    workers: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def master(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def worker_procs(self) -> list[psutil.Process]:
        try:
            return self.master().children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_gunicorn(data_dir: Path, redis_url: str, max_upload: int, workers: int, log_path: Path) -> Server:
    port = free_port()
    env = dict(os.environ)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "APP_ENV"):
        env.pop(name, None)
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        WEB_WORKERS=str(workers),
        DATA_DIR=str(data_dir),
        REDIS_URL=redis_url,
        MAX_UPLOAD_BYTES=str(max_upload),
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(proc, port, log_path, workers)


def wait_ready(server: Server, timeout: float = 90) -> None:
    """/healthz answers 200, all workers exist and their RSS has settled (app imported)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.proc.returncode}\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn not ready after {timeout}s\n{server.log_tail()}")
        try:
            ok = requests.get(server.base + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            ok = False
        if ok and len(server.worker_procs()) == server.workers:
            break
        time.sleep(0.3)
    previous: dict[int, int] = {}
    stable = 0
    while time.monotonic() < deadline and stable < 3:
        current = {p.pid: rss_of(p) for p in server.worker_procs()}
        stable = stable + 1 if current == previous else 0
        previous = current
        time.sleep(0.5)
    # Each worker imports the app on boot; send a few cheap requests so that lazy imports on the
    # first request do not count as upload memory.
    for _ in range(server.workers * 3):
        with contextlib.suppress(requests.RequestException):
            requests.get(server.base + "/healthz", timeout=5)


def stop_gunicorn(server: Server | None) -> None:
    if server is None or server.proc.poll() is not None:
        return
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.proc.wait(timeout=40)  # graceful_timeout is 30 s
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)


# --------------------------------------------------------------------------- measurement


def rss_of(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def proc_io(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/io") as fh:
            return {k: int(v) for k, v in (line.split(":") for line in fh)}
    except (OSError, ValueError):
        return {}


class RssSampler(threading.Thread):
    """Peak RSS of the master and of every child of it, sampled every 50 ms."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.stop_event = threading.Event()
        self.master_peak = 0
        self.worker_peak: dict[int, int] = {}
        self.samples = 0
        self.pids_seen: set[int] = set()

    def run(self) -> None:
        master = self.server.master()
        procs: dict[int, psutil.Process] = {}
        while not self.stop_event.is_set():
            self.master_peak = max(self.master_peak, rss_of(master))
            try:
                children = master.children(recursive=False)
            except psutil.NoSuchProcess:
                children = []
            for child in children:
                proc = procs.setdefault(child.pid, child)
                self.pids_seen.add(child.pid)
                self.worker_peak[child.pid] = max(self.worker_peak.get(child.pid, 0), rss_of(proc))
            self.samples += 1
            self.stop_event.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


@dataclass
class UploadResult:
    seconds: float
    http_code: str
    response: str
    job_id: str | None
    master_peak: int
    worker_peak: dict[int, int]
    worker_idle: dict[int, int]
    worker_after: dict[int, int]
    handler_pid: int | None
    io_delta: dict[str, int]
    workers_changed: bool
    samples: int
    curl_stderr: str


def time_cat(src: Path, dest: Path, timeout: float) -> float:
    os.sync()  # start with no dirty pages of the previous step (not timed)
    start = time.perf_counter()
    with open(dest, "wb") as out:
        subprocess.run(["cat", str(src)], stdout=out, check=True, timeout=timeout)
    seconds = time.perf_counter() - start
    return seconds


def upload(server: Server, path: Path, resp_path: Path, timeout: float) -> UploadResult:
    os.sync()
    workers = server.worker_procs()
    idle = {p.pid: rss_of(p) for p in workers}
    io_before = {p.pid: proc_io(p.pid) for p in workers}
    sampler = RssSampler(server)
    sampler.start()
    time.sleep(0.2)
    argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-H",
        "Expect:",  # no 100-continue round trip
        "--max-time",
        str(int(timeout)),
        "-o",
        str(resp_path),
        "-w",
        "%{http_code}",
        "-F",
        f"file=@{path};type=application/zip",
        server.base + "/upload",
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
    finally:
        seconds = time.perf_counter() - start
        time.sleep(0.3)
        sampler.stop()
    io_after = {pid: proc_io(pid) for pid in io_before}
    after = {p.pid: rss_of(p) for p in workers}
    deltas = {
        pid: {k: io_after[pid].get(k, 0) - io_before[pid].get(k, 0) for k in io_before[pid]}
        for pid in io_before
        if io_after.get(pid)
    }
    handler = max(deltas, key=lambda pid: deltas[pid].get("wchar", 0), default=None)
    response = resp_path.read_text(errors="replace") if resp_path.exists() else ""
    job_id = None
    with contextlib.suppress(ValueError, AttributeError):
        job_id = json.loads(response).get("job_id")
    return UploadResult(
        seconds=seconds,
        http_code=done.stdout.strip(),
        response=response[:500],
        job_id=job_id,
        master_peak=sampler.master_peak,
        worker_peak=dict(sampler.worker_peak),
        worker_idle=idle,
        worker_after=after,
        handler_pid=handler,
        io_delta=deltas.get(handler, {}) if handler else {},
        workers_changed=sampler.pids_seen != set(idle),
        samples=sampler.samples,
        curl_stderr=done.stderr.strip()[:500],
    )


# --------------------------------------------------------------------------- Redis cleanup


def redis_snapshot(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


def redis_cleanup(client: redis.Redis, before: set[bytes], job_ids: list[str]) -> list[str]:
    """Delete only what this run created: its progress keys, its queued messages, new Celery keys."""
    removed = []
    for job_id in job_ids:
        if client.delete(f"extraction:{job_id}"):
            removed.append(f"extraction:{job_id}")
    if client.type(QUEUE_KEY) == b"list":
        for raw in client.lrange(QUEUE_KEY, 0, -1):
            try:
                headers = json.loads(raw).get("headers", {})
            except ValueError:
                continue
            if any(job_id in str(headers.get("argsrepr", "")) for job_id in job_ids):
                client.lrem(QUEUE_KEY, 1, raw)
                removed.append(f"{QUEUE_KEY}[message]")
        if QUEUE_KEY.encode() not in before and client.llen(QUEUE_KEY) == 0:
            client.delete(QUEUE_KEY)
    for key in redis_snapshot(client) - before:
        name = key.decode(errors="replace")
        if name.startswith(OWN_PREFIXES) or name == QUEUE_KEY:
            client.delete(key)
            removed.append(name)
    return removed


# --------------------------------------------------------------------------- report


def sh(argv: list[str], strip: bool = True) -> str:
    try:
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip() if strip else out


def machine_info(data_dir: Path) -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = "?"
    best = ""
    for part in psutil.disk_partitions(all=True):
        if str(data_dir).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
            best, fs = part.mountpoint, f"{part.fstype} ({part.device} on {part.mountpoint})"
    # Read-only: --no-optional-locks keeps git from refreshing the index.
    dirty = sh(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], strip=False)
    return {
        "date": sh(["date", "-u"]),
        "nproc": sh(["nproc"]),
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "fs": fs,
        "commit": sh(["git", "rev-parse", "--short", "HEAD"]),
        "dirty": ", ".join(line[3:] for line in dirty.splitlines() if line.strip()) if dirty != "?" else "?",
        "gunicorn": sh([str(BIN / "gunicorn"), "--version"]),
        "sfd": package_version("streaming-form-data"),
        "curl": sh(["curl", "--version"]).splitlines()[0].split(" (")[0] if shutil.which("curl") else "?",
    }


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


@dataclass
class SizeResult:
    mib: int
    file_bytes: int
    cat_mbs: list[float] = field(default_factory=list)
    up_mbs: list[float] = field(default_factory=list)
    worker_peak_mb: list[float] = field(default_factory=list)
    handler_peak_mb: list[float] = field(default_factory=list)
    handler_before_mb: list[float] = field(default_factory=list)
    handler_after_mb: list[float] = field(default_factory=list)
    master_mb: list[float] = field(default_factory=list)
    wb_per_byte: list[float] = field(default_factory=list)
    wchar_per_byte: list[float] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def table(results: list[SizeResult]) -> str:
    head = (
        "| size | runs (HTTP status) | cat MB/s | upload MB/s | upload ÷ cat | peak RSS, max over "
        "workers, MB (median / worst run) | handling worker RSS MB: before → peak → after | "
        "master peak RSS MB | written bytes per uploaded byte (write_bytes / wchar) |"
    )
    rows = [head, "|" + "---|" * 9]
    for r in results:
        cat, up = med(r.cat_mbs), med(r.up_mbs)
        ratio = up / cat if cat and up else None
        worst = max(r.worker_peak_mb) if r.worker_peak_mb else None
        rows.append(
            f"| {r.mib} MiB ({r.file_bytes:,} B) | {len(r.codes)} ({', '.join(r.codes)}) "
            f"| {fmt(cat)} | {fmt(up)} | {fmt(ratio, '.2f')} "
            f"| {fmt(med(r.worker_peak_mb), '.1f')} / {fmt(worst, '.1f')} "
            f"| {fmt(med(r.handler_before_mb), '.1f')} → {fmt(med(r.handler_peak_mb), '.1f')} → "
            f"{fmt(med(r.handler_after_mb), '.1f')} | {fmt(med(r.master_mb), '.1f')} "
            f"| {fmt(med(r.wb_per_byte), '.3f')} / {fmt(med(r.wchar_per_byte), '.3f')} |"
        )
    return "\n".join(rows)


def verdict(results: list[SizeResult]) -> str:
    big = [r for r in results if r.mib >= TARGET_SIZE_MIB]
    if not big:
        return f"not measured (no size >= {TARGET_SIZE_MIB} MiB in this run)"
    failures = [r for r in big if any(c != "202" for c in r.codes)]
    worst = max((max(r.worker_peak_mb) for r in big if r.worker_peak_mb), default=None)
    if failures or worst is None:
        return "**not met**: the upload did not succeed (see the HTTP statuses)"
    if worst < TARGET_RSS_MB:
        return f"**met**: worst worker peak {worst:.1f} MB < {TARGET_RSS_MB} MB"
    return f"**not met**: worst worker peak {worst:.1f} MB >= {TARGET_RSS_MB} MB"


def section(results: list[SizeResult], info: dict[str, str], args: argparse.Namespace) -> str:
    notes = [n for r in results for n in r.notes]
    dirty = f" (working tree differs from HEAD in: {info['dirty']})" if info["dirty"] else ""
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"Target: **every web worker stays under {TARGET_RSS_MB} MB RSS during a 2 GB upload** "
        f"— {verdict(results)}.",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, kernel {info['kernel']}, "
        f"Python {info['python']}; DATA_DIR on {info['fs']}",
        f"- Commit: `{info['commit']}`{dirty}; the server ran the files on disk as it started",
        f"- Server: {info['gunicorn']}, `gunicorn -c gunicorn.conf.py app:app`, gthread, "
        f"WEB_WORKERS={args.workers}, SQLite in DATA_DIR, Redis DB `{args.redis_url}`, no Celery "
        f"worker (the ingest job stays queued); streaming-form-data {info['sfd']}",
        f"- Client: {info['curl']} `-F file=@archive.zip` over loopback (streams from disk); file: a "
        "stored ZIP with one member, random bytes",
        f"- Command: `.venv/bin/python bench/upload_memory.py --sizes {args.sizes} --runs {args.runs}`; "
        "values are medians of the runs",
        "",
        table(results),
        "",
        "How to read it: MB = 10^6 bytes. *cat MB/s* is `cat file > dest` on DATA_DIR's filesystem "
        "without fsync, the upload's own write pattern, so both mostly measure writes into the page "
        "cache (dirty pages are flushed with `sync` before each timed step, outside the timing). "
        "*upload MB/s* is the archive size over curl's wall time, response included. *peak RSS* is "
        "sampled every 50 ms with psutil for every Gunicorn worker (children of the master); the "
        "column gives the largest worker peak of a run. The handling worker (the one whose "
        "`/proc/<pid>/io` moved) is shown just before, at the peak of and just after its upload "
        f"(medians); right after boot the workers were at {info['boot_rss']} MB. The written-bytes "
        "ratios come from `/proc/<pid>/io` of the worker that handled the request (`write_bytes` = "
        "bytes sent to the block layer, `wchar` = bytes passed to write() calls, log lines and "
        "Redis commands included).",
    ]
    if notes:
        lines += ["", "Observations:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, boot_rss: list[float]) -> list[SizeResult]:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    base = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upload-bench-", dir=base))
    data_dir = work / "data"
    data_dir.mkdir()
    client = redis.Redis.from_url(args.redis_url, socket_timeout=10, socket_connect_timeout=5)
    client.ping()
    before = redis_snapshot(client)
    job_ids: list[str] = []
    server: Server | None = None
    results: list[SizeResult] = []
    max_upload = max(sizes) * MIB * 2 + 64 * MIB
    try:
        server = start_gunicorn(data_dir, args.redis_url, max_upload, args.workers, work / "gunicorn.log")
        wait_ready(server)
        boot_rss.extend(sorted(rss_of(p) / 1e6 for p in server.worker_procs()))
        print(
            f"gunicorn pid {server.proc.pid} on port {server.port}, workers "
            f"{[p.pid for p in server.worker_procs()]}, workdir {work}",
            flush=True,
        )
        for mib in sizes:
            src = work / f"archive-{mib}MiB.zip"
            print(f"[{mib} MiB] building {src.name} ...", flush=True)
            t0 = time.perf_counter()
            size = make_zip(src, mib * MIB)
            print(f"[{mib} MiB] {size:,} bytes in {time.perf_counter() - t0:.1f}s", flush=True)
            res = SizeResult(mib, size)
            results.append(res)
            timeout = max(120.0, size / (5 * MB))  # slower than 5 MB/s is a failure anyway
            for i in range(1, args.runs + 1):
                dest = work / "cat-copy.bin"
                cat_s = time_cat(src, dest, timeout)
                dest.unlink()
                res.cat_mbs.append(size / cat_s / MB)
                up = upload(server, src, work / "response.json", timeout)
                res.codes.append(up.http_code or "none")
                if up.job_id:
                    job_ids.append(up.job_id)
                for f in (data_dir / "uploads").iterdir():
                    f.unlink()
                mb = 1e6
                worst = max(up.worker_peak.values(), default=0) / mb
                handler_peak = up.worker_peak.get(up.handler_pid, 0) / mb if up.handler_pid else 0
                line = (
                    f"[{mib} MiB] run {i}: cat {size / cat_s / MB:.0f} MB/s ({cat_s:.2f}s); "
                    f"upload HTTP {up.http_code} in {up.seconds:.2f}s = {size / up.seconds / MB:.0f} MB/s; "
                    f"worker peaks MB {sorted(round(v / mb, 1) for v in up.worker_peak.values())} "
                    f"(handler {up.handler_pid}: idle {up.worker_idle.get(up.handler_pid, 0) / mb:.1f}, "
                    f"peak {handler_peak:.1f}, after {up.worker_after.get(up.handler_pid, 0) / mb:.1f}); "
                    f"master {up.master_peak / mb:.1f} MB; io {up.io_delta}; samples {up.samples}"
                )
                print(line, flush=True)
                if up.http_code != "202":
                    res.notes.append(
                        f"{mib} MiB run {i}: HTTP {up.http_code!r}, response {up.response!r}, "
                        f"curl: {up.curl_stderr!r}"
                    )
                    print(
                        f"    response: {up.response}\n    curl: {up.curl_stderr}\n"
                        f"    gunicorn log:\n{server.log_tail(15)}",
                        flush=True,
                    )
                    continue
                if up.workers_changed:
                    res.notes.append(f"{mib} MiB run {i}: the set of worker pids changed during the upload")
                res.up_mbs.append(size / up.seconds / MB)
                res.worker_peak_mb.append(worst)
                res.handler_peak_mb.append(handler_peak)
                res.handler_before_mb.append(up.worker_idle.get(up.handler_pid, 0) / mb)
                res.handler_after_mb.append(up.worker_after.get(up.handler_pid, 0) / mb)
                res.master_mb.append(up.master_peak / mb)
                if up.io_delta:
                    res.wb_per_byte.append(up.io_delta.get("write_bytes", 0) / size)
                    res.wchar_per_byte.append(up.io_delta.get("wchar", 0) / size)
                if server.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn died\n{server.log_tail()}")
            src.unlink()
    finally:
        stop_gunicorn(server)
        try:
            removed = redis_cleanup(client, before, job_ids)
            print(f"redis cleanup: removed {len(removed)} keys/messages in {args.redis_url}", flush=True)
        except redis.RedisError as exc:
            print(f"redis cleanup failed: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048", help="comma-separated sizes in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="parent of the temp DATA_DIR (default: /tmp)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    info_dir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    info = machine_info(info_dir.resolve())  # date and git state as Gunicorn starts
    boot_rss: list[float] = []
    results = run(args, boot_rss)
    info["boot_rss"] = ", ".join(f"{v:.1f}" for v in boot_rss) or "n/a"
    text = section(results, info, args)
    print()
    print(table(results))
    print()
    print("Target:", verdict(results))
    if not args.no_write:
        write_section("bench/upload_memory.py", text, Path(args.output))
        print(f"wrote {args.output}")
    failed = any(c != "202" for r in results for c in r.codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
