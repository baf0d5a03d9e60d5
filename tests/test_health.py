"""/healthz: each dependency and each sign of stuck work is a named check."""

from __future__ import annotations

from datetime import timedelta

import pytest

from signpipe import monitor
from signpipe.db import db
from signpipe.extensions import init_redis
from signpipe.models import Attempt, utcnow

BOTH = {"ingest": ["ingest@node"], "pipeline": ["pipeline@gpu1"]}


@pytest.fixture
def workers(monkeypatch):
    seen = dict(BOTH)
    monkeypatch.setattr(monitor, "workers_by_queue", lambda wait=True: seen)
    return seen


def test_healthy_service_reports_workers_queues_and_disk(client, workers):
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["checks"]["workers"]["workers"] == BOTH
    assert body["checks"]["queues"]["lengths"] == {"ingest": 0, "pipeline": 0}
    assert body["checks"]["disk"]["free_bytes"] > 0


def test_a_queue_without_workers_is_503(client, workers):
    workers["pipeline"] = []
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no worker consumes pipeline" in response.get_json()["checks"]["workers"]["error"]


def test_a_running_job_without_heartbeat_is_503(client, workers):
    with db.transaction() as session:
        session.add(
            Attempt(
                recording_id="R",
                number=1,
                token="t" * 32,
                status="running",
                heartbeat_at=utcnow() - timedelta(hours=1),
            )
        )
    body = client.get("/healthz").get_json()
    assert (
        body["checks"]["heartbeats"]["ok"] is False and body["checks"]["heartbeats"]["stale_heartbeats"] == 1
    )


def test_a_nearly_full_disk_is_503(app, client, workers):
    app.config["MIN_FREE_BYTES"] = 10**18
    assert client.get("/healthz").get_json()["checks"]["disk"]["ok"] is False


def test_redis_down_is_named(app, client, workers):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    init_redis(app)
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"] is True
    assert "redis" in body["error"]


def test_liveness_stays_up_while_redis_is_down(app, client, workers):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    init_redis(app)
    assert client.get("/healthz").status_code == 503
    response = client.get("/livez")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


class FakeCelery:
    """Answers `inspect().active_queues()` with the replies given, one call at a time."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.control = self

    def inspect(self, timeout):
        return self

    def active_queues(self):
        return self.replies.pop(0)


def test_a_worker_that_misses_one_ping_still_counts_as_online():
    reply = {"pipeline@gpu1": [{"name": "pipeline"}], "ingest@web1": [{"name": "ingest"}]}
    monitor._last_seen.clear()
    celery = FakeCelery(reply, {"ingest@web1": [{"name": "ingest"}]})
    assert monitor._refresh(celery)["pipeline"] == ["pipeline@gpu1"]
    assert monitor._refresh(celery)["pipeline"] == ["pipeline@gpu1"]  # busy, missed the second ping


def test_a_queue_never_seen_gets_a_second_longer_ping():
    monitor._last_seen.clear()
    celery = FakeCelery({"ingest@web1": [{"name": "ingest"}]}, {"pipeline@gpu1": [{"name": "pipeline"}]})
    assert monitor._refresh(celery) == {"ingest": ["ingest@web1"], "pipeline": ["pipeline@gpu1"]}
