"""Celery entry point: `celery -A celery_app worker -Q ingest` (or `-Q pipeline`)."""

from signpipe import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import tasks  # noqa: E402,F401  (registers the task functions with this Celery app)
