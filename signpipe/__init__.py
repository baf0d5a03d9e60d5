"""Recording-processing service for traffic-sign inventory surveys."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as settings
from .db import db
from .extensions import init_celery, init_redis

PROJECT_ROOT = settings.PROJECT_ROOT


def create_app(test_config: dict | None = None) -> Flask:
    """Build the web app (and its Celery app): a table of contents of the wiring."""
    app = Flask(
        __name__,
        root_path=str(PROJECT_ROOT),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    load_config(app, test_config)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    trust_proxies(app)
    return app


def load_config(app: Flask, test_config: dict | None) -> None:
    app.config.from_object(settings.Config)
    if test_config:
        app.config.update(test_config)
    settings.finalize(app.config)
    logging.basicConfig(level=app.config["LOG_LEVEL"])


def register_extensions(app: Flask) -> None:
    db.init(app.config["DATABASE_URL"])
    init_redis(app)
    init_celery(app)


def register_blueprints(app: Flask) -> None:
    from .web import actions, health, logs, pages, recordings, tus_routes, upload_routes

    for module in (pages, upload_routes, tus_routes, recordings, actions, logs, health):
        app.register_blueprint(module.bp)


def register_errorhandlers(app: Flask) -> None:
    from .web import errors

    errors.register(app)


def trust_proxies(app: Flask) -> None:
    """Behind nginx, take scheme, host and client address from its X-Forwarded-* headers."""
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_prefix=count)
