"""The Redis progress store: documented key, fields and TTL; throttled writes."""

from __future__ import annotations

import json

import pytest
from factories import PROGRESS_FIELDS

from signpipe import progress
from signpipe.progress import ProgressStore, ThrottledReporter, new_progress


@pytest.fixture
def store(redis_client):
    store = ProgressStore(redis_client, ttl=3600)
    progress.bind_store(store)
    return store


def test_helpers_write_the_documented_key_with_a_ttl(store, redis_client):
    progress.set_extraction_progress("job1", new_progress("job1"))
    raw = json.loads(redis_client.get("extraction:job1"))
    assert raw.keys() >= PROGRESS_FIELDS
    assert 3500 < redis_client.ttl("extraction:job1") <= 3600
    assert progress.get_extraction_progress("job1")["status"] == "queued"
    assert progress.get_extraction_progress("unknown") is None


def test_every_write_reapplies_the_ttl(store, redis_client):
    store.set("job1", new_progress("job1"))
    redis_client.expire("extraction:job1", 5)
    store.set("job1", new_progress("job1", status="running"))
    assert redis_client.ttl("extraction:job1") > 3500


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_reporter_writes_every_ten_files_or_quarter_second(store):
    writes = []
    store.set = lambda job_id, p: writes.append(dict(p))
    clock = FakeClock()
    reporter = ThrottledReporter(store, "job1", new_progress("job1"), clock=clock)
    for files in range(1, 10):
        reporter(files, files * 100, files / 100, 100)
    assert writes == []
    reporter(10, 1000, 0.10, 100)
    assert writes[-1]["extracted_files"] == 10
    clock.now = 0.3  # one big file: no new file, but time passed
    reporter(10, 5000, 0.5, 100)
    assert len(writes) == 2 and writes[-1]["percent"] == 50.0


def test_percent_follows_bytes_through_a_single_big_file(store):
    writes = []
    store.set = lambda job_id, p: writes.append(dict(p))
    clock = FakeClock()
    reporter = ThrottledReporter(store, "job1", new_progress("job1"), clock=clock)
    for step in range(1, 11):
        clock.now = step * 0.3
        reporter(0, step * 400, step / 10, 3)
    assert [w["percent"] for w in writes] == [10.0 * i for i in range(1, 11)]
