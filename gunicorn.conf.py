"""Gunicorn settings. gthread workers: the sync worker kills any request that runs past its
timeout, and a multi-GB upload does; gthread keeps heartbeating while a thread streams it."""

import os

from dotenv import load_dotenv

load_dotenv()

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_WORKERS", "4"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
# A worker silent this long is restarted; with gthread a long upload does not count as silence.
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
