"""The web process's copy of progress records: fresh from the writers' messages, or read from Redis."""

from __future__ import annotations

import json
import time
import uuid

import fakeredis
import pytest
import redis
from sqlalchemy import select

from signpipe import catalog, changes, jobs
from signpipe.db import db
from signpipe.extensions import bind_redis
from signpipe.feeds import ProgressFeed
from signpipe.models import Attempt, Recording
from signpipe.progress import ProgressStore, new_progress
from signpipe.web import recordings as routes

CHANNEL = "test:extraction-progress"


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def store(server):
    return ProgressStore(fakeredis.FakeRedis(server=server), channel=CHANNEL)


@pytest.fixture
def feed(store):
    feed = ProgressFeed(store, max_age=5)
    yield feed
    feed.stop()


class CountingStore(ProgressStore):
    def __init__(self, store):
        super().__init__(store.redis, channel=store.channel)
        self.reads = 0

    def get(self, job_id):
        self.reads += 1
        return super().get(job_id)


def wait_for(condition, timeout=5.0):
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "condition not reached"
        time.sleep(0.02)


def test_polls_are_answered_from_the_writers_messages_without_reading_redis(store):
    counting = CountingStore(store)
    feed = ProgressFeed(counting, max_age=5)
    try:
        assert feed.get("job1") is None  # starts listening; nothing written yet
        wait_for(lambda: feed.live)
        store.set("job1", new_progress("job1", "extracting", percent=10.0))
        wait_for(lambda: (feed.get("job1") or {}).get("percent") == 10.0)
        reads = counting.reads
        store.set("job1", new_progress("job1", "extracting", percent=55.0))
        wait_for(lambda: feed.get("job1")["percent"] == 55.0)
        for _ in range(50):
            assert feed.get("job1")["percent"] == 55.0
        assert counting.reads == reads  # every poll above came from memory
    finally:
        feed.stop()


def test_a_record_read_from_redis_is_kept_current_by_later_messages(store, feed):
    feed.get("warm-up")
    wait_for(lambda: feed.live)
    record = {"job_id": "job2", "status": "extracting", "percent": 1.0, "updated_at": 1}
    store.redis.set("extraction:job2", json.dumps(record))  # written before anyone listened
    assert feed.get("job2")["percent"] == 1.0
    store.set("job2", new_progress("job2", "done", percent=100.0))
    wait_for(lambda: feed.get("job2")["status"] == "done")


def test_an_older_record_never_replaces_a_newer_one(store, feed):
    feed.get("warm-up")
    wait_for(lambda: feed.live)
    newer = dict(new_progress("job3", "extracting", percent=80.0), updated_at=200.0)
    older = dict(new_progress("job3", "extracting", percent=20.0), updated_at=100.0)
    feed._remember(newer)
    feed._remember(older)
    assert feed.get("job3")["percent"] == 80.0


def test_a_held_record_is_read_again_after_max_age_without_a_message(store):
    now = [1000.0]
    counting = CountingStore(store)
    feed = ProgressFeed(counting, max_age=5, clock=lambda: now[0])
    try:
        feed.get("warm-up")
        wait_for(lambda: feed.live)
        store.set("job4", new_progress("job4", "extracting", percent=5.0))
        wait_for(lambda: feed._entries.get("job4") is not None)
        reads = counting.reads
        feed.get("job4")
        assert counting.reads == reads
        now[0] += 6
        feed.get("job4")
        assert counting.reads == reads + 1
    finally:
        feed.stop()


def test_when_the_subscription_drops_polls_read_redis_and_it_comes_back(server, store, feed):
    store.set("job5", new_progress("job5", "extracting", percent=30.0))
    feed.get("job5")
    wait_for(lambda: feed.live)
    server.connected = False
    wait_for(lambda: not feed.live)
    assert feed._entries == {}  # what was held may miss messages now: forgotten
    with pytest.raises(redis.ConnectionError):
        feed.get("job5")  # Redis is down: the route answers 503, as without the feed
    server.connected = True
    wait_for(lambda: feed.live)
    store.set("job5", new_progress("job5", "validating", percent=100.0))
    wait_for(lambda: feed.get("job5")["status"] == "validating")


def test_the_progress_route_answers_from_the_feed_when_it_is_on(app, client, redis_client):
    app.config["PROGRESS_FEED_MAX_AGE"] = 5
    bind_redis(app, redis_client)
    feed, store = app.extensions["progress_feed"], app.extensions["progress"]
    try:
        job = uuid.uuid4().hex
        store.set(job, new_progress(job, "extracting", percent=12.0))
        assert client.get(f"/extract_status/{job}").get_json()["percent"] == 12.0
        wait_for(lambda: feed.live)
        store.set(job, new_progress(job, "extracting", percent=64.0))
        wait_for(lambda: client.get(f"/extract_status/{job}").get_json()["percent"] == 64.0)
    finally:
        feed.stop()


@pytest.fixture
def announced():
    """What committed transactions announce, in order (the app's own publisher is put back)."""
    seen: list[set[str]] = []
    previous = changes._publish
    changes.bind_publisher(lambda ids: seen.append(set(ids)))
    yield seen
    changes.bind_publisher(previous)


def test_commits_announce_the_recordings_they_changed_and_rollbacks_nothing(app, announced):
    with db.transaction() as session:
        session.add(Recording(id="REC_A", status="queued"))
    assert announced == [{"REC_A"}]
    number = jobs.queue_attempt("REC_A", "test", ("queued",))
    assert announced[-1] == {"REC_A"}
    token = db.session().scalar(select(Attempt.token).where(Attempt.number == number))
    announced.clear()
    jobs.heartbeat(token)  # an UPDATE whose WHERE matches nothing (not running): nothing changed
    assert announced == []
    jobs.record_process_group(token, 4242)  # an UPDATE: the ids come from its WHERE clause
    assert announced == [{"REC_A"}]
    announced.clear()
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.get(Recording, "REC_A").status = "failed"
        session.flush()
        raise RuntimeError("rolled back")
    assert announced == []


def test_the_recording_poll_is_answered_from_memory_until_a_commit_changes_it(
    app, client, redis_client, monkeypatch
):
    app.config["RECORDING_FEED_MAX_AGE"] = 10
    bind_redis(app, redis_client)
    feed = app.extensions["recording_feed"]
    reads = []
    monkeypatch.setattr(routes, "get_recording", lambda rid: reads.append(rid) or catalog.get_recording(rid))
    try:
        with db.transaction() as session:
            session.add(Recording(id="REC_B", status="queued"))
        assert client.get("/api/recordings/REC_B").get_json()["status"] == "queued"
        wait_for(lambda: feed.live)
        client.get("/api/recordings/REC_B")  # held from here on (read now, or held already)
        before = len(reads)
        for _ in range(20):
            assert client.get("/api/recordings/REC_B").get_json()["status"] == "queued"
        assert len(reads) == before
        with db.transaction() as session:
            session.get(Recording, "REC_B").status = "processing"
        wait_for(lambda: client.get("/api/recordings/REC_B").get_json()["status"] == "processing")
        assert client.get("/api/recordings/NOPE").status_code == 404
    finally:
        feed.stop()
