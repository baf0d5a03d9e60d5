"""What each web process holds of the polled data, kept current by messages the writers publish.

The upload page polls `/extract_status/<job>` three times a second, the recording page polls
`/api/recordings/<id>`. Answering each poll with a Redis or database round trip made a poll cost
several times a trivial request: the thread blocks on the socket, then waits for the GIL behind
its worker's other threads. Instead, each web process subscribes once to a channel on which
every writer announces what it changed, and answers polls from what it already holds.

What is held is trusted only while the subscription is up: when it is confirmed, and whenever
it drops, everything held is forgotten, and until it is back every poll reads the source as
before. An entry is also read again once it has gone `max_age` seconds without news, which
bounds how stale an answer can be if the connection dies without an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .progress import ProgressStore

log = logging.getLogger(__name__)
PING_SECONDS = 5.0
RETRY_SECONDS = 1.0
ALL = "*"  # a recording-changes message naming every recording


class ChannelFeed:
    """Entries by key, valid while the subscription to `channel` is up; subclasses read messages."""

    def __init__(self, redis_client, channel: str, max_age: float, max_entries: int, clock):
        self.redis = redis_client
        self.channel = channel
        self.max_age = max_age
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # key → (seen at, value)
        self._lock = threading.Lock()
        self._live = False
        self._generation = 0  # subscriptions confirmed so far
        self._pid: int | None = None
        self._stop = threading.Event()

    @property
    def live(self) -> bool:
        """The subscription is confirmed and has not dropped since."""
        return self._live

    def stop(self) -> None:
        self._stop.set()

    def _held(self, key: str) -> tuple[dict | None, int | None]:
        """(the held value or None, the generation a read from the source may be kept under)."""
        self._ensure_listening()
        generation = self._generation if self._live else None
        if generation is None:
            return None, None
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and self.clock() - entry[0] < self.max_age:
            return entry[1], generation
        return None, generation

    def _put(self, key: str, value: dict) -> None:
        """Hold `value` (the caller holds the lock and has checked the generation)."""
        self._entries[key] = (self.clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _forget_all(self, live: bool) -> None:
        with self._lock:
            self._entries.clear()
            self._live = live
            if live:
                self._generation += 1

    def _ensure_listening(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:  # first poll in this process (after Gunicorn forked it): start listening
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._entries.clear()
            self._live = False
        threading.Thread(target=self._listen, name=f"feed {self.channel}", daemon=True).start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(self.channel)
                pinged = self.clock()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "subscribe":
                        self._forget_all(live=True)  # anything held before may have missed news
                    elif message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
                    if self.clock() - pinged >= PING_SECONDS:
                        pubsub.ping()  # a dead connection raises here, or on the next read
                        pinged = self.clock()
            except Exception as exc:
                log.warning(
                    "feed %s interrupted (%s); polls read the source until it is back", self.channel, exc
                )
            finally:
                self._forget_all(live=False)
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._stop.wait(RETRY_SECONDS)

    def _on_message(self, data: bytes) -> None:
        raise NotImplementedError


class ProgressFeed(ChannelFeed):
    """Progress records: each message is a whole record, as `ProgressStore.set` wrote it."""

    def __init__(self, store: ProgressStore, max_age: float, max_entries: int = 10_000, clock=time.monotonic):
        super().__init__(store.redis, store.channel, max_age, max_entries, clock)
        self.store = store

    def get(self, job_id: str) -> dict | None:
        """The job's progress record (None when Redis has none); raises when Redis is down."""
        held, generation = self._held(job_id)
        if held is not None:
            return held
        record = self.store.get(job_id)
        # Held only if the subscription was up before the read began: every later write then
        # reaches this process as a message.
        if record is not None and generation is not None:
            self._remember(record, generation)
        return record

    def _remember(self, record: dict, generation: int | None = None) -> None:
        job_id = record.get("job_id")
        if not isinstance(job_id, str):
            return
        with self._lock:
            if not self._live or (generation is not None and generation != self._generation):
                return
            held = self._entries.get(job_id)
            if held is not None and held[1].get("updated_at", 0) > record.get("updated_at", 0):
                return  # a newer record arrived while this one was being read
            self._put(job_id, record)

    def _on_message(self, data: bytes) -> None:
        try:
            record = json.loads(data)
        except (TypeError, ValueError):
            return
        if isinstance(record, dict):
            self._remember(record)


class RecordingFeed(ChannelFeed):
    """Recordings as served: each message names recordings that changed (see changes.py), and
    what is held of them is dropped; they are read from the database at their next poll."""

    def __init__(
        self, redis_client, channel: str, max_age: float, max_entries: int = 10_000, clock=time.monotonic
    ):
        super().__init__(redis_client, channel, max_age, max_entries, clock)
        self._news = 0  # messages handled so far

    def get(self, rid: str, load: Callable[[str], dict | None]) -> dict | None:
        """The recording as `load(rid)` gives it, or as held when nothing changed it since."""
        held, generation = self._held(rid)
        if held is not None:
            return held
        news = self._news
        recording = load(rid)
        if recording is not None and generation is not None:
            with self._lock:
                # Kept only if no change was announced while it was read: the read may predate it.
                if self._live and generation == self._generation and news == self._news:
                    self._put(rid, recording)
        return recording

    def _on_message(self, data: bytes) -> None:
        names = data.decode(errors="replace").split() if isinstance(data, bytes) else str(data).split()
        with self._lock:
            self._news += 1
            if ALL in names:
                self._entries.clear()
            for rid in names:
                self._entries.pop(rid, None)
