"""Shared fixtures: an app on a temp DATA_DIR, fake Redis, and both SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import fakeredis
import pytest
from sqlalchemy import create_engine, text

from signpipe import create_app
from signpipe.db import normalize_url
from signpipe.extensions import bind_redis

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        engine = create_engine(normalize_url(POSTGRES_URL), connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_ok() -> bool:
    available = _postgres_available()
    if not available and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}; CI must test against it")
    return available


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, postgres_ok):
    """A fresh database per test: a SQLite file, or a throw-away PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not postgres_ok:
        pytest.skip("PostgreSQL not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    from signpipe.db import db

    if db.engine is not None:
        db.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


@pytest.fixture
def app(tmp_path, database_url, redis_client):
    app = create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": "memory://",
            "PIPELINE_STAGE_SECONDS": 0,
            "MAX_UPLOAD_BYTES": 50 * 1024 * 1024,
            "PROGRESS_FEED_MAX_AGE": 0,  # tests/test_feeds.py covers the feeds
            "RECORDING_FEED_MAX_AGE": 0,
        }
    )
    bind_redis(app, redis_client)
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()
