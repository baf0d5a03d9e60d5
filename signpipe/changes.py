"""Announce which recordings a committed transaction changed, for the web processes' RecordingFeed.

Every write to a recording or its attempts goes through a session: objects added, changed or
deleted (seen at flush), or an ORM UPDATE / DELETE / INSERT statement (seen before it runs: its
WHERE clause is first run as a SELECT of the recording ids it can touch; without one, every
recording counts). The ids are collected on the session and published once the transaction
commits; a rollback drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import chain

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from .feeds import ALL
from .models import Attempt, Recording

log = logging.getLogger(__name__)
KEY = "signpipe.changed_recordings"
_publish: Callable[[set[str]], None] | None = None
_ID_COLUMNS = {Recording.__table__.name: Recording.id, Attempt.__table__.name: Attempt.recording_id}


def bind_publisher(publish: Callable[[set[str]], None] | None) -> None:
    """Where committed changes go (the app factory binds a Redis publish); None: nowhere."""
    global _publish
    _publish = publish


def _changed(session: Session) -> set[str]:
    return session.info.setdefault(KEY, set())


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Recording):
            _changed(session).add(obj.id)
        elif isinstance(obj, Attempt):
            _changed(session).add(obj.recording_id)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    column = _ID_COLUMNS.get(getattr(table, "name", None))
    if column is None:
        return
    where = getattr(state.statement, "whereclause", None)
    if state.is_insert or where is None:
        _changed(state.session).add(ALL)
        return
    ids = state.session.execute(select(column).where(where)).scalars()
    _changed(state.session).update(ids)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    ids = session.info.pop(KEY, None)
    if ids and _publish is not None:
        try:
            _publish(ids)
        except Exception as exc:  # the web processes re-read after their max age
            log.warning("recording changes not announced (%s): %s", exc, sorted(ids)[:5])


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(KEY, None)
