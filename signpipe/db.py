"""Database wiring: one engine and session factory per process, shared by web and workers."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from .models import Base


def normalize_url(url: str) -> str:
    """Point plain PostgreSQL URLs at the psycopg 3 driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the web workers read while a Celery worker writes; the timeout queues writers.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Holds the engine and a session factory; `init()` binds them to a URL."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None

    def init(self, url: str, create_schema: bool = True, **engine_options) -> None:
        url = normalize_url(url)
        if url.startswith("sqlite"):
            engine_options.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, pool_pre_ping=True, **engine_options)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        if self.engine is not None:
            self.engine.dispose()
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        if create_schema:
            self.create_schema()

    def create_schema(self) -> None:
        """Create missing tables; several processes may race at start-up, so retry once."""
        for attempt in range(3):
            try:
                Base.metadata.create_all(self.engine)
                return
            except (IntegrityError, ProgrammingError, OperationalError):
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def session(self) -> Session:
        """A new session; use it as a context manager (`with db.session() as s:`)."""
        if self.sessions is None:
            raise RuntimeError("database is not configured: call create_app() first")
        return self.sessions()

    def transaction(self):
        """A session that commits when the block ends without error (`with db.transaction() as s:`)."""
        if self.sessions is None:
            raise RuntimeError("database is not configured: call create_app() first")
        return self.sessions.begin()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


db = Database()
