"""Progress records held in each web process, kept current by the messages the writers publish.

Every open upload page polls `/extract_status/<job>` three times a second. Answering each poll
with a Redis round trip made the poll cost about twice a trivial request: the thread blocks on
the socket and then waits for the GIL behind its siblings. Instead, each web process subscribes
once to the channel on which `ProgressStore.set` publishes every record it writes, and answers
polls from memory.

What is held is only trusted while the subscription is up: when it is confirmed, and whenever
it drops, everything held is forgotten, and until it is back every poll reads Redis as before.
A record is also re-read once it has gone `max_age` seconds without a message, which bounds how
stale an answer can be if the connection dies without an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict

from .progress import ProgressStore

log = logging.getLogger(__name__)
PING_SECONDS = 5.0
RETRY_SECONDS = 1.0


class ProgressFeed:
    def __init__(self, store: ProgressStore, max_age: float, max_entries: int = 10_000, clock=time.monotonic):
        self.store = store
        self.max_age = max_age
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # job → (seen at, record)
        self._lock = threading.Lock()
        self._live = False
        self._generation = 0  # subscriptions confirmed so far
        self._pid: int | None = None
        self._stop = threading.Event()

    @property
    def live(self) -> bool:
        """The subscription is confirmed and has not dropped since."""
        return self._live

    def get(self, job_id: str) -> dict | None:
        """The job's progress record (None when Redis has none); raises when Redis is down."""
        self._ensure_listening()
        generation = self._generation if self._live else None
        if generation is not None:
            with self._lock:
                entry = self._entries.get(job_id)
            if entry is not None and self.clock() - entry[0] < self.max_age:
                return entry[1]
        record = self.store.get(job_id)
        # Held only if the subscription was up before the read began: every later write then
        # reaches this process as a message.
        if record is not None and generation is not None:
            self._remember(record, generation)
        return record

    def stop(self) -> None:
        self._stop.set()

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
            self._entries[job_id] = (self.clock(), record)
            self._entries.move_to_end(job_id)
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
        threading.Thread(target=self._listen, name="progress-feed", daemon=True).start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self.store.redis.pubsub()
            try:
                pubsub.subscribe(self.store.channel)
                pinged = self.clock()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
                    if self.clock() - pinged >= PING_SECONDS:
                        pubsub.ping()  # a dead connection raises here, or on the next read
                        pinged = self.clock()
            except Exception as exc:
                log.warning("progress feed interrupted (%s); polls read Redis until it is back", exc)
            finally:
                self._forget_all(live=False)
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._stop.wait(RETRY_SECONDS)

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._forget_all(live=True)  # anything held before may have missed messages
        elif kind == "message":
            try:
                record = json.loads(message["data"])
            except (TypeError, ValueError):
                return
            if isinstance(record, dict):
                self._remember(record)
