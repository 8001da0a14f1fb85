"""The Render Blueprint really deploys this app: its start command serves the health path with
exactly the environment the Blueprint provides, and its pre-deploy command migrates Postgres."""

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text())
WEB = next(service for service in BLUEPRINT["services"] if service["type"] == "web")
# Stand-ins for what Render fills in: generated secrets, dashboard values, linked resources.
DASHBOARD_VALUES = {
    "CORS_ALLOWED_ORIGINS": "https://shop.example.com",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_DEFAULT_SENDER": "Nexus <no-reply@example.com>",
}


def blueprint_environ(database_url: str) -> dict[str, str]:
    """The web service's environment as Render would build it from the Blueprint."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    for var in WEB["envVars"]:
        key = var["key"]
        if "value" in var:
            environ[key] = str(var["value"])
        elif var.get("generateValue"):
            environ[key] = secrets.token_urlsafe(32)
        elif "fromDatabase" in var:
            environ[key] = database_url
        elif "fromService" in var:
            environ[key] = "redis://127.0.0.1:6379/15"
        elif var.get("sync") is False:
            environ[key] = DASHBOARD_VALUES.get(key, "set-in-the-dashboard")
    return environ


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_blueprint_has_what_render_requires():
    for service in BLUEPRINT["services"]:
        assert service.get("type") and service.get("name"), service
        if service["type"] in ("web", "worker", "pserv", "cron"):
            assert service.get("runtime") == "python", service["name"]
            assert service.get("buildCommand") and service.get("startCommand"), service["name"]
        if service["type"] == "keyvalue":
            assert "ipAllowList" in service, service["name"]
    for database in BLUEPRINT["databases"]:
        assert database.get("name")
    names = {database["name"] for database in BLUEPRINT["databases"]} | {s["name"] for s in BLUEPRINT["services"]}
    for var in WEB["envVars"]:
        linked = var.get("fromDatabase") or var.get("fromService")
        assert linked is None or linked["name"] in names, f"{var['key']} points at an unknown resource"


def test_the_health_check_path_is_a_route_of_the_app(client):
    assert client.get(WEB["healthCheckPath"]).status_code == 200


def test_the_start_command_serves_the_health_path_with_the_blueprint_environment():
    """gunicorn builds the app before serving, so this also proves the Blueprint provides every
    setting a production app refuses to start without."""
    port = free_port()
    environ = {**blueprint_environ("postgresql://nexus@127.0.0.1:5432/nexus"), "PORT": str(port)}
    command = shlex.split(WEB["startCommand"])
    command[0] = str(Path(sys.executable).parent / command[0])  # the gunicorn of this venv
    server = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.monotonic() + 30
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{WEB['healthCheckPath']}", timeout=2) as answer:
                    body = (answer.status, json.loads(answer.read()))
            except OSError:
                time.sleep(0.2)
        assert body == (200, {"status": "ok"}), server.stdout.read1().decode() if server.poll() is not None else body
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.postgres
def test_the_pre_deploy_command_migrates_an_empty_database(database_url, tmp_path):
    url = make_url(database_url)
    scratch = f"{url.database}_predeploy"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        command = shlex.split(WEB["preDeployCommand"])
        command[0] = str(Path(sys.executable).parent / command[0])
        environ = blueprint_environ(url.set(database=scratch).render_as_string(hide_password=False))
        result = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        check = subprocess.run(
            [*command[:-1], "check"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        server.dispose()
