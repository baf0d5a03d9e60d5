"""Database wiring: one engine and session factory per process, shared by web and workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
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
        # A server connection can die under the pool (restart, failover): ping it before use.
        # A SQLite file has no connection to lose, so it skips that statement per request.
        engine_options.setdefault("pool_pre_ping", not url.startswith("sqlite"))
        engine = create_engine(url, **engine_options)
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

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for a read that is one statement: in autocommit mode, so it costs no
        BEGIN and no ROLLBACK round trip (the hot path of pollers)."""
        if self.engine is None:
            raise RuntimeError("database is not configured: call create_app() first")
        with self.engine.connect() as conn:
            if conn.dialect.name != "sqlite":  # pysqlite begins no transaction for a SELECT anyway
                conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


db = Database()
