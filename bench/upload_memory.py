"""Upload benchmark: memory and throughput of POST /upload and of tus (/files/) under real Gunicorn.

    .venv/bin/python bench/upload_memory.py [--sizes 1024,2048] [--runs 3] [--methods post,tus]
                                            [--tus-chunk-mib 50] [--workdir DIR]

For each size (MiB) it builds a real stored ZIP (one big member, written in chunks), starts
Gunicorn exactly as production does (`gunicorn -c gunicorn.conf.py app:app`, gthread workers)
with its own DATA_DIR, SQLite database and Redis DB index, and then, per run, on the same file
and the same Gunicorn:

* cat (baseline): times `cat file > dest` on DATA_DIR's filesystem (no fsync, like the upload);
* post: times `curl -F file=@...` (curl streams the file from disk) against /upload;
* tus: times a whole tus 1.0.0 upload: `POST /files/` (Upload-Length, Upload-Metadata
  `filename <base64>`), then one `curl -X PATCH -T -` per 50 MiB chunk (Upload-Offset,
  Content-Type application/offset+octet-stream, Content-Length), each fed its byte range of the
  file through a pipe by os.sendfile, so no client holds a chunk in memory.

During each upload the RSS of the Gunicorn master and of each worker is sampled every 50 ms, and
/proc/<pid>/io of the workers is read before and after to get the bytes written per byte uploaded
(summed over the workers: tus PATCHes may land on different workers).

Medians of the runs go into a table printed on stdout and into BENCHMARKS.md (only the section
between this script's marker comments is replaced), one row per size x method, with the spec's
targets marked met / not met. No Celery worker runs: the ingest jobs wait in the queue, and at the
end the script deletes only the Redis keys it created in its DB (progress keys, queued messages,
Celery keys, `tus-lock:*` of its uploads). Uploaded files are deleted between runs.
Only loopback traffic; every wait has a timeout; Gunicorn is always stopped.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
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
from report import free_port, summary_row, write_section, write_summary

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MIB = 1024 * 1024
MB = 1_000_000
CHUNK = 4 * MIB
SAMPLE_INTERVAL = 0.05
TARGET_RSS_MB = 150
TARGET_SIZE_MIB = 2048
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
TARGET_RATIO = 0.9  # throughput >= 0.9 x cat
TARGET_WRITTEN = (0.95, 1.05)  # ~1.0 byte written per byte uploaded: no second copy of the file
TUS_CHUNK_MIB = 50
METHODS = ("post", "tus")
SECTION_TITLE = "Upload: memory and throughput (POST /upload and tus /files/)"
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
    """Redis and the database answer, all workers exist and their RSS has settled.

    /healthz itself stays 503 here: no Celery worker runs in this benchmark.
    """
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.proc.returncode}\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn not ready after {timeout}s\n{server.log_tail()}")
        try:
            checks = requests.get(server.base + "/healthz", timeout=5).json()["checks"]
            ok = checks["redis"]["ok"] and checks["database"]["ok"]
        except (requests.RequestException, ValueError, KeyError):
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
    method: str
    ok: bool
    status: str  # the HTTP status(es) in short, for the table
    seconds: float = 0.0
    job_id: str | None = None
    detail: str = ""
    requests: int = 0
    master_peak: int = 0
    worker_peak: dict[int, int] = field(default_factory=dict)
    worker_idle: dict[int, int] = field(default_factory=dict)
    worker_after: dict[int, int] = field(default_factory=dict)
    io_by_worker: dict[int, dict[str, int]] = field(default_factory=dict)
    workers_changed: bool = False
    samples: int = 0

    @property
    def io_total(self) -> dict[str, int]:
        """/proc/<pid>/io deltas summed over all workers."""
        total: dict[str, int] = {}
        for delta in self.io_by_worker.values():
            for key, value in delta.items():
                total[key] = total.get(key, 0) + value
        return total

    @property
    def busiest_pid(self) -> int | None:
        """The worker with the highest RSS peak during the upload."""
        return max(self.worker_peak, key=self.worker_peak.get, default=None)

    @property
    def handlers(self) -> list[int]:
        """Workers that wrote at least 1 MiB during the upload (the ones that took the body)."""
        return sorted(pid for pid, d in self.io_by_worker.items() if d.get("wchar", 0) >= MIB)

    @property
    def rise_pid(self) -> int | None:
        """Of the workers that took the body (all, if none did), the one whose RSS rose most."""
        pids = self.handlers or list(self.worker_peak)
        return max(
            pids, key=lambda pid: self.worker_peak.get(pid, 0) - self.worker_idle.get(pid, 0), default=None
        )


@contextlib.contextmanager
def measured(server: Server, result: UploadResult):
    """RSS sampling and /proc/<pid>/io deltas of the workers around the upload in the block."""
    os.sync()  # start with no dirty pages of the previous step (not timed)
    workers = server.worker_procs()
    result.worker_idle = {p.pid: rss_of(p) for p in workers}
    io_before = {p.pid: proc_io(p.pid) for p in workers}
    sampler = RssSampler(server)
    sampler.start()
    time.sleep(0.2)
    try:
        yield
    finally:
        time.sleep(0.3)
        sampler.stop()
        io_after = {pid: proc_io(pid) for pid in io_before}
        result.worker_after = {p.pid: rss_of(p) for p in workers}
        result.io_by_worker = {
            pid: {k: io_after[pid].get(k, 0) - io_before[pid].get(k, 0) for k in io_before[pid]}
            for pid in io_before
            if io_after.get(pid)
        }
        result.master_peak = sampler.master_peak
        result.worker_peak = dict(sampler.worker_peak)
        result.workers_changed = sampler.pids_seen != set(result.worker_idle)
        result.samples = sampler.samples


def time_cat(src: Path, dest: Path, timeout: float) -> float:
    os.sync()  # start with no dirty pages of the previous step (not timed)
    start = time.perf_counter()
    with open(dest, "wb") as out:
        subprocess.run(["cat", str(src)], stdout=out, check=True, timeout=timeout)
    seconds = time.perf_counter() - start
    return seconds


def curl_base(timeout: float) -> list[str]:
    return ["curl", "-sS", "--noproxy", "*", "-H", "Expect:", "--max-time", str(int(timeout))]


def upload_post(server: Server, path: Path, resp_path: Path, timeout: float) -> UploadResult:
    """POST /upload as multipart/form-data; curl streams the file from disk."""
    result = UploadResult("post", ok=False, status="none", requests=1)
    argv = curl_base(timeout) + [
        "-o",
        str(resp_path),
        "-w",
        "%{http_code}",
        "-F",
        f"file=@{path};type=application/zip",
        server.base + "/upload",
    ]
    with measured(server, result):
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
        finally:
            result.seconds = time.perf_counter() - start
    result.status = done.stdout.strip() or "none"
    response = resp_path.read_text(errors="replace") if resp_path.exists() else ""
    with contextlib.suppress(ValueError, AttributeError):
        result.job_id = json.loads(response).get("job_id")
    result.ok = result.status == "202" and bool(result.job_id)
    if not result.ok:
        result.detail = f"response {response[:300]!r}, curl: {done.stderr.strip()[:300]!r}"
    return result


def parse_headers(raw: str) -> dict[str, str]:
    """Headers of the last response in curl's `-D -` output (lower-case names)."""
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip().startswith("HTTP/")]
    headers: dict[str, str] = {}
    for line in blocks[-1].splitlines()[1:] if blocks else []:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def patch_chunk(
    url: str, src_fd: int, offset: int, count: int, timeout: float
) -> tuple[str, dict[str, str], str]:
    """One tus PATCH of bytes [offset, offset+count) of the file: curl reads its body from a pipe
    that this process fills with os.sendfile (page cache -> pipe, no copy held in memory)."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, MIB)
    argv = curl_base(timeout) + [
        "-X",
        "PATCH",
        "-T",
        "-",
        "-H",
        "Transfer-Encoding:",  # curl would send stdin chunked; the length is known
        "-H",
        f"Content-Length: {count}",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "-H",
        f"Upload-Offset: {offset}",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-D",
        "-",
        "-o",
        os.devnull,
        "-w",
        "\n%{http_code}",
        url,
    ]
    try:
        proc = subprocess.Popen(
            argv, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(read_end)
    feed_error = ""
    try:
        sent = 0
        while sent < count:
            n = os.sendfile(write_end, src_fd, offset + sent, count - sent)
            if n == 0:
                feed_error = f"file ended at {offset + sent}"
                break
            sent += n
    except OSError as exc:  # curl gave up (EPIPE): its own error says why
        feed_error = f"feeding the pipe: {exc}"
    finally:
        os.close(write_end)
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    head, _, code = out.rpartition("\n")
    return (
        code.strip() or "none",
        parse_headers(head),
        "; ".join(x for x in (feed_error, err.strip()[:300]) if x),
    )


def upload_tus(
    server: Server, path: Path, size: int, chunk: int, timeout: float, uids: list[str]
) -> UploadResult:
    """A whole tus upload: create, then PATCH chunk after chunk; timed from the POST to the last answer."""
    result = UploadResult("tus", ok=False, status="none")
    metadata = "filename " + base64.b64encode(path.name.encode()).decode()
    session = requests.Session()
    session.trust_env = False  # loopback only, never a proxy
    fd = os.open(path, os.O_RDONLY)
    try:
        with measured(server, result):
            start = time.perf_counter()
            try:
                created = session.post(
                    server.base + "/files/",
                    headers={
                        "Tus-Resumable": "1.0.0",
                        "Upload-Length": str(size),
                        "Upload-Metadata": metadata,
                    },
                    timeout=60,
                )
                result.requests = 1
                location = created.headers.get("Location", "")
                if created.status_code != 201 or not location:
                    result.status = f"create {created.status_code}"
                    result.detail = created.text[:300]
                    return result
                uids.append(location.rstrip("/").rsplit("/", 1)[-1])
                url = requests.compat.urljoin(server.base + "/files/", location)
                offset, headers = 0, {}
                while offset < size:
                    count = min(chunk, size - offset)
                    code, headers, err = patch_chunk(url, fd, offset, count, timeout)
                    result.requests += 1
                    answered = headers.get("upload-offset", "")
                    if code != "204" or answered != str(offset + count):
                        result.status = f"PATCH {code}"
                        result.detail = f"at offset {offset}: Upload-Offset {answered!r}, {err}"
                        return result
                    offset += count
                result.job_id = headers.get("upload-job-id")
                result.status = "204"
                result.ok = bool(result.job_id)
                if not result.ok:
                    result.detail = f"no Upload-Job-Id on the final PATCH: {headers}"
            finally:
                result.seconds = time.perf_counter() - start
    finally:
        os.close(fd)
        session.close()
    return result


def clear_uploads(data_dir: Path) -> None:
    """Delete what the uploads left in DATA_DIR: stored archives and tus data files."""
    uploads = data_dir / "uploads"
    if not uploads.exists():
        return
    for f in uploads.rglob("*"):
        if f.is_file():
            f.unlink()


# --------------------------------------------------------------------------- Redis cleanup


def redis_snapshot(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


def delete_tus_locks(client: redis.Redis, uids: list[str]) -> list[str]:
    """The per-upload locks of our tus uploads (released after each PATCH, and expiring in 60 s)."""
    return [f"tus-lock:{uid}" for uid in uids if client.delete(f"tus-lock:{uid}")]


def redis_cleanup(
    client: redis.Redis, before: set[bytes], job_ids: list[str], tus_uids: list[str]
) -> list[str]:
    """Delete only what this run created: its progress keys, its queued messages, new Celery keys,
    the locks of its tus uploads."""
    removed = delete_tus_locks(client, tus_uids)
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
class Row:
    """One size x method: the medians of the runs go into one table row."""

    mib: int
    method: str
    file_bytes: int
    cat_mbs: list[float]  # shared by the rows of one size: the same cat runs
    chunk_mib: int = TUS_CHUNK_MIB
    mbs: list[float] = field(default_factory=list)
    worker_peak_mb: list[float] = field(default_factory=list)
    rise_before_mb: list[float] = field(default_factory=list)
    rise_peak_mb: list[float] = field(default_factory=list)
    rise_after_mb: list[float] = field(default_factory=list)
    handlers: list[int] = field(default_factory=list)
    master_mb: list[float] = field(default_factory=list)
    wb_per_byte: list[float] = field(default_factory=list)
    wchar_per_byte: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    failures: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        cat, up = med(self.cat_mbs), med(self.mbs)
        return up / cat if cat and up else None

    def add(self, up: UploadResult, size: int) -> None:
        mb = 1e6
        rise = up.rise_pid
        self.mbs.append(size / up.seconds / MB)
        self.worker_peak_mb.append(max(up.worker_peak.values(), default=0) / mb)
        self.rise_before_mb.append(up.worker_idle.get(rise, 0) / mb)
        self.rise_peak_mb.append(up.worker_peak.get(rise, 0) / mb)
        self.rise_after_mb.append(up.worker_after.get(rise, 0) / mb)
        self.handlers.append(len(up.handlers))
        self.master_mb.append(up.master_peak / mb)
        io = up.io_total
        if io:
            self.wb_per_byte.append(io.get("write_bytes", 0) / size)
            self.wchar_per_byte.append(io.get("wchar", 0) / size)


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{fmt(med(values))} ({min(values):.0f}–{max(values):.0f})"


def status_summary(statuses: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} × {s}" for s, n in counts.items())


def table(rows: list[Row]) -> str:
    head = (
        "| size | method | runs: HTTP status | MB/s, median (min–max) | ÷ cat | peak RSS of the busiest "
        "worker, MB (median / worst run) | RSS MB of the handling worker that grew most: before → "
        "peak → after | workers that took the body | master peak RSS MB | written bytes per uploaded "
        "byte, all workers (write_bytes / wchar) |"
    )
    lines = [head, "|" + "---|" * 10]
    done_sizes: set[int] = set()
    for r in rows:
        size = f"{r.mib} MiB ({r.file_bytes:,} B)"
        if r.mib not in done_sizes:
            done_sizes.add(r.mib)
            lines.append(
                f"| {size} | cat (baseline) | {len(r.cat_mbs)} runs | {spread(r.cat_mbs)} | 1.00 "
                "| – | – | – | – | – |"
            )
        worst = max(r.worker_peak_mb) if r.worker_peak_mb else None
        peak = med(r.worker_peak_mb)
        method = "POST /upload (curl -F)" if r.method == "post" else f"tus, {r.chunk_mib} MiB PATCHes (curl)"
        lines.append(
            f"| {size} | {method} | {status_summary(r.statuses)} | {spread(r.mbs)} | {fmt(r.ratio, '.2f')} "
            f"| {fmt(peak, '.1f')} / {fmt(worst, '.1f')} "
            f"| {fmt(med(r.rise_before_mb), '.1f')} → {fmt(med(r.rise_peak_mb), '.1f')} → "
            f"{fmt(med(r.rise_after_mb), '.1f')} "
            f"| {fmt(med(r.handlers), '.0f')} | {fmt(med(r.master_mb), '.1f')} "
            f"| {fmt(med(r.wb_per_byte), '.3f')} / {fmt(med(r.wchar_per_byte), '.3f')} |"
        )
    return "\n".join(lines)


def mark(ok: bool, text: str) -> str:
    return f"**{'met' if ok else 'not met'}** ({text})"


def targets(rows: list[Row], methods: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Each target of the spec, and per method whether the runs met it (worst size counts)."""
    out: list[tuple[str, dict[str, str]]] = [
        (f"throughput ≥ {TARGET_RATIO}× cat", {}),
        (f"RSS of every worker ≤ {TARGET_RSS_MB} MB during a 2 GB upload", {}),
        (
            f"~1.0 byte written per byte uploaded ({TARGET_WRITTEN[0]}–{TARGET_WRITTEN[1]}, "
            "write_bytes and wchar)",
            {},
        ),
    ]
    for method in methods:
        mine = [r for r in rows if r.method == method]
        failed = sum(r.failures for r in mine)
        if not mine or failed:
            text = "not measured" if not mine else f"**not met**: {failed} upload(s) failed"
            for _, cells in out:
                cells[method] = text
            continue
        ratios = [(r.ratio, r.mib) for r in mine if r.ratio is not None]
        low = min(ratios, default=None)
        out[0][1][method] = (
            mark(low[0] >= TARGET_RATIO, f"{low[0]:.2f}× at {low[1]} MiB") if low else "not measured"
        )
        big = [r for r in mine if r.mib >= TARGET_SIZE_MIB and r.worker_peak_mb]
        if big:
            worst = max(max(r.worker_peak_mb) for r in big)
            out[1][1][method] = mark(worst <= TARGET_RSS_MB, f"worst worker peak {worst:.1f} MB")
        else:
            out[1][1][method] = f"not measured (no size ≥ {TARGET_SIZE_MIB} MiB)"
        values = [v for r in mine for v in (med(r.wb_per_byte), med(r.wchar_per_byte)) if v is not None]
        if values:
            lo, hi = min(values), max(values)
            ok = TARGET_WRITTEN[0] <= lo and hi <= TARGET_WRITTEN[1]
            out[2][1][method] = mark(ok, f"{lo:.3f}" if lo == hi else f"{lo:.3f}–{hi:.3f}")
        else:
            out[2][1][method] = "not measured"
    return out


def summary(rows: list[Row], methods: list[str]) -> list[list[str]]:
    """The rows of the summary at the top of BENCHMARKS.md: per method, the worst size."""
    names = {"post": "POST /upload", "tus": "tus /files/"}
    out = []
    for method in methods:
        mine = [r for r in rows if r.method == method and not r.failures and r.ratio is not None]
        if not mine:
            continue
        low = min(mine, key=lambda r: r.ratio)
        out.append(
            summary_row(
                f"Upload throughput, {names[method]}, {low.mib} MiB (worst size)",
                f"cat > dest: {med(low.cat_mbs):.0f} MB/s",
                f"{med(low.mbs):.0f} MB/s",
                f"{low.ratio:.2f}",
                f"≥ {TARGET_RATIO}",
                low.ratio >= TARGET_RATIO,
            )
        )
        big = [r for r in mine if r.mib >= TARGET_SIZE_MIB and r.worker_peak_mb]
        if big:
            worst = max(max(r.worker_peak_mb) for r in big)
            out.append(
                summary_row(
                    f"Peak RSS of any web worker during a {TARGET_SIZE_MIB} MiB upload, {names[method]}",
                    "—",
                    f"{worst:.0f} MB",
                    "—",
                    f"≤ {TARGET_RSS_MB} MB",
                    worst <= TARGET_RSS_MB,
                )
            )
        values = [v for r in mine for v in (med(r.wb_per_byte), med(r.wchar_per_byte)) if v is not None]
        if values:
            lo, hi = min(values), max(values)
            out.append(
                summary_row(
                    f"Bytes written per byte uploaded, {names[method]} (write_bytes and wchar)",
                    "1 byte uploaded",
                    f"{lo:.3f}" if lo == hi else f"{lo:.3f}–{hi:.3f}",
                    f"{hi:.3f}",
                    f"{TARGET_WRITTEN[0]}–{TARGET_WRITTEN[1]}",
                    TARGET_WRITTEN[0] <= lo and hi <= TARGET_WRITTEN[1],
                )
            )
    return out


def targets_table(rows: list[Row], methods: list[str]) -> str:
    names = {"post": "POST /upload", "tus": "tus /files/"}
    lines = [
        "| target (spec) | " + " | ".join(names[m] for m in methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for target, cells in targets(rows, methods):
        lines.append(f"| {target} | " + " | ".join(cells.get(m, "not measured") for m in methods) + " |")
    return "\n".join(lines)


# Not re-measured by a run of this script: found by profiling, so it carries its own date and setup.
# Redo it when the upload path changes (py-spy is not a project dependency: pip install py-spy).
WHERE_THE_TIME_GOES = """
Profiled on 2026-12-04 (commit `e10b0f6`, this machine, while other jobs ran on it), one 2 GiB
upload of each kind, after a warm-up: `py-spy record --subprocesses --idle --nonblocking -r 250`
on the Gunicorn master (wall time of the request threads) and `perf record -g -p <workers>`
(CPU of the workers). Both paths are bound by copying bytes, not by per-request work; the largest
single cost is the kernel copying the body into the page cache, inflated on this VM (last point).

- **POST /upload**, request thread: `write()` of the file part 34 %; `recv()` from the socket
  26 %; gunicorn's request-body buffering in Python (`Unreader.read`/`Body.read`: `BytesIO`
  writes, `getvalue()` and slices, 2–3 extra copies of every byte) 30 %; streaming-form-data's
  boundary search 8 %; job row, Redis progress and Celery message about 1 %. Worker CPU
  (1.0 s user + 2.7 s sys per 2 GiB): page-cache copy (`copy_folio_from_iter_atomic`) 48 %,
  user-space `memmove` 14 %, multipart parser 8 %, socket copy 5 %, page faults 3 %.
- **tus** (41 PATCHes of 50 MiB): `DataFile.append` takes 96 % of the request threads' time,
  its `write()` 68 % and gunicorn's body reading 28 % (recv 14 %, Python buffering 14 %).
  Per-PATCH bookkeeping is small: SQLite (`get_upload`, `_touch`, commits) about 2.5 %, the
  Redis lock about 1 %. Worker CPU (0.8 s user + 4.2 s sys per 2 GiB): page-cache copy 66 %,
  `memmove` 10 %, socket copy 4 %. The client adds one curl process and TCP connection per chunk.
- **This VM** (Firecracker, free page reporting on) gives memory that has been free for about
  2 s back to the host, and page-cache writes that get large folios then pay for the host
  faulting it in again. A plain Python loop writing 1 GiB after a 5 s pause: 1 MiB or 4 MiB
  writes at aligned offsets 0.4–1.5 GB/s (0.7–2.7 s sys), 128 KiB, 1 MiB±4 KiB or 1 MiB writes
  shifted by 114 B (the POST pattern: the multipart header comes first) 4.4–5.7 GB/s (0.2 s sys);
  the same aligned 1 MiB writes right after memory was freed: 4.4–5.1 GB/s. tus writes exactly
  1 MiB at 1 MiB-aligned offsets (`tus.CHUNK`), the slow case here, which is most of why it
  trails POST; and cat moved between 312 and 3166 MB/s from run to run. With a 6 s pause before
  every step (all steps cold), medians of 3: cat 490, POST 387 (0.79×), tus 216 MB/s (0.44×).
- Against a warm cat (3–5 GB/s on this VM) the 0.9× target is out of reach for a server that
  copies the body through Python on 2 cores shared with the client: the worker spends about
  1 s of user CPU per 2 GiB on copies and parsing before any kernel work, while curl and the
  loopback TCP stack share the other core.

Plan, in the order of what each step would win on the profile above (behind nginx, which streams
the body through with `proxy_request_buffering off`, the same holds):

1. Read the body with `recv_into` a reused 1 MiB buffer straight from the socket Gunicorn
   exposes (`gunicorn.socket`) once Gunicorn's own read-ahead is drained: that removes
   Gunicorn's `BytesIO` copies (about 30 % of the POST request thread) and Werkzeug's stream
   wrapper. It depends on Gunicorn internals, so it needs a version check, `Connection: close`
   on such answers (Gunicorn would otherwise try to drain a body it no longer knows was read)
   and a fallback to `wsgi.input`.
2. tus: write each PATCH at offsets shifted off the 1 MiB boundary (or in 4 MiB writes), the
   pattern this VM's page cache handles 4–10× faster; no effect expected on bare metal.
"""


def section(rows: list[Row], info: dict[str, str], args: argparse.Namespace, methods: list[str]) -> str:
    notes = [n for r in rows for n in r.notes]
    dirty = f" (working tree differs from HEAD in: {info['dirty']})" if info["dirty"] else ""
    lines = [
        f"## {SECTION_TITLE}",
        "",
        "Targets (spec), per method, the worst size counting:",
        "",
        targets_table(rows, methods),
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, kernel {info['kernel']}, "
        f"Python {info['python']}; DATA_DIR on {info['fs']}",
        f"- Commit: `{info['commit']}`{dirty}; the server ran the files on disk as it started",
        f"- Server: {info['gunicorn']}, `gunicorn -c gunicorn.conf.py app:app`, gthread, "
        f"WEB_WORKERS={args.workers}, SQLite in DATA_DIR, Redis DB `{args.redis_url}`, no Celery "
        f"worker (the ingest job stays queued); streaming-form-data {info['sfd']}",
        f"- Clients, all {info['curl']} over loopback, on the same file and the same Gunicorn, in this "
        "order in each run: *cat* `cat file > dest`; *POST* `curl -F file=@archive.zip` to /upload "
        "(curl streams from disk); *tus* `POST /files/` (Upload-Length, Upload-Metadata `filename "
        f"<base64>`), then one `curl -X PATCH -T -` per {args.tus_chunk_mib} MiB chunk (Content-Length, "
        "Upload-Offset, `Content-Type: application/offset+octet-stream`, `Tus-Resumable: 1.0.0`, new "
        "connection each), its byte range fed to curl's stdin by `os.sendfile` into a pipe, so no "
        "client holds a chunk in memory. File: a stored ZIP with one member, random bytes",
        f"- Command: `.venv/bin/python bench/upload_memory.py --sizes {args.sizes} --runs {args.runs} "
        f"--methods {','.join(methods)}`; values are medians of the runs",
        "",
        table(rows),
        "",
        "How to read it: MB = 10^6 bytes. *cat* is `cat file > dest` on DATA_DIR's filesystem "
        "without fsync, the uploads' own write pattern, so all three mostly measure writes into the "
        "page cache (dirty pages are flushed with `sync` before each timed step, outside the timing). "
        "*MB/s* is the archive size over the client's wall time: for POST curl's, response included; "
        "for tus from the creation POST to the answer to the last PATCH. *÷ cat* divides the medians. "
        "*peak RSS* is sampled every 50 ms with psutil for every Gunicorn worker (children of the "
        "master); the busiest worker is the one with the highest peak, whichever upload raised it. Of "
        "the workers that took the body, the one whose RSS rose most is shown just before, at the "
        "peak of and just after the upload (medians). Right after boot the workers were at "
        f"{info['boot_rss']} MB, after the last upload at {info['end_rss']} MB. *workers that took "
        "the body* counts the workers whose `wchar` moved "
        "by 1 MiB or more (tus PATCHes on new connections spread over the workers). The written-bytes "
        "ratios add up `/proc/<pid>/io` of all workers (`write_bytes` = bytes sent to the block "
        "layer, `wchar` = bytes passed to write() calls, log lines, SQLite and Redis commands "
        "included).",
    ]
    if WHERE_THE_TIME_GOES:
        lines += ["", "### Where the time goes", "", WHERE_THE_TIME_GOES.strip()]
    if notes:
        lines += ["", "Observations:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def run(
    args: argparse.Namespace, methods: list[str], boot_rss: list[float], end_rss: list[float]
) -> list[Row]:
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
    tus_uids: list[str] = []
    server: Server | None = None
    rows: list[Row] = []
    max_upload = max(sizes) * MIB * 2 + 64 * MIB
    chunk = args.tus_chunk_mib * MIB
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
            cat_mbs: list[float] = []
            mine = {m: Row(mib, m, size, cat_mbs, args.tus_chunk_mib) for m in methods}
            rows.extend(mine.values())
            timeout = max(120.0, size / (5 * MB))  # slower than 5 MB/s is a failure anyway
            chunk_timeout = max(60.0, chunk / (5 * MB))
            for i in range(1, args.runs + 1):
                dest = work / "cat-copy.bin"
                cat_s = time_cat(src, dest, timeout)
                dest.unlink()
                cat_mbs.append(size / cat_s / MB)
                print(f"[{mib} MiB] run {i}: cat {size / cat_s / MB:.0f} MB/s ({cat_s:.2f}s)", flush=True)
                for method in methods:
                    if method == "post":
                        up = upload_post(server, src, work / "response.json", timeout)
                    else:
                        up = upload_tus(server, src, size, chunk, chunk_timeout, tus_uids)
                    if up.job_id:
                        job_ids.append(up.job_id)
                    clear_uploads(data_dir)
                    delete_tus_locks(client, tus_uids)
                    row = mine[method]
                    row.statuses.append(
                        up.status if method == "post" or not up.ok else f"201 + {up.requests - 1} × 204"
                    )
                    mb = 1e6
                    busiest = up.rise_pid
                    print(
                        f"[{mib} MiB] run {i}: {method} {up.status} ({up.requests} requests) in "
                        f"{up.seconds:.2f}s = {size / up.seconds / MB:.0f} MB/s; worker peaks MB "
                        f"{sorted(round(v / mb, 1) for v in up.worker_peak.values())} (grew most {busiest}: "
                        f"idle {up.worker_idle.get(busiest, 0) / mb:.1f}, peak "
                        f"{up.worker_peak.get(busiest, 0) / mb:.1f}, after "
                        f"{up.worker_after.get(busiest, 0) / mb:.1f}); handlers {up.handlers}; master "
                        f"{up.master_peak / mb:.1f} MB; io {up.io_total}; samples {up.samples}",
                        flush=True,
                    )
                    if not up.ok:
                        row.failures += 1
                        row.notes.append(f"{mib} MiB run {i}, {method}: {up.status}: {up.detail}")
                        print(f"    {up.detail}\n    gunicorn log:\n{server.log_tail(15)}", flush=True)
                    else:
                        if up.workers_changed:
                            row.notes.append(
                                f"{mib} MiB run {i}, {method}: the worker pids changed meanwhile"
                            )
                        row.add(up, size)
                    if server.proc.poll() is not None:
                        raise RuntimeError(f"gunicorn died\n{server.log_tail()}")
            src.unlink()
    finally:
        if server is not None and server.proc.poll() is None:
            end_rss.extend(sorted(rss_of(p) / 1e6 for p in server.worker_procs()))
        stop_gunicorn(server)
        try:
            removed = redis_cleanup(client, before, job_ids, tus_uids)
            print(f"redis cleanup: removed {len(removed)} keys/messages in {args.redis_url}", flush=True)
        except redis.RedisError as exc:
            print(f"redis cleanup failed: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048", help="comma-separated sizes in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", default="post,tus", help="comma-separated: post, tus (cat always runs)")
    parser.add_argument("--tus-chunk-mib", type=int, default=TUS_CHUNK_MIB, help="size of one tus PATCH")
    parser.add_argument("--workdir", default=None, help="parent of the temp DATA_DIR (default: /tmp)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or args.tus_chunk_mib < 1:
        parser.error(f"--methods takes a comma-separated list of {', '.join(METHODS)}; --tus-chunk-mib >= 1")
    methods = [m for m in METHODS if m in methods]  # fixed order, no duplicates
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    info_dir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    info = machine_info(info_dir.resolve())  # date and git state as Gunicorn starts
    boot_rss: list[float] = []
    end_rss: list[float] = []
    rows = run(args, methods, boot_rss, end_rss)
    info["boot_rss"] = ", ".join(f"{v:.1f}" for v in boot_rss) or "n/a"
    info["end_rss"] = ", ".join(f"{v:.1f}" for v in end_rss) or "n/a"
    text = section(rows, info, args, methods)
    print()
    print(table(rows))
    print()
    print(targets_table(rows, methods))
    if not args.no_write:
        write_section("bench/upload_memory.py", text, Path(args.output))
        write_summary("bench/upload_memory.py", summary(rows, methods), Path(args.output))
        print(f"wrote {args.output}")
    return 1 if any(r.failures for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
