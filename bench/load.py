"""Load test of the whole service on real processes: concurrent uploads plus many pollers.

    .venv/bin/python bench/load.py [--uploads 8] [--size-mib 200] [--pollers 100] [--timeout 900]
                                   [--database-url URL] [--redis-url redis://127.0.0.1:6379/15]
                                   [--workdir DIR] [--keep] [--no-write]

Scenario (spec): 8 concurrent uploads of valid ~200 MB recordings to POST /upload, plus 100
clients polling, until every recording has been through the pipeline. It starts a stack the way
the Procfile does, with its own work directory, DATA_DIR and database (SQLite in DATA_DIR; with
--database-url a PostgreSQL server gets a throw-away schema, dropped at the end) and a Redis DB
index shared with nobody's test runs (DB 15) under its own BROKER_KEY_PREFIX `load-<random>:`:

* web: `gunicorn -c gunicorn.conf.py app:app`, WEB_WORKERS=4 gthread workers x 8 threads;
* ingest: `celery -A celery_app worker -Q ingest --concurrency 2`;
* pipeline: `celery -A celery_app worker -Q pipeline --concurrency 2`, the simulator with
  PIPELINE_STAGE_SECONDS=0.5 (8 stages, about 4 s per run);
* beat: `celery -A celery_app beat` (reaper every 30 s, as in production).

Test data: each archive is a valid recording ZIP (tests/factories.py: `recording_files(rid,
mp4_size=200 MiB)`, laid out like `make_zip`: folder entries, deflated CSVs, stored MP4) whose
root folder is its own recording id. The 200 MiB MP4 (`mp4_bytes`, which depends only on its
size) is generated once, written to a payload file and dropped; each ZIP streams it from there.

Load, all over 127.0.0.1:

* uploads: one `curl -F file=@<id>.zip` per recording, all started at once (curl streams the
  file from disk); status code and wall time of each;
* pollers: 100 threads, one keep-alive requests.Session each; client k follows job k mod 8:
  GET /extract_status/<job> every 300 ms (GET /status instead while its upload has not answered
  yet), and GET /status every 10 s, from a random phase; when a response takes longer than the
  interval the next poll follows at once (never two at a time per client);
* monitor: one thread GETs /api/recordings/<id> every 0.5 s for each extracted recording, until
  every recording is completed (or failed); then each is checked once more.

Counted per route: status codes, latency p50/p95/p99/max (client side: 100 Python threads share
one interpreter on the same machine as the stack, so these include client queueing). The target:
no 5xx, no connection error or timeout, no other unexpected status (202 for the uploads, 200
elsewhere), and every recording `completed` with exactly one attempt. Exit code 1 otherwise.

The table is printed and written into BENCHMARKS.md (only this script's section). The stack's
logs stay in the work directory (`logs/*.log`); on a failure their tails are printed and the
logs are kept. Every wait is bounded, the whole run by --timeout (15 min); all processes are
stopped in a finally block, and only this run's Redis keys are deleted (the prefix's keys and
`extraction:<job>` of its own jobs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
import requests
from report import machine_line, summary_row, write_section, write_summary
from stack import (
    ROOT,
    add_run_arguments,
    gunicorn_version,
    hide_database_url,
    install_timeout,
    new_run,
    print_logs,
    report_redis_cleanup,
    start_stack,
    tidy_work,
)

sys.path.insert(0, str(ROOT))
from tests.factories import recording_files  # noqa: E402

MIB = 1024 * 1024
MB = 1_000_000
COPY_CHUNK = 4 * MIB
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
WEB_WORKERS = 4
WEB_THREADS = 8
INGEST_CONCURRENCY = 2
CELERY_CONCURRENCY = 2
STAGE_SECONDS = 0.5
POLL_INTERVAL = 0.3
STATUS_INTERVAL = 10.0
MONITOR_INTERVAL = 0.5
HTTP_TIMEOUT = (5, 30)  # connect, read: a slower answer counts as an error
TERMINAL = ("completed", "failed", "cancelled")

R_UPLOAD = "POST /upload"
R_STATUS_EARLY = "GET /status (300 ms, until the job exists)"
R_STATUS = "GET /status (every 10 s)"
R_EXTRACT = "GET /extract_status/<job>"
R_RECORDING = "GET /api/recordings/<id>"
ROUTES = (R_UPLOAD, R_STATUS_EARLY, R_STATUS, R_EXTRACT, R_RECORDING)
EXPECTED = {R_UPLOAD: "202"}  # everything else: 200


# --------------------------------------------------------------------------- test data


def write_zip(path: Path, files: dict[str, bytes], payload: Path) -> int:
    """Like tests.factories.make_zip (folder entries, deflated CSVs, stored MP4), but the MP4's
    bytes are streamed from `payload` instead of being held in memory. Returns the ZIP's size."""
    with zipfile.ZipFile(path, "w") as zf:
        for folder in sorted({str(Path(rel).parent) for rel in files}):
            zf.writestr(folder + "/", b"")
        for rel, data in files.items():
            if not rel.endswith(".mp4"):
                zf.writestr(rel, data, compress_type=zipfile.ZIP_DEFLATED)
                continue
            info = zipfile.ZipInfo(rel, date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.file_size = payload.stat().st_size
            with zf.open(info, "w") as out, open(payload, "rb") as src:
                shutil.copyfileobj(src, out, COPY_CHUNK)
    with zipfile.ZipFile(path) as zf:  # the central directory reads back, one root: the id
        roots = {name.split("/", 1)[0] for name in zf.namelist()}
    rid = next(iter(files)).split("/", 1)[0]
    if roots != {rid}:
        raise RuntimeError(f"{path.name}: root folders {roots}, expected {{{rid}}}")
    return path.stat().st_size


def build_archives(work: Path, rids: list[str], mp4_size: int) -> list[tuple[Path, int]]:
    payload = work / "payload.mp4"
    big = recording_files(rids[0], mp4_size=mp4_size)
    mp4_name = next(rel for rel in big if rel.endswith(".mp4"))
    payload.write_bytes(big[mp4_name])
    del big  # the only 200 MB object; from here on the MP4 is streamed from the payload file
    archives = []
    for rid in rids:
        # Same tree as recording_files(rid, mp4_size=...): only the MP4 depends on the size, and
        # its bytes (mp4_bytes(mp4_size)) are the payload file's.
        files = recording_files(rid)
        path = work / f"{rid}.zip"
        archives.append((path, write_zip(path, files, payload)))
    payload.unlink()
    return archives


# --------------------------------------------------------------------------- measurement


@dataclass
class Sample:
    at: float  # seconds since the load started
    code: str  # HTTP status, or "conn-error" / "timeout"
    seconds: float


class Stats:
    """Status codes and latencies per route, from every client thread."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.lock = threading.Lock()
        self.samples: dict[str, list[Sample]] = {route: [] for route in ROUTES}
        self.problems: list[str] = []  # first few failures, with what the server said

    def record(self, route: str, code: str, seconds: float, detail: str = "") -> None:
        at = time.monotonic() - self.t0
        with self.lock:
            self.samples[route].append(Sample(at, code, seconds))
            if failed(route, code) and len(self.problems) < 50:
                self.problems.append(f"t={at:.1f}s {route}: {code} after {seconds * 1000:.0f} ms {detail}")

    def get(self, session: requests.Session, route: str, url: str) -> requests.Response | None:
        start = time.perf_counter()
        try:
            resp = session.get(url, timeout=HTTP_TIMEOUT)
        except requests.Timeout as exc:
            self.record(route, "timeout", time.perf_counter() - start, f"{url}: {exc}")
            return None
        except requests.RequestException as exc:
            self.record(route, "conn-error", time.perf_counter() - start, f"{url}: {exc!r}")
            return None
        seconds = time.perf_counter() - start
        code = str(resp.status_code)
        self.record(route, code, seconds, f"{url}: {resp.text[:300]!r}" if failed(route, code) else "")
        return resp


def failed(route: str, code: str) -> bool:
    return code != EXPECTED.get(route, "200")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Job:
    index: int
    rid: str
    archive: Path
    size: int
    pollers: int = 0
    job_id: str | None = None
    upload_code: str = ""
    upload_detail: str = ""
    upload_seconds: float | None = None
    extracted_at: float | None = None  # first poll that saw `done`
    recording_id: str | None = None
    extract_error: str | None = None
    observed_terminal_at: float | None = None
    observed_status: str | None = None
    final: dict | None = None

    @property
    def terminal(self) -> bool:
        return bool(
            (self.upload_code and self.upload_code != "202")
            or self.extract_error
            or self.observed_status in TERMINAL
        )

    def see_progress(self, body: dict, at: float) -> None:
        if body.get("status") == "done" and self.recording_id is None:
            self.recording_id = body.get("recording_id")
            self.extracted_at = at
        elif body.get("status") == "error" and self.extract_error is None:
            self.extract_error = f"{body.get('message')} {json.dumps(body.get('details'))[:300]}"


def upload(job: Job, base: str, stats: Stats, work: Path, timeout: float) -> None:
    """curl -F, streaming the archive from disk; records status and wall time."""
    resp_path = work / f"upload-{job.index}.json"
    argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-H",
        "Expect:",
        "--max-time",
        str(max(1, int(timeout))),
        "-o",
        str(resp_path),
        "-w",
        "%{http_code}",
        "-F",
        f"file=@{job.archive};type=application/zip",
        base + "/upload",
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15)
        code, err, rc = done.stdout.strip() or "000", done.stderr.strip(), done.returncode
    except subprocess.TimeoutExpired:
        code, err, rc = "000", "curl did not return", 28
    seconds = time.perf_counter() - start
    if code == "000":
        code = "timeout" if rc == 28 else "conn-error"
    body = resp_path.read_text(errors="replace") if resp_path.exists() else ""
    job.upload_seconds = seconds
    job.upload_detail = f"response {body[:300]!r}, curl exit {rc} {err[:200]!r}"
    if code == "202":
        try:
            job.job_id = json.loads(body)["job_id"]
        except (ValueError, KeyError, TypeError):
            code = "202 without job_id"
    job.upload_code = code
    stats.record(R_UPLOAD, code, seconds, job.upload_detail)


def poller(k: int, job: Job, base: str, stats: Stats, stop: threading.Event) -> None:
    session = requests.Session()
    session.trust_env = False
    rng = random.Random(k)
    now = time.monotonic()
    next_poll = now + rng.uniform(0, POLL_INTERVAL)
    next_status = now + rng.uniform(0, STATUS_INTERVAL)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_status:
                next_status += STATUS_INTERVAL
                stats.get(session, R_STATUS, base + "/status")
            elif now >= next_poll:
                # Every POLL_INTERVAL from the previous poll's start; right away when it is late.
                next_poll = max(next_poll + POLL_INTERVAL, now)
                if job.job_id is None:
                    stats.get(session, R_STATUS_EARLY, base + "/status")
                else:
                    resp = stats.get(session, R_EXTRACT, f"{base}/extract_status/{job.job_id}")
                    if resp is not None and resp.status_code == 200:
                        with contextlib.suppress(ValueError):
                            job.see_progress(resp.json(), time.monotonic() - stats.t0)
            stop.wait(max(0.0, min(next_poll, next_status) - time.monotonic()))
    finally:
        session.close()


def monitor(jobs: list[Job], base: str, stats: Stats, stop: threading.Event) -> None:
    """Follows each extracted recording through the pipeline (and extractions nobody polls)."""
    session = requests.Session()
    session.trust_env = False
    try:
        while not stop.is_set():
            for job in jobs:
                if job.terminal or job.job_id is None:
                    continue
                if job.recording_id is None:
                    if job.pollers == 0:
                        resp = stats.get(session, R_EXTRACT, f"{base}/extract_status/{job.job_id}")
                        if resp is not None and resp.status_code == 200:
                            job.see_progress(resp.json(), time.monotonic() - stats.t0)
                    continue
                resp = stats.get(session, R_RECORDING, f"{base}/api/recordings/{job.recording_id}")
                if resp is not None and resp.status_code == 200:
                    status = resp.json().get("status")
                    if status in TERMINAL and job.observed_status not in TERMINAL:
                        job.observed_terminal_at = time.monotonic() - stats.t0
                    job.observed_status = status
            stop.wait(MONITOR_INTERVAL)
    finally:
        session.close()


def epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


# --------------------------------------------------------------------------- clean-up


def own_job_ids(database_url: str, jobs: list[Job]) -> set[str]:
    """Job ids of this run: from the upload answers, and rows of its archives in the database."""
    ids = {job.job_id for job in jobs if job.job_id}
    names = [job.archive.name for job in jobs]
    try:
        from sqlalchemy import bindparam, create_engine, text

        from signpipe.db import normalize_url

        engine = create_engine(normalize_url(database_url))
        try:
            query = text("SELECT id FROM upload_jobs WHERE filename IN :names").bindparams(
                bindparam("names", expanding=True)
            )
            with engine.connect() as conn:
                ids |= {row[0] for row in conn.execute(query, {"names": names})}
        finally:
            engine.dispose()
    except Exception as exc:  # no table (the stack never started) or no database: answers only
        print(f"could not read upload_jobs ({type(exc).__name__}: {exc}); using the upload answers")
    return ids


# --------------------------------------------------------------------------- report


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def route_table(stats: Stats, pollers: int) -> str:
    who = {
        R_UPLOAD: "curl -F, all at once",
        R_STATUS_EARLY: f"{pollers} pollers, before their job exists",
        R_STATUS: f"{pollers} pollers",
        R_EXTRACT: f"{pollers} pollers",
        R_RECORDING: "monitor (0.5 s) + final check",
    }
    lines = [
        "| route | sent by | requests | status codes | failures | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    everything: list[Sample] = []
    bad_total = 0
    for route in ROUTES:
        samples = stats.samples[route]
        bad = sum(1 for s in samples if failed(route, s.code))
        everything += samples
        bad_total += bad
        lines.append(route_row(route, who[route], samples, bad))
    lines.append(route_row("**all routes**", "", everything, bad_total))
    return "\n".join(lines)


def route_row(route: str, who: str, samples: list[Sample], bad: int) -> str:
    if not samples:
        return f"| {route} | {who} | 0 | – | – | – | – | – | – |"
    codes = Counter(s.code for s in samples)
    codes_text = ", ".join(f"{code} × {n}" for code, n in sorted(codes.items()))
    secs = [s.seconds for s in samples]
    return (
        f"| {route} | {who} | {len(samples)} | {codes_text} | {f'**{bad}**' if bad else '0'} | "
        f"{fmt_ms(pct(secs, 50))} | {fmt_ms(pct(secs, 95))} | {fmt_ms(pct(secs, 99))} | {fmt_ms(max(secs))} |"
    )


def job_table(jobs: list[Job], t0_epoch: float) -> str:
    lines = [
        "| recording | archive | upload | upload wall s | MB/s | extracted at s | completed at s "
        "| attempts | final status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for job in jobs:
        if job.upload_seconds is None:
            lines.append(f"| {job.rid} | {job.size / MB:.1f} MB | not sent | – | – | – | – | – | – |")
            continue
        final = job.final or {}
        attempts = final.get("attempts") or []
        finished = epoch(final.get("finished_at"))
        completed = f"{finished - t0_epoch:.1f}" if finished and final.get("status") == "completed" else "–"
        extracted = f"{job.extracted_at:.1f}" if job.extracted_at is not None else "–"
        outcomes = ", ".join(a.get("status", "?") for a in attempts) or "none"
        status = final.get("status") or job.extract_error or "no recording"
        lines.append(
            f"| {job.rid} | {job.size / MB:.1f} MB | {job.upload_code or '–'} | {job.upload_seconds:.2f} | "
            f"{job.size / job.upload_seconds / MB:.0f} | {extracted} | {completed} | "
            f"{len(attempts)} ({outcomes}) | {status} |"
        )
    return "\n".join(lines)


def job_ok(job: Job) -> tuple[bool, str]:
    final = job.final
    if job.upload_code != "202":
        return False, f"upload answered {job.upload_code}: {job.upload_detail}"
    if job.extract_error:
        return False, f"extraction failed: {job.extract_error}"
    if final is None:
        return False, f"no final state (recording {job.recording_id}, last seen {job.observed_status})"
    attempts = final.get("attempts") or []
    if final.get("recording_id") != job.rid:
        return False, f"recording id {final.get('recording_id')!r}, expected {job.rid!r}"
    if final.get("status") != "completed":
        return False, f"status {final.get('status')}: {final.get('error')}"
    if final.get("attempt") != 1 or len(attempts) != 1 or attempts[0].get("status") != "completed":
        summary = [(a.get("number"), a.get("status"), a.get("reason")) for a in attempts]
        return False, f"attempt {final.get('attempt')}, attempts {summary}"
    return True, ""


# Lines the stack logged during the load that point at trouble: warnings and errors of any
# process (the reaper and the workers log what they recover as warnings), tracebacks, Gunicorn
# worker timeouts and 5xx answers in its access log.
LOG_PATTERN = re.compile(r"\bWARNING\b|\bERROR\b|\bCRITICAL\b|Traceback|WORKER TIMEOUT|\" 5\d\d ")
LOG_NAMES = ("web", "ingest", "pipeline", "beat")


def log_sizes(logs: Path) -> dict[str, int]:
    return {path.stem: path.stat().st_size for path in logs.glob("*.log")}


def log_findings(logs: Path, since: dict[str, int]) -> dict[str, list[str]]:
    """Lines the stack logged during the load that point at trouble (worker timeouts,
    tracebacks, 5xx...); start-up (e.g. /healthz 503 until the workers answer) is left out."""
    found: dict[str, list[str]] = {}
    for name in LOG_NAMES:
        path = logs / f"{name}.log"
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(since.get(name, 0))
                text = fh.read().decode(errors="replace")
            hits = [line for line in text.splitlines() if LOG_PATTERN.search(line)]
            if hits:
                found[name] = hits
    return found


def section(ctx: dict) -> str:
    args = ctx["args"]
    jobs: list[Job] = ctx["jobs"]
    stats: Stats = ctx["stats"]
    title = f"Load: {args.uploads} × {args.size_mib} MB uploads with {args.pollers} pollers"
    ups = [j.upload_seconds for j in jobs if j.upload_seconds is not None]
    ok_ups = [j for j in jobs if j.upload_code == "202"]
    lines = [
        f"## {title}",
        "",
        "Target (spec): no 5xx, no error (connection error, timeout or other unexpected status), "
        "every job completes (each recording `completed`, with exactly 1 attempt).",
        "",
        machine_line(),
        f"- Command: `{ctx['command']}`",
        f"- Stack, all on 127.0.0.1: {ctx['gunicorn']} `gunicorn -c gunicorn.conf.py app:app` "
        f"(WEB_WORKERS={WEB_WORKERS} gthread × WEB_THREADS={WEB_THREADS}); `celery worker -Q ingest "
        f"--concurrency {INGEST_CONCURRENCY}`; `celery worker -Q pipeline --concurrency "
        f"{CELERY_CONCURRENCY}`; `celery beat`; the simulator with PIPELINE_STAGE_SECONDS={STAGE_SECONDS} "
        f"(8 stages); {ctx['database']}; Redis `{args.redis_url}`, BROKER_KEY_PREFIX `load-…:`",
        f"- Load: {args.uploads} valid recording ZIPs (`recording_files(rid, mp4_size={args.size_mib} MiB)`, "
        f"stored MP4, {ok_ups[0].size if ok_ups else jobs[0].size:,} bytes each), all sent at once with "
        f"`curl -F` to POST /upload; {args.pollers} poller threads (requests, a keep-alive session each; "
        f"client k follows job k mod {args.uploads}): GET /extract_status/<job> every "
        f"{POLL_INTERVAL * 1000:.0f} ms (GET /status until its upload has answered), GET /status every "
        f"{STATUS_INTERVAL:.0f} s; a monitor GETs /api/recordings/<id> every {MONITOR_INTERVAL} s; "
        "until every recording is completed. Latencies are client-side (one Python process for all "
        "clients, on the same 2 CPUs as the stack).",
        "",
        route_table(stats, args.pollers),
        "",
        job_table(jobs, ctx["t0_epoch"]),
        "",
    ]
    if ups:
        lines.append(
            f"- Upload wall times: min {min(ups):.2f} s, median {statistics.median(ups):.2f} s, max "
            f"{max(ups):.2f} s; all {len(ups)} bodies in by {ctx['uploads_done_at']:.1f} s "
            f"({sum(j.size for j in ok_ups) / MB / max(ctx['uploads_done_at'], 1e-9):.0f} MB/s together)."
        )
    if ctx["all_completed_at"] is not None:
        lines.append(
            f"- All {args.uploads} recordings `completed` {ctx['all_completed_at']:.1f} s after the uploads "
            f"started (the last `finished_at`; the monitor saw it at {ctx['observed_all_at']:.1f} s)."
        )
    else:
        lines.append(f"- Not every recording completed: {ctx['end_reason']}.")
    lines.append(f"- Polling achieved: {ctx['poll_rate']}.")
    for note in ctx["notes"]:
        lines.append(f"- {note}")
    lines += ["", ctx["verdict"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, ctx: dict) -> bool:
    start_mono = time.monotonic()
    deadline = start_mono + args.timeout
    place = new_run(
        args, "load", "load",
        WEB_WORKERS=str(WEB_WORKERS), WEB_THREADS=str(WEB_THREADS),
        INGEST_CONCURRENCY=str(INGEST_CONCURRENCY), CELERY_CONCURRENCY=str(CELERY_CONCURRENCY),
        PIPELINE_STAGE_SECONDS=str(STAGE_SECONDS),
    )  # fmt: skip
    work, logs, tag, prefix, db, client, stack = (
        place.work,
        place.logs,
        place.tag,
        place.prefix,
        place.db,
        place.client,
        place.stack,
    )
    ctx["work"] = work
    ctx["database"] = db.label

    rids = [f"LOAD-{tag}-{i + 1:02d}" for i in range(args.uploads)]
    jobs: list[Job] = []
    ctx["jobs"] = jobs
    stop = threading.Event()
    threads: list[threading.Thread] = []
    passed = False
    try:
        db.create()
        t = time.perf_counter()
        for i, (path, size) in enumerate(build_archives(work, rids, args.size_mib * MIB)):
            jobs.append(Job(i, rids[i], path, size))
        print(
            f"built {len(jobs)} archives of {jobs[0].size:,} bytes in {time.perf_counter() - t:.1f}s",
            flush=True,
        )
        for k in range(args.pollers):
            jobs[k % len(jobs)].pollers += 1

        t = time.perf_counter()
        start_stack(stack, tag, deadline)
        print(f"stack ready in {time.perf_counter() - t:.1f}s: {', '.join(stack.procs)}", flush=True)
        ctx["stack_ready"] = True

        load_logs_from = log_sizes(logs)
        t0 = time.monotonic()
        ctx["t0_epoch"] = time.time()
        stats = Stats(t0)
        ctx["stats"] = stats
        for k in range(args.pollers):
            job = jobs[k % len(jobs)]
            threads.append(
                threading.Thread(target=poller, args=(k, job, stack.base, stats, stop), daemon=True)
            )
        threads.append(threading.Thread(target=monitor, args=(jobs, stack.base, stats, stop), daemon=True))
        up_timeout = max(30.0, deadline - time.monotonic() - 60)
        uploaders = [
            threading.Thread(target=upload, args=(job, stack.base, stats, work, up_timeout), daemon=True)
            for job in jobs
        ]
        for thread in threads + uploaders:
            thread.start()
        print(f"load started: {len(uploaders)} uploads, {args.pollers} pollers", flush=True)

        end_reason = ""
        last_print = 0.0
        uploads_done_at = None
        while True:
            now = time.monotonic()
            if uploads_done_at is None and all(not u.is_alive() for u in uploaders):
                uploads_done_at = now - t0
                codes = Counter(j.upload_code for j in jobs)
                print(f"[{uploads_done_at:6.1f}s] uploads done: {dict(codes)}", flush=True)
            if uploads_done_at is not None and all(j.terminal for j in jobs):
                end_reason = "every job reached an end state"
                break
            if stack.dead():
                end_reason = f"stack process(es) exited: {', '.join(stack.dead())}"
                break
            if now > deadline - 45:  # leave time to check, stop and clean up
                end_reason = f"global timeout ({args.timeout:.0f} s) reached"
                break
            if now - last_print >= 5:
                last_print = now
                states = Counter(
                    j.observed_status
                    or ("extracted" if j.recording_id else "uploaded" if j.job_id else "upload")
                    for j in jobs
                )
                total = sum(len(v) for v in stats.samples.values())
                bad = sum(1 for r, v in stats.samples.items() for s in v if failed(r, s.code))
                print(f"[{now - t0:6.1f}s] {dict(states)}; {total} requests, {bad} failed", flush=True)
            time.sleep(0.2)
        load_end = time.monotonic() - t0
        stop.set()
        for thread in threads + uploaders:
            thread.join(timeout=max(1.0, HTTP_TIMEOUT[1] + 5 - (time.monotonic() - t0 - load_end)))
        hung = [t.name for t in threads + uploaders if t.is_alive()]
        print(f"[{load_end:6.1f}s] stopped: {end_reason}", flush=True)

        # Final check of every recording, once.
        session = requests.Session()
        session.trust_env = False
        for job in jobs:
            if job.recording_id:
                resp = stats.get(session, R_RECORDING, f"{stack.base}/api/recordings/{job.recording_id}")
                if resp is not None and resp.status_code == 200:
                    job.final = resp.json()
        session.close()

        finished = [epoch((j.final or {}).get("finished_at")) for j in jobs]
        all_done = all((j.final or {}).get("status") == "completed" for j in jobs) and all(finished)
        observed = [j.observed_terminal_at for j in jobs]
        ctx["all_completed_at"] = max(finished) - ctx["t0_epoch"] if all_done else None
        ctx["observed_all_at"] = (
            max(observed) if all_done and all(o is not None for o in observed) else load_end
        )
        ctx["end_reason"] = end_reason
        ctx["uploads_done_at"] = uploads_done_at or load_end

        # What the pollers achieved: requests per poller per second while polling ran.
        polls = len(stats.samples[R_EXTRACT]) + len(stats.samples[R_STATUS_EARLY])
        rate = polls / max(args.pollers, 1) / max(load_end, 1e-9)
        ctx["poll_rate"] = (
            f"{polls} polls in {load_end:.1f} s = {rate:.2f} per poller per second (target "
            f"{1 / POLL_INTERVAL:.2f}), plus {len(stats.samples[R_STATUS])} GET /status every 10 s"
        )

        # Verdict.
        reasons = []
        codes_5xx = sum(1 for v in stats.samples.values() for s in v if s.code.startswith("5"))
        no_answer = sum(1 for v in stats.samples.values() for s in v if not s.code[:3].isdigit())
        unexpected = sum(
            1
            for r, v in stats.samples.items()
            for s in v
            if failed(r, s.code) and s.code[:3].isdigit() and not s.code.startswith("5")
        )
        if codes_5xx:
            reasons.append(f"{codes_5xx} × 5xx")
        if no_answer:
            reasons.append(f"{no_answer} connection errors/timeouts")
        if unexpected:
            reasons.append(f"{unexpected} unexpected 4xx/other statuses")
        bad_jobs = [(j, why) for j in jobs for ok, why in [job_ok(j)] if not ok]
        if bad_jobs:
            reasons.append(f"{len(bad_jobs)} of {len(jobs)} jobs not completed with 1 attempt")
        if end_reason != "every job reached an end state":
            reasons.append(end_reason)
        if hung:
            reasons.append(f"{len(hung)} client threads did not stop")
        notes = []
        for job, why in bad_jobs:
            notes.append(f"**{job.rid}** (job {job.job_id}): {why}")
        for problem in stats.problems[:15]:
            notes.append(f"failure: {problem}")
        for route in ROUTES[1:]:
            slow = sum(1 for x in stats.samples[route] if x.seconds >= 1.0)
            if slow:
                total = len(stats.samples[route])
                notes.append(f"{route}: {slow} of {total} answers ({slow / total:.1%}) took 1 s or more.")
        findings = log_findings(logs, load_logs_from)
        if not findings:
            notes.append(
                "Stack logs during the load: no warning, error, traceback, worker timeout or 5xx line."
            )
        for name, hits in findings.items():
            notes.append(
                f"{name}.log: {len(hits)} line(s) matching {LOG_PATTERN.pattern!r}, e.g. `{hits[0][:200]}`"
            )
        ctx["notes"] = notes
        passed = not reasons
        total = sum(len(v) for v in stats.samples.values())
        steady = [s.seconds for s in stats.samples[R_STATUS]]
        early = [s.seconds for s in stats.samples[R_STATUS_EARLY]]
        status_p95 = pct(steady, 95) if steady else float("nan")
        early_p95 = pct(early, 95) if early else float("nan")
        done = ctx["all_completed_at"]
        ctx["summary"] = [
            summary_row(
                f"Load: {len(jobs)} × {args.size_mib} MiB uploads and {args.pollers} pollers "
                f"(GET /status p95 {status_p95 * 1000:.0f} ms; "
                f"{early_p95 * 1000:.0f} ms while the uploads start)",
                f"{total} requests",
                f"{codes_5xx + no_answer + unexpected} failed; "
                + (f"all done in {done:.1f} s" if done else "not all done"),
                "—",
                "no error, every recording completed with 1 attempt",
                passed,
            )
        ]
        ctx["verdict"] = (
            f"**Verdict: target met**: no 5xx, no error, all {len(jobs)} recordings `completed` "
            "with 1 attempt."
            if passed
            else f"**Verdict: target NOT met**: {'; '.join(reasons)}."
        )
        if not passed:
            print("\n".join(["", "FAILURES:"] + notes + stats.problems[15:]), flush=True)
            for job, _ in bad_jobs:
                tail = ((job.final or {}).get("error_details") or {}).get("log_tail") or []
                if tail:
                    print(f"\n--- {job.rid}: pipeline log tail (error_details.log_tail)")
                    print("\n".join(tail[-15:] if isinstance(tail, list) else str(tail).splitlines()[-15:]))
            print("\nstack logs (tail):\n" + stack.log_tail(60), flush=True)
            for name, hits in findings.items():
                print(f"\n--- {name}.log, lines that point at trouble ({len(hits)}):")
                print("\n".join(hits[-40:]))
        return passed
    finally:
        stop.set()
        signal.alarm(0)
        stack.stop()
        report_redis_cleanup(client, prefix, own_job_ids(db.url, jobs))
        with contextlib.suppress(redis.RedisError):  # a Redis error is reported above
            left = [k for k in client.scan_iter(match=f"*{tag}*", count=1000)]
            if left:
                print(f"keys naming this run still in Redis (not deleted): {left[:10]}", flush=True)
        db.drop_reported()
        tidy_work(work, args.keep, passed, junk="*.zip")  # on a failure the archives go too


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8, help="concurrent uploads (recordings)")
    parser.add_argument("--size-mib", type=int, default=200, help="MP4 size per recording, MiB")
    parser.add_argument("--pollers", type=int, default=100)
    add_run_arguments(parser, DEFAULT_REDIS_URL, timeout=900)
    args = parser.parse_args()
    if args.uploads < 1 or args.size_mib < 1 or args.pollers < 0 or args.timeout < 120:
        parser.error("--uploads and --size-mib >= 1, --pollers >= 0, --timeout >= 120")

    install_timeout(args.timeout)  # backstop; the run itself stops 45 s before --timeout
    shown = hide_database_url(sys.argv[1:])
    ctx: dict = {
        "args": args,
        "command": " ".join([".venv/bin/python bench/load.py", *shown]),
        "gunicorn": gunicorn_version(),
    }
    try:
        passed = run(args, ctx)
    except Exception as exc:  # GlobalTimeout included
        print(f"load test could not run to its end: {type(exc).__name__}: {exc}", file=sys.stderr)
        print_logs(ctx.get("work"))
        return 1
    text = section(ctx)
    print()
    print(text)
    if not args.no_write:
        write_section("bench/load.py", text)
        write_summary("bench/load.py", ctx["summary"])
        print("wrote BENCHMARKS.md")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
