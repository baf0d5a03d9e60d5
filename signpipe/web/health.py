"""Health: small checks composed into one answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..db import db

bp = Blueprint("health", __name__)


def check_redis() -> None:
    current_app.extensions["redis"].ping()


def check_database() -> None:
    db.ping()


CHECKS = {"redis": check_redis, "database": check_database}


@bp.get("/healthz")
def healthz():
    """200 when every backing service answers, 503 naming what is down."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = {"ok": True}
        except Exception as exc:  # any failure of a dependency is a health finding
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    healthy = all(r["ok"] for r in results.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    if not healthy:
        body["error"] = "Down: " + ", ".join(n for n, r in results.items() if not r["ok"])
    return jsonify(body), 200 if healthy else 503
