"""Process-wide clients bound by the app factory: Redis, the progress store and Celery."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready
from flask import Flask, current_app
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from . import changes
from .db import db
from .feeds import ProgressFeed, RecordingFeed
from .progress import ProgressStore, bind_store

# Pub/sub channels, after BROKER_KEY_PREFIX.
PROGRESS_CHANNEL = "extraction-progress"
RECORDING_CHANNEL = "recording-changes"

INGEST_TASK = "signpipe.ingest"
PIPELINE_TASK = "signpipe.run_pipeline"
SWEEP_TASK = "signpipe.sweep_uploads"
REAPER_TASK = "signpipe.reap"


def init_redis(app: Flask) -> None:
    # Few, short retries: a page or /healthz must answer quickly when Redis is down.
    client = redis.Redis.from_url(
        app.config["REDIS_URL"],
        socket_timeout=10,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
    )
    # Announcing a commit must never hold up the commit's caller when Redis is slow or gone.
    announcer = redis.Redis.from_url(
        app.config["REDIS_URL"], socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    bind_redis(app, client, announcer)


class ChangeAnnouncer:
    """Publishes the recording ids a commit changed; after a failure, stays quiet for a few
    seconds (the subscribers, on the same Redis, have dropped what they held meanwhile)."""

    QUIET_SECONDS = 5.0

    def __init__(self, client: redis.Redis, channel: str):
        self.client = client
        self.channel = channel
        self._quiet_until = 0.0

    def __call__(self, ids: set[str]) -> None:
        if time.monotonic() < self._quiet_until:
            return
        try:
            self.client.publish(self.channel, " ".join(sorted(ids)))
        except Exception:
            self._quiet_until = time.monotonic() + self.QUIET_SECONDS
            raise


def bind_redis(app: Flask, client: redis.Redis, announcer: redis.Redis | None = None) -> None:
    """Use this client for health checks, the progress store and the feeds (tests pass a fake one)."""
    app.extensions["redis"] = client
    channel = app.config.get("BROKER_KEY_PREFIX", "") + PROGRESS_CHANNEL
    store = ProgressStore(client, ttl=app.config["PROGRESS_TTL_SECONDS"], channel=channel)
    app.extensions["progress"] = store
    bind_store(store)
    recordings = app.config.get("BROKER_KEY_PREFIX", "") + RECORDING_CHANNEL
    changes.bind_publisher(ChangeAnnouncer(announcer or client, recordings))
    for name in ("progress_feed", "recording_feed"):
        if app.extensions.get(name) is not None:
            app.extensions[name].stop()
    max_age = app.config["PROGRESS_FEED_MAX_AGE"]
    app.extensions["progress_feed"] = ProgressFeed(store, max_age) if max_age > 0 else None
    max_age = app.config["RECORDING_FEED_MAX_AGE"]
    app.extensions["recording_feed"] = RecordingFeed(client, recordings, max_age) if max_age > 0 else None


def celery_settings(config: dict) -> dict:
    """Celery configuration derived from the app's settings."""
    visibility = int(config.get("BROKER_VISIBILITY_TIMEOUT") or 0) or int(config["PIPELINE_TIMEOUT"]) + 3600
    return {
        "broker_url": config.get("CELERY_BROKER_URL") or config["REDIS_URL"],
        "task_ignore_result": True,  # the database holds every outcome
        "task_routes": {
            INGEST_TASK: {"queue": "ingest"},
            PIPELINE_TASK: {"queue": "pipeline"},
            SWEEP_TASK: {"queue": "ingest"},
            REAPER_TASK: {"queue": "ingest"},
        },
        # Celery beat (a Procfile process) queues the sweep of abandoned resumable uploads.
        "beat_schedule": {
            "sweep-abandoned-uploads": {
                "task": SWEEP_TASK,
                "schedule": float(config["UPLOAD_SWEEP_SECONDS"]),
            },
            "reap-lost-and-stuck-jobs": {"task": REAPER_TASK, "schedule": float(config["REAPER_SECONDS"])},
        },
        "beat_schedule_filename": str(Path(config["DATA_DIR"]) / "celerybeat-schedule"),
        "task_default_queue": "ingest",
        "task_acks_late": True,  # a job whose worker dies is redelivered, not lost
        "task_reject_on_worker_lost": True,  # ...also when the pool process itself is killed
        "worker_prefetch_multiplier": 1,  # long jobs: never hold a second one hostage
        # Limits below the visibility timeout, so a run ends before Redis would redeliver it.
        "task_annotations": {
            PIPELINE_TASK: {
                "soft_time_limit": int(config["PIPELINE_TIMEOUT"]) + 300,
                "time_limit": int(config["PIPELINE_TIMEOUT"]) + 600,
            }
        },
        "broker_connection_max_retries": None,  # a worker waits for Redis however long it is away
        "result_expires": 3600,  # no results are stored; bounds any that a tool asks for
        "worker_send_task_events": True,  # for Flower and `celery events`
        "task_send_sent_event": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # Look for messages past their visibility timeout every few seconds, not minutes.
            "unacked_restore_interval": max(1, min(10, visibility // 3)),
            "unacked_restore_throttle": 1,
            "global_keyprefix": config.get("BROKER_KEY_PREFIX", ""),
        },
        "broker_connection_retry_on_startup": True,
        "task_always_eager": config.get("CELERY_ALWAYS_EAGER", False),
        "worker_hijack_root_logger": False,
    }


def init_celery(app: Flask) -> Celery:
    """Celery bound to this app: every task body runs inside an app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    # Pool children are forked from the worker that created the engine: pooled database
    # connections must not be shared across processes, so each child starts with its own.
    worker_process_init.connect(_fresh_db_connections, weak=False)
    worker_ready.connect(_recover_after_crash(app), weak=False)
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_settings(app.config))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _fresh_db_connections(**_kwargs) -> None:
    if db.engine is not None:
        db.engine.dispose(close=False)


def _recover_after_crash(app: Flask):
    """At a worker's start, what it ran before a crash is marked lost and queued again."""

    def recover(sender=None, **_kwargs) -> None:
        from .reaper import recover_worker

        hostname = getattr(sender, "hostname", None)
        if hostname:
            with app.app_context():
                recover_worker(hostname)

    return recover


def progress_store() -> ProgressStore:
    return current_app.extensions["progress"]


def send_task(name: str, *args) -> None:
    """Queue a task by name; the route table picks its queue."""
    current_app.extensions["celery"].send_task(name, args=list(args))
