"""Settings: one place, read from the environment (and `.env`) by web and workers alike."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

load_dotenv()

GIB = 1024**3
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


class Config:
    """Values come from the environment at import time; tests pass overrides to create_app()."""

    SECRET_KEY = os.environ.get("SECRET_KEY") or None
    PORT = _int("PORT", 5000)
    DATA_DIR = os.path.abspath(os.environ.get("DATA_DIR") or "./data")
    # Unset means `make run` starts an embedded Redis on EMBEDDED_REDIS_PORT and exports its URL.
    REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    DATABASE_URL = os.environ.get("DATABASE_URL") or ""
    # Prefix of every key the Celery broker writes, so several deployments can share one Redis.
    BROKER_KEY_PREFIX = os.environ.get("BROKER_KEY_PREFIX", "")
    MAX_UPLOAD_BYTES = _int("MAX_UPLOAD_BYTES", 8 * GIB)
    MAX_EXTRACT_BYTES = _int("MAX_EXTRACT_BYTES", 0)  # 0 = 1.25 x MAX_UPLOAD_BYTES
    MAX_ARCHIVE_ENTRIES = _int("MAX_ARCHIVE_ENTRIES", 5000)
    PIPELINE_COMMAND = os.environ.get("PIPELINE_COMMAND") or "./simulate_pipeline.sh"
    PIPELINE_STAGE_SECONDS = _float("PIPELINE_STAGE_SECONDS", 5)
    PIPELINE_TIMEOUT = _int("PIPELINE_TIMEOUT", 6 * 3600)
    PIPELINE_MAX_ATTEMPTS = _int("PIPELINE_MAX_ATTEMPTS", 3)
    # Redis redelivers a message unacknowledged this long; 0 = PIPELINE_TIMEOUT + 1 h, so a run
    # always ends (or is killed) before its message could come back.
    BROKER_VISIBILITY_TIMEOUT = _int("BROKER_VISIBILITY_TIMEOUT", 0)
    # A running attempt writes a heartbeat this often; one silent for HEARTBEAT_TIMEOUT is lost.
    HEARTBEAT_SECONDS = _float("HEARTBEAT_SECONDS", 15)
    HEARTBEAT_TIMEOUT = _float("HEARTBEAT_TIMEOUT", 120)
    # How often Celery beat queues the reaper, which recovers lost and stuck jobs.
    REAPER_SECONDS = _float("REAPER_SECONDS", 30)
    # A job queued this long whose message is in neither the queue nor the unacked set is re-sent.
    RESEND_AFTER_SECONDS = _float("RESEND_AFTER_SECONDS", 60)
    # An extraction whose progress has not moved for this long lost its worker.
    EXTRACT_STALL_SECONDS = _float("EXTRACT_STALL_SECONDS", 300)
    # /healthz reports trouble when DATA_DIR has less free space than this (default 8 GiB).
    MIN_FREE_BYTES = _int("MIN_FREE_BYTES", 8 * GIB)
    # Uploads and temp folders no live job owns are deleted after this long.
    ORPHAN_AGE_SECONDS = _float("ORPHAN_AGE_SECONDS", 24 * 3600)
    PROGRESS_TTL_SECONDS = 3600
    # Each web process answers progress polls from the records the writers publish, re-reading
    # Redis for a record that has had no message for this long. 0 reads Redis on every poll.
    PROGRESS_FEED_MAX_AGE = _float("PROGRESS_FEED_MAX_AGE", 5)
    # The same for recording polls (/api/recordings/<id>), dropped when a commit announces a change.
    RECORDING_FEED_MAX_AGE = _float("RECORDING_FEED_MAX_AGE", 10)
    # The status page's count per status is reused for this long by each web process: counting
    # scans every recording, a page of rows does not. 0 counts on every request.
    STATUS_COUNTS_MAX_AGE = _float("STATUS_COUNTS_MAX_AGE", 2)
    # Unfinished resumable uploads answer 410 after this long without a PATCH, then are swept.
    UPLOAD_EXPIRY_SECONDS = _int("UPLOAD_EXPIRY_SECONDS", 24 * 3600)
    UPLOAD_SWEEP_SECONDS = _int("UPLOAD_SWEEP_SECONDS", 900)
    ENV = os.environ.get("APP_ENV", "development")
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"
    # Reverse proxies in front of Gunicorn whose X-Forwarded-* headers are trusted (1 behind nginx).
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)


def finalize(config: dict) -> None:
    """Derive dependent settings and fail fast on what production must not run without."""
    if not config.get("SECRET_KEY"):
        if config.get("ENV") == "production":
            raise RuntimeError("SECRET_KEY must be set when APP_ENV=production")
        config["SECRET_KEY"] = "dev-only-not-secret"
    if not config.get("MAX_EXTRACT_BYTES"):
        config["MAX_EXTRACT_BYTES"] = int(config["MAX_UPLOAD_BYTES"] * 1.25)
    command = config["PIPELINE_COMMAND"]
    if command.startswith("./"):  # relative to the project, wherever the process was started
        config["PIPELINE_COMMAND"] = str(PROJECT_ROOT / command[2:])
    data_dir = Path(config["DATA_DIR"]).resolve()
    config["DATA_DIR"] = str(data_dir)
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = f"sqlite:///{data_dir / 'signpipe.db'}"
    for sub in ("uploads", "temp_extracts", "recordings"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
