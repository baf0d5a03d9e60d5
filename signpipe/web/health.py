"""Health: small checks composed into one answer. Each returns what it saw, or raises."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .. import monitor
from ..db import db

bp = Blueprint("health", __name__)


class Unhealthy(Exception):
    """A check saw something wrong; `info` is still reported."""

    def __init__(self, message: str, info: dict):
        super().__init__(message)
        self.info = info


def check_redis() -> dict:
    current_app.extensions["redis"].ping()
    return {}


def check_database() -> dict:
    db.ping()
    return {}


def check_workers() -> dict:
    workers = monitor.workers_by_queue()
    missing = [queue for queue in monitor.QUEUES if not workers.get(queue)]
    if missing:
        raise Unhealthy(f"no worker consumes {', '.join(missing)}", {"workers": workers})
    return {"workers": workers}


def check_queues() -> dict:
    return {"lengths": monitor.queue_lengths(), **monitor.job_ages()}


def check_heartbeats() -> dict:
    ages = monitor.job_ages()
    if ages["stale_heartbeats"]:
        raise Unhealthy(f"{ages['stale_heartbeats']} running job(s) without a heartbeat", ages)
    return ages


def check_disk() -> dict:
    disk = monitor.free_disk()
    if disk["free_bytes"] < current_app.config["MIN_FREE_BYTES"]:
        raise Unhealthy("DATA_DIR is nearly full", disk)
    return disk


CHECKS = {
    "redis": check_redis,
    "database": check_database,
    "workers": check_workers,
    "queues": check_queues,
    "heartbeats": check_heartbeats,
    "disk": check_disk,
}


def run_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = {"ok": True, **check()}
        except Unhealthy as exc:
            results[name] = {"ok": False, "error": str(exc), **exc.info}
        except Exception as exc:  # any failure of a dependency is a health finding
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return results


@bp.get("/livez")
def livez():
    """The web process answers; nothing else is checked (a load balancer's liveness probe)."""
    return jsonify(status="ok")


@bp.get("/healthz")
def healthz():
    """200 when everything answers and nothing is stuck; 503 naming what is wrong."""
    results = run_checks()
    healthy = all(r["ok"] for r in results.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    if not healthy:
        body["error"] = "Down: " + ", ".join(n for n, r in results.items() if not r["ok"])
    return jsonify(body), 200 if healthy else 503
