"""Scale-out: a batch of recordings through one pipeline worker, then through two.

    .venv/bin/python bench/scale_out.py [--recordings 12] [--stage-seconds 0.25] [--repetitions 5]
                                        [--timeout 900] [--database-url URL]
                                        [--redis-url redis://127.0.0.1:6379/12] [--workdir DIR] [--keep]
                                        [--no-write]

Target: two pipeline workers process a batch in about half the time of one, i.e. ≥ 1.9× the
recordings per hour, with a fixed stage time (PIPELINE_STAGE_SECONDS, --stage-seconds).

One stack as bench/stack.py starts it (Gunicorn with WEB_WORKERS=4 gthread x 8 threads,
`celery worker -Q ingest --concurrency 2`, `celery beat`), its own work directory, DATA_DIR and
database (SQLite in DATA_DIR; with --database-url a PostgreSQL server gets a throw-away schema,
dropped at the end) and Redis DB 12 under its own BROKER_KEY_PREFIX `scale-<random>:`. start_stack
waits for /healthz, which needs a consumer on `pipeline`: a pipeline worker is started with the
stack and stopped as soon as the stack is ready, before the first upload. Then, --repetitions times, A and
B one after the other (A, B, A, B, ...):

* A: one `celery worker -Q pipeline --concurrency 1`; B: two such processes, distinct names;
* with no pipeline worker running, the batch is uploaded: --recordings small recordings
  (`recording_files(rid)`, 4 KiB MP4, zipped like `make_zip`, a fresh recording id each), POST
  /upload one after the other; the ingest worker extracts them and queues attempt 1 of each on
  `pipeline`, where the messages wait in Redis; ingest is over before the clock starts;
* once every recording of the batch is `queued` (checked in the database) and the run's `pipeline`
  list in Redis holds one message per recording, the list is set aside (RENAME to a key of the
  same prefix) while the run's worker processes start; when all have logged `ready.` (and 1.5 s
  more, so each is blocked in its fetch), it is renamed back in one step and Redis wakes every
  waiting worker at once. Started any other way, one worker could begin up to a second before the
  other (process start-up; a queue added with `add_consumer` is only fetched after kombu's current
  1 s BRPOP ends), and B would pay for that skew;
* the clock: from the first `attempts.started_at` of the batch (the first claim) to the last
  `recordings.finished_at` (both written by the service; same definition in A and B); the batch's
  recordings per hour = N / that time;
* then the run's worker processes are stopped (SIGTERM, warm shutdown) and the next run starts fresh.

Checked for every recording: `completed`, exactly one attempt (completed), run by a worker of its
run; reported: how the batch was split between the workers, the mean time of one attempt (claim to
finish) and the mean gap between two attempts of one worker (its finish to its next claim: ack,
fetch, hand-off, claim). Result: the median recordings per hour of A and of B and their ratio B/A
(also per pair of runs). Exit code 1 when the ratio is under 1.9, or any recording did not complete
with exactly one attempt, or a worker of B ran nothing.

The table is printed and written into BENCHMARKS.md (only this script's section). Every wait is
bounded (the whole run by --timeout); all processes are stopped in a finally block; only this run's
Redis keys are deleted (its broker prefix and `extraction:<job>` of its own jobs); the stack's logs
stay in the work directory on a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests
from celery.utils.nodenames import host_format
from report import free_port, machine_line, write_section
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from stack import STOP_TIMEOUT, Stack, redis_cleanup, stack_env, start_stack, worker_argv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from signpipe.db import normalize_url  # noqa: E402
from signpipe.models import Attempt, Recording  # noqa: E402
from tests.factories import make_zip, recording_files  # noqa: E402

BIN = Path(sys.executable).parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
TARGET_RATIO = 1.9
CONFIGS = {"A": 1, "B": 2}  # pipeline worker processes, each --concurrency 1
WORKER_READY_TIMEOUT = 120.0
HTTP_TIMEOUT = (5, 30)
CONTROL_TIMEOUT = 5.0
POLL_SECONDS = 0.2
SETTLE_SECONDS = 1.5  # after `ready.`: longer than one blocking fetch (kombu's BRPOP, 1 s)
TERMINAL = ("completed", "failed", "cancelled")


class GlobalTimeout(Exception):
    pass


class RunFailed(Exception):
    pass


@dataclass
class Run:
    config: str
    repetition: int
    rids: list[str]
    job_ids: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)  # Celery node names
    queued_messages: int | None = None
    go: float | None = None  # wall clock when the waiting messages were handed back
    first_start: float | None = None
    skew: float | None = None  # between the workers' first claims
    last_finish: float | None = None
    split: dict[str, int] = field(default_factory=dict)
    attempt_seconds: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def wall(self) -> float | None:
        if self.first_start is None or self.last_finish is None:
            return None
        return self.last_finish - self.first_start

    @property
    def per_hour(self) -> float | None:
        wall = self.wall
        return len(self.rids) / wall * 3600 if wall else None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems and self.wall is not None


# --------------------------------------------------------------------------- database


class Database:
    """The stack's database: SQLite in DATA_DIR, or a throw-away schema on the server of --database-url."""

    def __init__(self, data_dir: Path, url: str | None, tag: str):
        self.admin_url = url
        self.schema = None
        self.engine = None
        if url is None:
            self.url, self.label = f"sqlite:///{data_dir / 'signpipe.db'}", "SQLite in DATA_DIR"
        elif normalize_url(url).startswith("postgresql"):
            self.schema = f"bench_scale_{tag}"
            self.url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{self.schema}"
            self.label = "PostgreSQL from --database-url (a throw-away schema)"
        else:
            self.url, self.label = url, "database from --database-url"

    def _admin(self, statement: str) -> None:
        admin = create_engine(normalize_url(self.admin_url))
        try:
            with admin.begin() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()

    def create(self) -> None:
        if self.schema:
            self._admin(f'CREATE SCHEMA "{self.schema}"')
        self.engine = create_engine(normalize_url(self.url))

    def drop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.schema:
            self._admin(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def count(self, rids: list[str], statuses: tuple[str, ...]) -> int:
        """Recordings of the batch in one of `statuses` (0 before the tables exist)."""
        with Session(self.engine) as session:
            return session.scalar(
                select(func.count())
                .select_from(Recording)
                .where(Recording.id.in_(rids), Recording.status.in_(statuses))
            )

    def batch(self, rids: list[str]) -> tuple[list[Recording], list[Attempt]]:
        with Session(self.engine) as session:
            recs = list(session.scalars(select(Recording).where(Recording.id.in_(rids))))
            attempts = list(
                session.scalars(
                    select(Attempt).where(Attempt.recording_id.in_(rids)).order_by(Attempt.started_at)
                )
            )
            return recs, attempts


def epoch(value: datetime | None) -> float | None:
    """A database timestamp as Unix time; naive values are UTC (SQLite)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# --------------------------------------------------------------------------- processes


def stop_processes(stack: Stack, names: list[str]) -> list[str]:
    """Stop some of the stack's processes (SIGTERM to the group, SIGKILL after STOP_TIMEOUT) and
    forget them, so the stack's crash check no longer counts them. Returns what needed SIGKILL."""
    killed = []
    procs = {name: stack.procs[name] for name in names if name in stack.procs}
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        stack.procs.pop(name, None)
    return killed


def wait_ready(stack: Stack, names: list[str], until: float) -> None:
    """Until each named Celery worker has logged `ready.` (as start_stack checks)."""
    while True:
        dead = [name for name in names if stack.procs[name].poll() is not None]
        if dead:
            raise RunFailed(f"worker(s) exited during start-up: {dead}")
        if all(b" ready." in (stack.logs / f"{name}.log").read_bytes() for name in names):
            return
        if time.monotonic() > until:
            raise RunFailed(f"workers {names} not ready within {WORKER_READY_TIMEOUT:.0f} s")
        time.sleep(0.1)


# --------------------------------------------------------------------------- one run


def build_archive(work: Path, rid: str) -> bytes:
    path = make_zip(work / f"{rid}.zip", recording_files(rid))
    data = path.read_bytes()
    path.unlink()
    return data


def upload_batch(session: requests.Session, base: str, run: Run, work: Path) -> None:
    for rid in run.rids:
        archive = build_archive(work, rid)
        resp = session.post(
            f"{base}/upload", files={"file": (f"{rid}.zip", archive, "application/zip")}, timeout=HTTP_TIMEOUT
        )
        if resp.status_code != 202:
            raise RunFailed(f"upload of {rid} answered {resp.status_code}: {resp.text[:300]}")
        run.job_ids.append(resp.json()["job_id"])


def wait_until(predicate, until: float, what: str) -> None:
    while not predicate():
        if time.monotonic() > until:
            raise RunFailed(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def one_run(run: Run, ctx: dict, deadline: float) -> None:
    args, stack, db, client = ctx["args"], ctx["stack"], ctx["db"], ctx["redis"]
    tag, work, queue_key = ctx["tag"], ctx["work"], f"{ctx['prefix']}pipeline"
    held_key = f"{ctx['prefix']}held-{run.config}{run.repetition}"
    names = [f"pipe{run.config}{run.repetition}w{k + 1}" for k in range(CONFIGS[run.config])]
    run.workers = [host_format(f"{name}-{tag}@%h") for name in names]
    session = requests.Session()
    session.trust_env = False
    try:
        # No pipeline worker runs: the batch is ingested and its messages wait in Redis.
        upload_batch(session, stack.base, run, work)
        n = len(run.rids)
        until = min(deadline, time.monotonic() + 60 + 2 * n)
        wait_until(lambda: db.count(run.rids, ("queued",)) == n, until, f"{n} recordings queued")
        wait_until(lambda: client.llen(queue_key) >= n, until, f"{n} messages in {queue_key}")
        run.queued_messages = client.llen(queue_key)
        if run.queued_messages != n:
            raise RunFailed(f"{run.queued_messages} messages in {queue_key}, expected {n}")
        # Held aside while the workers start, then handed back in one step: Redis wakes every
        # worker blocked on the queue at once, so no worker starts ahead of the other.
        if not client.renamenx(queue_key, held_key):
            raise RunFailed(f"{held_key} exists")
        try:
            for name in names:
                stack.start(name, worker_argv("pipeline", f"{name}-{tag}", 1))
            wait_ready(stack, names, min(deadline, time.monotonic() + WORKER_READY_TIMEOUT))
            time.sleep(SETTLE_SECONDS)  # at least one blocking fetch of each worker has begun
            if ctx["dead"]():
                raise RunFailed(f"stack process(es) exited: {', '.join(ctx['dead']())}")
            run.go = time.time()
        finally:
            if not client.renamenx(held_key, queue_key):
                raise RunFailed(f"could not hand the messages back: {queue_key} exists")
        one_attempt = 8 * args.stage_seconds + 1
        until = min(deadline, time.monotonic() + 120 + 3 * n * one_attempt)
        wait_until(lambda: db.count(run.rids, TERMINAL) == n, until, f"{n} recordings to finish")
    finally:
        session.close()
        killed = stop_processes(stack, names)
        if killed:
            run.problems.append(f"worker(s) {killed} needed SIGKILL to stop")
    measure(run, db)


def measure(run: Run, db) -> None:
    recs, attempts = db.batch(run.rids)
    by_rec: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_rec.setdefault(attempt.recording_id, []).append(attempt)
    for rec in recs:
        mine = by_rec.get(rec.id, [])
        if rec.status != "completed" or len(mine) != 1 or mine[0].status != "completed":
            outcome = [(a.number, a.status, a.worker) for a in mine]
            run.problems.append(f"{rec.id}: {rec.status}, attempts {outcome}: {rec.error or ''}".strip())
        for attempt in mine:
            if attempt.worker not in run.workers:
                run.problems.append(f"{rec.id}: attempt {attempt.number} ran on {attempt.worker}")
    missing = set(run.rids) - {rec.id for rec in recs}
    if missing:
        run.problems.append(f"{len(missing)} recordings never stored: {sorted(missing)[:3]}")
    run.split = {node: 0 for node in run.workers}
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for attempt in attempts:
        start, end = epoch(attempt.started_at), epoch(attempt.finished_at)
        if attempt.status != "completed" or start is None or end is None:
            continue
        run.split[attempt.worker] = run.split.get(attempt.worker, 0) + 1
        run.attempt_seconds.append(end - start)
        by_worker.setdefault(attempt.worker, []).append((start, end))
    firsts = [min(spans)[0] for spans in by_worker.values()]
    if len(run.workers) > 1 and len(firsts) == len(run.workers):
        run.skew = max(firsts) - min(firsts)
    for spans in by_worker.values():
        spans.sort()
        run.gaps += [nxt[0] - prev[1] for prev, nxt in zip(spans, spans[1:], strict=False)]
    starts = [epoch(a.started_at) for a in attempts if a.started_at is not None]
    ends = [epoch(r.finished_at) for r in recs if r.finished_at is not None]
    if starts and ends and len(ends) == len(run.rids):
        run.first_start, run.last_finish = min(starts), max(ends)
    idle = [node for node, count in run.split.items() if count == 0]
    if idle:
        run.problems.append(f"worker(s) {idle} ran no recording")


# --------------------------------------------------------------------------- report


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def split_text(run: Run) -> str:
    return "/".join(str(run.split.get(node, 0)) for node in run.workers) or "–"


def summary_table(runs: list[Run], ratio: float | None, pair_ratios: list[float]) -> str:
    lines = [
        "| configuration | pipeline workers | runs ok | wall s, median (min–max) | recordings/hour, median "
        "(min–max) | split per worker (each run) | one attempt s, median | gap between a worker's "
        "attempts s, median |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config, count in CONFIGS.items():
        mine = [r for r in runs if r.config == config]
        ok = [r for r in mine if r.ok]
        walls = [r.wall for r in ok]
        rates = [r.per_hour for r in ok]
        spread_w = f"{fmt(med(walls))} ({fmt(min(walls))}–{fmt(max(walls))})" if walls else "–"
        spread_r = f"{fmt(med(rates), 0)} ({fmt(min(rates), 0)}–{fmt(max(rates), 0)})" if rates else "–"
        lines.append(
            f"| {config} | {count} × `--concurrency 1` | {len(ok)} of {len(mine)} | {spread_w} | "
            f"{spread_r} | "
            f"{', '.join(split_text(r) for r in mine)} | "
            f"{fmt(med([s for r in ok for s in r.attempt_seconds]), 3)} | "
            f"{fmt(med([g for r in ok for g in r.gaps]), 3)} |"
        )
    pairs = f" (pairs: {fmt(min(pair_ratios))}–{fmt(max(pair_ratios))})" if pair_ratios else ""
    verdict = "met" if ratio is not None and ratio >= TARGET_RATIO else "**not met**"
    lines.append(f"| **B / A** | | | | **{fmt(ratio)}×**{pairs} | target ≥ {TARGET_RATIO}×: {verdict} | | |")
    return "\n".join(lines)


def run_table(runs: list[Run]) -> str:
    lines = [
        "| run | config | messages waiting | hand-back → first claim s | workers' first claims apart s "
        "| wall s | recordings/hour | split | one attempt s (mean) | gap s (mean) | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lead = r.first_start - r.go if r.go is not None and r.first_start is not None else None
        check = "ok" if r.ok else f"**{r.error or '; '.join(r.problems[:2])}**"
        lines.append(
            f"| {r.repetition} | {r.config} | "
            f"{r.queued_messages if r.queued_messages is not None else '–'} | "
            f"{fmt(lead, 3)} | {fmt(r.skew, 3)} | {fmt(r.wall)} | {fmt(r.per_hour, 0)} | {split_text(r)} | "
            f"{fmt(statistics.fmean(r.attempt_seconds) if r.attempt_seconds else None, 3)} | "
            f"{fmt(statistics.fmean(r.gaps) if r.gaps else None, 3)} | {check} |"
        )
    return "\n".join(lines)


def section(ctx: dict) -> str:
    args = ctx["args"]
    runs: list[Run] = ctx["runs"]
    lines = [
        "## Scale-out: one pipeline worker against two",
        "",
        f"Target: two pipeline workers process a batch with ≥ {TARGET_RATIO}× the recordings per hour of one "
        "(fixed stage time).",
        "",
        machine_line(),
        f"- Command: `{ctx['command']}`; {args.repetitions} runs of each configuration, A and B "
        "alternating; medians",
        f"- Stack, all on 127.0.0.1 (bench/stack.py): {ctx['gunicorn']} (WEB_WORKERS=4 gthread × "
        "WEB_THREADS=8); `celery worker -Q ingest --concurrency 2`; `celery beat`; per run, A: one "
        "`celery worker -Q pipeline --concurrency 1`, B: two (distinct names), fresh processes; the "
        f"simulator with PIPELINE_STAGE_SECONDS={args.stage_seconds:g} (8 stages, "
        f"{8 * args.stage_seconds:g} s of sleep a recording); {ctx['database']}; Redis "
        f"`{args.redis_url}`, BROKER_KEY_PREFIX `scale-…:`",
        f"- Batch: {args.recordings} small recordings (`recording_files(rid)`, 4 KiB MP4, zipped like "
        "`make_zip`, fresh ids), uploaded one after the other with no pipeline worker running; once all "
        "are `queued`, their messages (waiting in Redis) are set aside while the run's workers start, "
        "then handed back in one RENAME, so all workers start at the same moment.",
        "- Clock: first `attempts.started_at` of the batch (the first claim) → last "
        "`recordings.finished_at`; recordings/hour = batch / that time. One attempt: its claim to its "
        "finish; gap: a worker's finish to its next claim.",
        "",
        summary_table(runs, ctx.get("ratio"), ctx.get("pair_ratios", [])),
        "",
        run_table(runs),
        "",
    ]
    for note in ctx["notes"]:
        lines.append(f"- {note}")
    lines += ["", ctx["verdict"]]
    return "\n".join(lines) + "\n"


def conclude(ctx: dict) -> bool:
    runs: list[Run] = ctx["runs"]
    rate = {c: [r.per_hour for r in runs if r.config == c and r.ok] for c in CONFIGS}
    ratio = med(rate["B"]) / med(rate["A"]) if rate["A"] and rate["B"] else None
    ctx["ratio"] = ratio
    pairs = {}
    for r in runs:
        if r.ok:
            pairs.setdefault(r.repetition, {})[r.config] = r.per_hour
    ctx["pair_ratios"] = [p["B"] / p["A"] for p in pairs.values() if "A" in p and "B" in p]
    notes = []
    ok_runs = [r for r in runs if r.ok]
    if ok_runs:
        one = {c: med([s for r in ok_runs if r.config == c for s in r.attempt_seconds]) for c in CONFIGS}
        gap = {c: med([g for r in ok_runs if r.config == c for g in r.gaps]) for c in CONFIGS}
        if all(v is not None for v in one.values()) and all(v is not None for v in gap.values()):
            n = ctx["args"].recordings
            ideal = (n * (one["A"] + gap["A"]) - gap["A"]) / ((n / 2) * (one["B"] + gap["B"]) - gap["B"])
            notes.append(
                f"One attempt takes {fmt(one['A'], 3)} s with one worker and {fmt(one['B'], 3)} s with two "
                f"(8 × {ctx['args'].stage_seconds:g} s of sleep plus the script's and the worker's own "
                "work); "
                f"a worker's gap between two attempts {fmt(gap['A'], 3)} s and {fmt(gap['B'], 3)} s. From "
                f"these alone, with an even split, B/A would be {fmt(ideal)}×."
            )
    waiting = [r for r in runs if r.queued_messages is not None and r.queued_messages != len(r.rids)]
    if waiting:
        notes.append(
            f"{len(waiting)} run(s) found another number of messages in the `pipeline` list than recordings "
            f"queued: {[(r.config, r.repetition, r.queued_messages) for r in waiting]}."
        )
    for r in runs:
        if not r.ok:
            notes.append(f"run {r.repetition}{r.config}: {r.error or ''} {'; '.join(r.problems[:5])}".strip())
    notes += ctx.get("extra_notes", [])
    ctx["notes"] = notes
    failed = [r for r in runs if not r.ok]
    passed = (
        ratio is not None
        and ratio >= TARGET_RATIO
        and not failed
        and len(runs) == 2 * ctx["args"].repetitions
    )
    if passed:
        ctx["verdict"] = (
            f"**Verdict: target met**: B/A = {fmt(ratio)}× ≥ {TARGET_RATIO}×; every recording `completed` "
            "with exactly 1 attempt, the work split between both workers of B."
        )
    else:
        why = []
        if ratio is None:
            why.append("no ratio (a configuration has no good run)")
        elif ratio < TARGET_RATIO:
            why.append(f"B/A = {fmt(ratio)}× < {TARGET_RATIO}×")
        if failed:
            why.append(f"{len(failed)} run(s) failed their checks")
        if len(runs) < 2 * ctx["args"].repetitions:
            why.append(f"{len(runs)} of {2 * ctx['args'].repetitions} runs done")
        ctx["verdict"] = f"**Verdict: target NOT met**: {'; '.join(why)}."
    return passed


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, ctx: dict) -> bool:
    deadline = time.monotonic() + args.timeout
    base_dir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    base_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-out-bench-", dir=base_dir))
    tag = uuid.uuid4().hex[:8]
    prefix = f"scale-{tag}:"
    data_dir, logs = work / "data", work / "logs"
    data_dir.mkdir()
    logs.mkdir()
    db = Database(data_dir, args.database_url, tag)
    client = redis.Redis.from_url(args.redis_url, socket_timeout=10, socket_connect_timeout=5)
    client.ping()
    port = free_port()
    env = stack_env(
        data_dir, port, db.url, args.redis_url, prefix, PIPELINE_STAGE_SECONDS=str(args.stage_seconds)
    )
    stack = Stack(f"http://127.0.0.1:{port}", logs, env)
    runs: list[Run] = []
    ctx.update(
        work=work, tag=tag, prefix=prefix, db=db, stack=stack, redis=client, runs=runs,
        database=db.label, dead=stack.dead,
    )  # fmt: skip
    print(f"work directory {work}; Redis {args.redis_url} prefix {prefix}; port {port}", flush=True)
    passed = False
    try:
        db.create()
        t = time.perf_counter()
        ingest = ("ingest", int(env["INGEST_CONCURRENCY"]))
        start_stack(stack, tag, deadline, workers={"ingest": ingest, "probe": ("pipeline", 1)})
        killed = stop_processes(stack, ["probe"])  # it only served /healthz during start-up
        print(f"stack ready in {time.perf_counter() - t:.1f}s: {', '.join(stack.procs)}", flush=True)
        if killed:
            ctx.setdefault("extra_notes", []).append("the start-up pipeline worker needed SIGKILL to stop")
        for rep in range(1, args.repetitions + 1):
            for config in CONFIGS:
                rids = [f"SCALE-{tag}-{config}{rep}-{i + 1:02d}" for i in range(args.recordings)]
                r = Run(config, rep, rids)
                runs.append(r)
                if time.monotonic() > deadline - 60:
                    r.error = "global timeout: not run"
                    break
                if stack.dead():
                    r.error = f"stack process(es) exited: {', '.join(stack.dead())}"
                    break
                try:
                    one_run(r, ctx, deadline - 30)
                except (RunFailed, requests.RequestException, redis.RedisError, OSError, ValueError) as exc:
                    r.error = f"{type(exc).__name__}: {exc}"
                print(
                    f"run {rep}{config}: wall {fmt(r.wall)} s, {fmt(r.per_hour, 0)} recordings/hour, split "
                    f"{split_text(r)}; {'ok' if r.ok else r.error or '; '.join(r.problems[:3])}",
                    flush=True,
                )
            if runs and runs[-1].error and runs[-1].error.startswith(("global timeout", "stack process")):
                break
        passed = conclude(ctx)
        if not passed and any(not r.ok for r in runs):
            print("\nstack logs (tail):\n" + stack.log_tail(40), flush=True)
        return passed
    finally:
        signal.alarm(0)
        stack.stop()
        try:
            job_ids = {job for r in runs for job in r.job_ids}
            removed = redis_cleanup(client, prefix, job_ids)
            print(
                f"redis cleanup: deleted {removed} keys ({prefix}* and extraction:<job> of "
                f"{len(job_ids)} jobs)"
            )
        except redis.RedisError as exc:
            print(f"redis cleanup failed: {exc}", file=sys.stderr)
        try:
            db.drop()
        except Exception as exc:
            print(f"database clean-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        elif passed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            print(f"logs kept in {logs}", flush=True)


def hide_database_url(argv: list[str]) -> list[str]:
    """The command line as shown in the report, without the database URL."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--database-url":
            shown.append("--database-url …")
            skip = True
        elif arg.startswith("--database-url="):
            shown.append("--database-url …")
        else:
            shown.append(arg if " " not in arg else repr(arg))
    return shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=12, help="batch size (even: an even split)")
    parser.add_argument("--stage-seconds", type=float, default=0.25, help="PIPELINE_STAGE_SECONDS")
    parser.add_argument("--repetitions", type=int, default=5, help="runs of each configuration (>= 5)")
    parser.add_argument("--timeout", type=float, default=900, help="global timeout, seconds")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the run's DATA_DIR")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--workdir", default=None, help="parent of the work directory (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    if args.recordings < 2 or args.stage_seconds < 0 or args.repetitions < 1 or args.timeout < 120:
        parser.error("--recordings >= 2, --stage-seconds >= 0, --repetitions >= 1, --timeout >= 120")

    def on_alarm(*_):
        raise GlobalTimeout(f"global timeout of {args.timeout:.0f} s (hard stop)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 30)  # backstop; the runs stop before --timeout
    gunicorn = subprocess.run(
        [str(BIN / "gunicorn"), "--version"], capture_output=True, text=True, timeout=30
    )
    ctx: dict = {
        "args": args,
        "command": " ".join([".venv/bin/python bench/scale_out.py", *hide_database_url(sys.argv[1:])]),
        "gunicorn": (gunicorn.stdout or gunicorn.stderr).strip(),
    }
    started = time.monotonic()
    try:
        passed = run(args, ctx)
    except Exception as exc:  # GlobalTimeout included
        print(f"benchmark could not run to its end: {type(exc).__name__}: {exc}", file=sys.stderr)
        logs = ctx.get("work", Path("?")) / "logs"
        if logs.is_dir():
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        return 1
    ctx["notes"].append(f"The whole benchmark took {time.monotonic() - started:.0f} s.")
    text_out = section(ctx)
    print()
    print(text_out)
    if not args.no_write:
        write_section("bench/scale_out.py", text_out)
        print("wrote BENCHMARKS.md")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
