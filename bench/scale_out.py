"""Scale-out: a batch of recordings through one pipeline worker, then through two.

    .venv/bin/python bench/scale_out.py [--recordings 12] [--stage-seconds 0.25] [--repetitions 5]
                                        [--timeout 900] [--database-url URL]
                                        [--redis-url redis://127.0.0.1:6379/12] [--workdir DIR] [--keep]
                                        [--no-write]

Target: two pipeline workers process a batch in about half the time of one, i.e. ≥ 1.9× the
recordings per hour, with a fixed stage time (PIPELINE_STAGE_SECONDS, --stage-seconds).

One stack as bench/stack.py starts it (Gunicorn with WEB_WORKERS=4 gthread x 8 threads,
`celery worker -Q ingest --concurrency 2`, `celery beat`), with no pipeline worker, its own work
directory, DATA_DIR and database (SQLite in DATA_DIR; with --database-url a PostgreSQL server gets a
throw-away schema, dropped at the end) and Redis DB 12 under its own BROKER_KEY_PREFIX
`scale-<random>:`. The stack is ready when the ingest worker has logged `ready.` and the web
process answers /livez (/healthz would want a consumer on `pipeline`). Then, --repetitions times, A
and B one after the other (A, B, A, B, ...):

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
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from celery.utils.nodenames import host_format
from report import machine_line, summary_row, write_section, write_summary
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stack import (
    ROOT,
    RunDatabase,
    RunFailed,
    Stack,
    add_run_arguments,
    epoch,
    gunicorn_version,
    hide_database_url,
    install_timeout,
    new_run,
    print_logs,
    report_redis_cleanup,
    start_stack,
    tidy_work,
    worker_argv,
)

sys.path.insert(0, str(ROOT))
from signpipe.models import Attempt, Recording  # noqa: E402
from tests.factories import make_zip, recording_files  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
# The stack, set here rather than left to bench/stack.py's defaults (the same values); the
# pipeline workers get their --concurrency (1) on their command line.
WEB_WORKERS = 4
WEB_THREADS = 8
INGEST_CONCURRENCY = 2
TARGET_RATIO = 1.9
MIN_RUNS = 5
CONFIGS = {"A": 1, "B": 2}  # pipeline worker processes, each --concurrency 1
WORKER_READY_TIMEOUT = 120.0
HTTP_TIMEOUT = (5, 30)
CONTROL_TIMEOUT = 5.0
POLL_SECONDS = 0.2
SETTLE_SECONDS = 1.5  # after `ready.`: longer than one blocking fetch (kombu's BRPOP, 1 s)
TERMINAL = ("completed", "failed", "cancelled")


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


class Database(RunDatabase):
    """The stack's database (bench/stack.py), and the batch's rows in it."""

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


# --------------------------------------------------------------------------- processes


def wait_ready(stack: Stack, names: list[str], until: float) -> None:
    """Until each named Celery worker has logged `ready.` (as start_stack checks)."""
    while True:
        dead = [name for name in names if stack.procs[name].poll() is not None]
        if dead:
            raise RunFailed(f"worker(s) exited during start-up: {dead}")
        if stack.logged_ready(names):
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
        # worker blocked on the queue at once, so no worker starts ahead of the other. (The reaper
        # re-sends only attempts queued for RESEND_AFTER_SECONDS, 60 s; should it re-send one while
        # the list is aside, RENAMENX refuses to hand it back and the run fails instead of
        # measuring duplicates.)
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
        killed = stack.stop(names)
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
        f"- Stack, all on 127.0.0.1 (bench/stack.py): {ctx['gunicorn']} (WEB_WORKERS={WEB_WORKERS} gthread × "
        f"WEB_THREADS={WEB_THREADS}); `celery worker -Q ingest --concurrency {INGEST_CONCURRENCY}`; "
        "`celery beat`; per run, A: one "
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
    if ctx["args"].repetitions < MIN_RUNS:
        notes.append(
            f"Only {ctx['args'].repetitions} runs of each: the benchmark rules ask for medians of "
            f"≥ {MIN_RUNS}."
        )
    ctx["notes"] = notes
    failed = [r for r in runs if not r.ok]
    passed = (
        ratio is not None
        and ratio >= TARGET_RATIO
        and not failed
        and len(runs) == 2 * ctx["args"].repetitions
    )
    args = ctx["args"]
    ctx["summary"] = [
        summary_row(
            f"Scale-out: {args.recordings} recordings at {args.stage_seconds:g} s a stage, two pipeline "
            f"workers against one (recordings/hour, median of {args.repetitions})",
            f"1 worker: {fmt(med(rate['A']), 0)}/h",
            f"2 workers: {fmt(med(rate['B']), 0)}/h",
            f"{fmt(ratio)}",
            f"≥ {TARGET_RATIO}",
            passed,
        )
    ]
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
    place = new_run(
        args, "scale-out", "scale", Database,
        WEB_WORKERS=str(WEB_WORKERS), WEB_THREADS=str(WEB_THREADS),
        INGEST_CONCURRENCY=str(INGEST_CONCURRENCY), PIPELINE_STAGE_SECONDS=str(args.stage_seconds),
    )  # fmt: skip
    work, tag, prefix, db, client, stack = (
        place.work,
        place.tag,
        place.prefix,
        place.db,
        place.client,
        place.stack,
    )
    runs: list[Run] = []
    ctx.update(
        work=work, tag=tag, prefix=prefix, db=db, stack=stack, redis=client, runs=runs,
        database=db.label, dead=stack.dead,
    )  # fmt: skip
    passed = False
    try:
        db.create()
        t = time.perf_counter()
        workers = {"ingest": ("ingest", INGEST_CONCURRENCY)}  # the pipeline workers come with each run
        start_stack(stack, tag, deadline, workers=workers, require_health=False)
        print(f"stack ready in {time.perf_counter() - t:.1f}s: {', '.join(stack.procs)}", flush=True)
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
        report_redis_cleanup(client, prefix, {job for r in runs for job in r.job_ids})
        db.drop_reported()
        tidy_work(work, args.keep, passed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=12, help="batch size (even: an even split)")
    parser.add_argument("--stage-seconds", type=float, default=0.25, help="PIPELINE_STAGE_SECONDS")
    parser.add_argument("--repetitions", type=int, default=5, help="runs of each configuration (>= 5)")
    add_run_arguments(parser, DEFAULT_REDIS_URL, timeout=900)
    args = parser.parse_args()
    if args.recordings < 2 or args.stage_seconds < 0 or args.repetitions < 1 or args.timeout < 120:
        parser.error("--recordings >= 2, --stage-seconds >= 0, --repetitions >= 1, --timeout >= 120")

    install_timeout(args.timeout)  # backstop; the runs stop before --timeout
    ctx: dict = {
        "args": args,
        "command": " ".join([".venv/bin/python bench/scale_out.py", *hide_database_url(sys.argv[1:])]),
        "gunicorn": gunicorn_version(),
    }
    started = time.monotonic()
    try:
        passed = run(args, ctx)
    except Exception as exc:  # GlobalTimeout included
        print(f"benchmark could not run to its end: {type(exc).__name__}: {exc}", file=sys.stderr)
        print_logs(ctx.get("work"))
        return 1
    ctx["notes"].append(f"The whole benchmark took {time.monotonic() - started:.0f} s.")
    text_out = section(ctx)
    print()
    print(text_out)
    if not args.no_write:
        source = "bench/scale_out.py" + (" (--database-url)" if args.database_url else "")
        write_section(source, text_out)
        write_summary(source, ctx["summary"])
        print("wrote BENCHMARKS.md")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
