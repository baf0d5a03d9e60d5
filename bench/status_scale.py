"""Status page and recordings API at 100 and 10,000 recordings: server time per request.

    .venv/bin/python bench/status_scale.py [--database-url URL] [--runs 30] [--rounds 5]

Seeds a fresh database (SQLite in a temp folder, or a throw-away schema on the PostgreSQL given by
--database-url, dropped afterwards)
with recordings in mixed states (the same 30 running or waiting at both sizes, the rest
finished), then times requests through the app in-process (the Flask test client: the server's
own work, without network or client overhead). A round measures 100, then 10,000, then 10,000
with the counts taken on every request, --runs requests per case each; --rounds rounds.
Medians over the rounds; the ratio 10,000 / 100 is taken within each round (the machine's noise
moves both alike), and its median shows whether cost grows with the total.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import fakeredis
from report import ROOT, machine_line, summary_row, write_section, write_summary
from stack import RunDatabase

sys.path.insert(0, str(ROOT))

from signpipe import create_app  # noqa: E402
from signpipe.db import db  # noqa: E402
from signpipe.extensions import bind_redis  # noqa: E402
from signpipe.models import Recording, initial_stages, utcnow  # noqa: E402

# Finished recordings pile up; what runs or waits is bounded by the workers, not by the history:
# both sizes have the same 5 running and 25 waiting, so both pages show the same rows.
FINISHED = ["completed"] * 80 + ["failed"] * 15 + ["cancelled"] * 5
ACTIVE = ["processing"] * 5 + ["queued"] * 25
# Every case returns the same number of rows (10) at both sizes, so only the total differs.
CASES = {
    "/status": "/status?per_page=10",
    "/status?partial=1 (10 s refresh)": "/status?partial=1&per_page=10",
    "/status, failed only": "/status?status=failed&per_page=10",
    "/status, search id prefix": "/status?q=REC_00000&per_page=10",
    "/api/recordings": "/api/recordings?per_page=10",
    "/api/recordings, sort by id, page 5": "/api/recordings?sort=id&page=5&per_page=10",
}
TARGET_MS = 50
DEFAULT_MAX_AGE = 2.0  # STATUS_COUNTS_MAX_AGE's default


def seed(count: int) -> None:
    rng = random.Random(count)
    now = utcnow()
    rows = [
        {
            "id": f"REC_{i:06d}",
            "status": ACTIVE[i] if i < len(ACTIVE) else rng.choice(FINISHED),
            "stage_index": 3,
            "stages": initial_stages(),
            "attempt": 1,
            "results_attempt": 1,
            "size_bytes": 4 * 1024**3,
            "created_at": now - timedelta(minutes=i),
            "updated_at": now,
        }
        for i in range(count)
    ]
    with db.transaction() as session:
        session.execute(Recording.__table__.insert(), rows)


def time_case(client, path: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(samples)


def measure(count: int, database_url: str | None, runs: int, counts_max_age: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="status-bench-") as tmp:
        database = RunDatabase(Path(tmp), database_url, "bench_status_", uuid.uuid4().hex[:8])
        database.create()
        try:
            return measure_in(database.url, tmp, count, runs, counts_max_age)
        finally:
            database.drop_reported()


def measure_in(database_url: str, tmp: str, count: int, runs: int, counts_max_age: float) -> dict[str, float]:
    """Seed `count` recordings into an empty database and time every case."""
    app = create_app(
        {
            "DATA_DIR": tmp,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
            "STATUS_COUNTS_MAX_AGE": counts_max_age,
        }
    )
    bind_redis(app, fakeredis.FakeRedis())
    with app.app_context():
        seed(count)
        client = app.test_client()
        client.get("/status")  # warm templates and connections
        result = {name: time_case(client, path, runs) for name, path in CASES.items()}
    db.engine.dispose()  # before its schema is dropped
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=30, help="requests per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        rounds.append(
            (
                measure(100, args.database_url, args.runs, DEFAULT_MAX_AGE),
                measure(10_000, args.database_url, args.runs, DEFAULT_MAX_AGE),
                measure(10_000, args.database_url, args.runs, 0),
            )
        )
    small, large, uncached = (
        {name: statistics.median(r[k][name] for r in rounds) for name in CASES} for k in range(3)
    )
    ratios = {name: statistics.median(r[1][name] / r[0][name] for r in rounds) for name in CASES}
    rows = []
    met = True
    for name in CASES:
        ratio = ratios[name]
        ok = large[name] <= TARGET_MS and ratio <= 1.5
        met &= ok
        verdict = "met" if ok else "**not met**"
        cells = [name, f"{small[name]:.1f}", f"{large[name]:.1f}", f"{ratio:.2f}", verdict]
        cells.append(f"{uncached[name]:.1f}")
        rows.append("| " + " | ".join(cells) + " |")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    text = "\n".join(
        [
            f"## Status at scale: 100 vs 10,000 recordings ({backend})",
            "",
            f"Target: ≤ {TARGET_MS} ms server time at 10,000 recordings, within 1.5× of the time at 100.",
            "",
            machine_line(),
            f"- Command: `.venv/bin/python bench/status_scale.py --runs {args.runs} --rounds {args.rounds}"
            + (" --database-url …`" if args.database_url else "`")
            + f"; {args.rounds} rounds of {args.runs} in-process requests per case (Flask test client), "
            "10 rows a page each; medians of the rounds' medians, ratios within each round",
            f"- The count per status is reused for STATUS_COUNTS_MAX_AGE={DEFAULT_MAX_AGE:g} s (the default) "
            "by each web process; the last column counts on every request (`STATUS_COUNTS_MAX_AGE=0`), the "
            "cost of the one request per process and interval that refreshes the counts",
            "",
            "| request | ms at 100 | ms at 10,000 | ratio | target | ms at 10,000, counting every request |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        write_section(f"bench/status_scale.py ({backend})", text)
        slowest = max(CASES, key=lambda name: large[name])
        steepest = max(CASES, key=lambda name: ratios[name])
        summary = [
            summary_row(
                f"Status page / API at 10,000 recordings, slowest case ({slowest}), {backend}",
                "—",
                f"{large[slowest]:.1f} ms",
                "—",
                f"≤ {TARGET_MS} ms",
                large[slowest] <= TARGET_MS,
            ),
            summary_row(
                f"Cost at 10,000 vs 100 recordings, steepest case ({steepest}), {backend}",
                f"{small[steepest]:.1f} ms at 100",
                f"{large[steepest]:.1f} ms at 10,000",
                f"{ratios[steepest]:.2f}",
                "≤ 1.5",
                ratios[steepest] <= 1.5,
            ),
        ]
        write_summary(f"bench/status_scale.py ({backend})", summary)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
