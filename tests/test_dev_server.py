"""The development server as `make run` starts it (`flask run`): one JSON access line per
request (werkzeug's own is not repeated through our handler) and no terminal colour codes in
a JSON line."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import eventually, free_port
from tests.test_deploy import ROOT

FLASK = str(Path(sys.executable).parent / "flask")


def test_flask_run_logs_each_request_once_and_no_colour_codes_in_json(tmp_path):
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
    }
    upgraded = subprocess.run(
        [FLASK, "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=environ, capture_output=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stderr.decode()
    port = free_port()
    logs = tmp_path / "log"
    with logs.open("wb") as out:
        server = subprocess.Popen(
            [FLASK, "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/health"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, logs.read_text()
                time.sleep(0.2)
        eventually(lambda: "/api/v1/health" in logs.read_text())
        time.sleep(0.5)  # werkzeug writes its line after ours
    finally:
        server.terminate()
        server.wait(timeout=30)

    lines = logs.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries, lines
    for line, entry in zip([line for line in lines if line.startswith("{")], entries, strict=True):
        assert "\x1b[" not in entry["message"] and "\\u001b[" not in line, line
    about_the_request = [line for line in lines if "/api/v1/health" in line]
    assert len(about_the_request) == 1, about_the_request
    assert json.loads(about_the_request[0])["logger"] == "nexus.access"
    assert any("Running on" in entry["message"] for entry in entries)  # werkzeug's other lines stay
