"""The lasting record: upload jobs and recordings, with their states and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .pipeline import STAGES

# Upload job states: uploaded -> extracting -> validated, or failed.
# Recording states: queued -> processing (stage k/8) -> completed, failed or cancelled; each
# run is an attempt: queued -> running -> completed, failed, cancelled or lost (worker died).
JOB_STATES = ("uploaded", "extracting", "validated", "failed")
RECORDING_STATES = ("queued", "processing", "completed", "failed", "cancelled")
ATTEMPT_FINAL_STATES = ("completed", "failed", "cancelled", "lost")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes that were stored as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class UploadJob(Base):
    """One uploaded archive on its way to becoming a recording."""

    __tablename__ = "upload_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    archive_kind: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="uploaded", index=True)
    recording_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_dict(self) -> dict:
        return {
            "job_id": self.id,
            "filename": self.filename,
            "archive_kind": self.archive_kind,
            "size_bytes": self.size_bytes,
            "status": self.status,
            "recording_id": self.recording_id,
            "error": self.error,
            "error_details": self.error_details,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "finished_at": iso(self.finished_at),
        }


def initial_stages() -> list[dict]:
    return [{"name": name, "state": "pending", "started_at": None, "finished_at": None} for name in STAGES]


class Recording(Base):
    """A validated recording stored under DATA_DIR/recordings and its pipeline progress."""

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    upload_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage_index: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stages: Mapped[list] = mapped_column(JSON, default=initial_stages)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    results_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)  # published results
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_dict(self) -> dict:
        return recording_dict(self)


class TusUpload(Base):
    """A resumable (tus) upload: its declared length, metadata, expiry and, once complete, its job."""

    __tablename__ = "tus_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    length: Mapped[int] = mapped_column(BigInteger)
    metadata_header: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)

    def expired(self, now: datetime) -> bool:
        """An unfinished upload past its expiry; finished ones never expire."""
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=UTC)
        return self.completed_at is None and expires <= now


class Attempt(Base):
    """One run of the pipeline on a recording. Its token is what the queued message carries:
    a task may only claim the attempt whose token it holds, and only while it is queued."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("recording_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(String(200), index=True)
    number: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    process_group: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_details: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    def to_dict(self) -> dict:
        return attempt_dict(self)


def recording_dict(rec) -> dict:
    """A recording as JSON-ready data; `rec` is a Recording or a row of the recordings table."""
    return {
        "recording_id": rec.id,
        "attempt": rec.attempt,
        "upload_job_id": rec.upload_job_id,
        "status": rec.status,
        "stage": rec.stage,
        "stage_index": rec.stage_index,
        "stage_count": len(STAGES),
        "stages": rec.stages,
        "size_bytes": rec.size_bytes,
        "error": rec.error,
        "error_details": rec.error_details,
        "created_at": iso(rec.created_at),
        "updated_at": iso(rec.updated_at),
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
        "results_available": rec.results_attempt is not None,
        "results_attempt": rec.results_attempt,
    }


def attempt_dict(attempt) -> dict:
    """An attempt as JSON-ready data; `attempt` is an Attempt or anything with its columns."""
    return {
        "number": attempt.number,
        "status": attempt.status,
        "reason": attempt.reason,
        "worker": attempt.worker,
        "queued_at": iso(attempt.queued_at),
        "started_at": iso(attempt.started_at),
        "heartbeat_at": iso(attempt.heartbeat_at),
        "finished_at": iso(attempt.finished_at),
        "error": attempt.error,
        "exit_code": (attempt.error_details or {}).get("exit_code"),
        "signal": (attempt.error_details or {}).get("signal"),
        "stage": (attempt.error_details or {}).get("stage"),
    }
