"""`make flower`: Celery's monitoring UI on 127.0.0.1 only, always behind basic auth.

FLOWER_BASIC_AUTH (`user:password`) comes from the environment or `.env`; without it Flower is
not started, since the UI shows every task and can shut workers down.
"""

from __future__ import annotations

import os
import sys

from dotenv import load_dotenv

from .config import PROJECT_ROOT


def main() -> None:
    load_dotenv(PROJECT_ROOT / ".env")
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if ":" not in auth:
        sys.exit("Set FLOWER_BASIC_AUTH=user:password (in the environment or .env) to start Flower.")
    port = os.environ.get("FLOWER_PORT", "5555")
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    argv = [
        celery,
        "-A",
        "celery_app",
        "flower",
        "--address=127.0.0.1",
        f"--port={port}",
        f"--basic-auth={auth}",
    ]
    if os.environ.get("FLOWER_URL_PREFIX"):
        argv.append(f"--url-prefix={os.environ['FLOWER_URL_PREFIX']}")
    os.chdir(PROJECT_ROOT)
    os.execv(celery, argv)


if __name__ == "__main__":
    main()
