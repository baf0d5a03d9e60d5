"""Resumable uploads over tus: the upload's row, its lock, and the hand-over to the ingest path.

A per-upload Redis lock keeps two PATCHes (from any web node) from writing at once; the row's
job_id, set once under that lock and guarded by a conditional UPDATE, gives exactly one job.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import redis
from flask import current_app
from sqlalchemy import select, update

from .db import db
from .errors import ServiceUnavailable, UploadRejected
from .ingest import record_refused_upload, register_upload
from .models import TusUpload, utcnow
from .storage import DataLayout
from .tus import DataFile, TusError, parse_checksum, parse_metadata
from .uploads import accept_archive, archive_kind_of_name

log = logging.getLogger(__name__)
LOCK_SECONDS = 60


def uploads_dir() -> Path:
    return DataLayout(Path(current_app.config["DATA_DIR"])).uploads


def data_file(uid: str) -> DataFile:
    return DataFile(uploads_dir() / "tus" / f"{uid}.part")


def expiry_from(now: datetime) -> datetime:
    return now + timedelta(seconds=current_app.config["UPLOAD_EXPIRY_SECONDS"])


def create_upload(length: int, metadata_header: str | None) -> TusUpload:
    """Register a new upload after checking its size and file name; its data file starts empty."""
    if length > current_app.config["MAX_UPLOAD_BYTES"]:
        raise TusError(f"Upload-Length is over the {current_app.config['MAX_UPLOAD_BYTES']} byte limit", 413)
    filename = parse_metadata(metadata_header).get("filename")
    if not filename:
        raise TusError("Upload-Metadata must carry the file name (key 'filename')", 400)
    archive_kind_of_name(filename)
    uid = uuid.uuid4().hex
    data_file(uid).create()
    upload = TusUpload(
        id=uid,
        length=length,
        metadata_header=metadata_header,
        filename=filename,
        expires_at=expiry_from(utcnow()),
    )
    with db.transaction() as session:
        session.add(upload)
    return upload


def get_upload(uid: str) -> TusUpload:
    """The upload's row; raises TusError 404 when unknown or terminated, 410 when expired."""
    with db.session() as session:
        upload = session.get(TusUpload, uid) if uid.isalnum() else None
    if upload is None:
        raise TusError("Unknown upload", 404)
    if upload.expired(utcnow()):
        raise TusError("This upload has expired; start it again", 410)
    return upload


def current_offset(upload: TusUpload) -> int:
    if upload.completed_at is not None:
        return upload.length
    data = data_file(upload.id)
    if not data.exists():
        raise TusError("This upload's data is gone; start it again", 410)
    return data.offset()


@contextmanager
def upload_lock(uid: str):
    """Hold the upload's lock or answer 423; the lock is refreshed while the body streams."""
    client: redis.Redis = current_app.extensions["redis"]
    lock = client.lock(f"tus-lock:{uid}", timeout=LOCK_SECONDS, blocking=False)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise ServiceUnavailable("The lock service (Redis) is unavailable") from exc
    if not acquired:
        raise TusError("Another request is writing to this upload", 423)
    try:
        yield lock
    finally:
        try:
            lock.release()
        except redis.RedisError:
            log.warning("lock of upload %s expired before release", uid)


def write_chunk(
    uid: str, offset: int, stream: BinaryIO, content_length: int | None, checksum_header: str | None
) -> tuple[int, TusUpload]:
    """Apply one PATCH: returns the new offset and the (possibly completed) upload."""
    upload = get_upload(uid)
    checksum = parse_checksum(checksum_header)
    if upload.completed_at is not None:
        return _repeat_of_final_patch(upload, offset, content_length)
    with upload_lock(uid) as lock:
        current = current_offset(upload)
        if offset != current:
            raise TusError(f"Upload-Offset {offset} does not match the upload's offset {current}", 409)
        room = upload.length - current
        if content_length is not None and content_length > room:
            raise TusError("The body goes past Upload-Length", 413)
        refresh = _lock_refresher(lock)
        new_offset = data_file(uid).append(stream, current, room, checksum, refresh)
        upload = _touch(uid)
        if new_offset == upload.length:
            upload = _complete(upload)
    return new_offset, upload


def _repeat_of_final_patch(upload: TusUpload, offset: int, content_length: int | None):
    if offset != upload.length:
        raise TusError(f"Upload-Offset {offset} does not match the upload's offset {upload.length}", 409)
    if content_length:
        raise TusError("The body goes past Upload-Length", 413)
    return upload.length, upload


def _lock_refresher(lock):
    state = {"last": 0}

    def refresh(received: int) -> None:
        if received - state["last"] >= 64 * 1024 * 1024:  # every 64 MiB, well within the TTL
            state["last"] = received
            lock.extend(LOCK_SECONDS, replace_ttl=True)

    return refresh


def _touch(uid: str) -> TusUpload:
    with db.transaction() as session:
        upload = session.get(TusUpload, uid)
        upload.expires_at = expiry_from(utcnow())
        return upload


def _complete(upload: TusUpload) -> TusUpload:
    """The last byte landed: claim the one job id, then enter the same path as POST /upload."""
    job_id = uuid.uuid4().hex
    with db.transaction() as session:
        claimed = session.execute(
            update(TusUpload)
            .where(TusUpload.id == upload.id, TusUpload.job_id.is_(None))
            .values(job_id=job_id, completed_at=utcnow())
        ).rowcount
        upload = session.get(TusUpload, upload.id)
    if claimed != 1:
        return upload
    data = data_file(upload.id)
    try:
        received = accept_archive(
            data.path, upload.filename, upload.length, data.head(), uploads_dir(), job_id
        )
    except UploadRejected as exc:
        data.delete()
        record_refused_upload(job_id, upload.filename, upload.length, exc)
        return upload
    register_upload(job_id, received)
    return upload


def terminate(uid: str) -> None:
    """DELETE: the bytes and the row are gone; a finished upload's job is not touched."""
    get_upload(uid)
    with upload_lock(uid):
        data_file(uid).delete()
        with db.transaction() as session:
            row = session.get(TusUpload, uid)
            if row is not None:
                session.delete(row)


def sweep_expired() -> int:
    """Delete unfinished uploads past their expiry, and data files no row knows of."""
    now = utcnow()
    with db.transaction() as session:
        rows = session.scalars(select(TusUpload).where(TusUpload.completed_at.is_(None))).all()
        expired = [row for row in rows if row.expired(now)]
        for row in expired:
            session.delete(row)
        known = {row.id for row in rows if row not in expired}
    for row in expired:
        data_file(row.id).delete()
    folder = uploads_dir() / "tus"
    cutoff = (now - timedelta(seconds=current_app.config["UPLOAD_EXPIRY_SECONDS"])).timestamp()
    orphans = [p for p in folder.glob("*.part") if p.stem not in known and p.stat().st_mtime < cutoff]
    for path in orphans:
        path.unlink(missing_ok=True)
    if expired or orphans:
        log.info("swept %d expired uploads and %d orphaned files", len(expired), len(orphans))
    return len(expired) + len(orphans)
