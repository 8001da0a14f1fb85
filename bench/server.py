"""The project under gunicorn for a benchmark: 2 sync workers, as the shared harness runs it."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def serve(port: int, database_url: str) -> subprocess.Popen:
    """Start gunicorn on 127.0.0.1:`port` and wait until /health answers."""
    command = [str(PROJECT / ".venv/bin/gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    environ = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(command, cwd=PROJECT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit("bench: the project did not start")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)
