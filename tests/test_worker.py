"""The background-job worker as Render runs it: `flask --app wsgi worker` with the Blueprint's
own environment, on Postgres and the Redis queue, sending real email to an SMTP server (aiosmtpd)
or to one that hangs. The web side is an app of the test on the same database and queue."""

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from nexus import create_app
from nexus.jobs.outbox import OutboxJob
from tests.conftest import HungServer, app_environ, eventually, free_port
from tests.test_deploy import ROOT, WEB, WORKER, blueprint_environ
from tests.test_emails import Inbox, code_of

pytestmark = pytest.mark.postgres
QUEUE_URL = "redis://127.0.0.1:6379/15"  # what test_deploy gives the Blueprint's Key Value


@pytest.fixture
def namespace() -> str:
    """Queue keys of this test only, so no other run's messages reach its worker."""
    return f"nexus-test-{uuid.uuid4().hex[:8]}"


def start_worker(database_url: str, namespace: str, smtp_port: int) -> subprocess.Popen:
    """The Blueprint's worker command with the Blueprint's environment; the SMTP server's
    address and the queue's namespace stand in for the real ones."""
    argv = shlex.split(WORKER["startCommand"])
    argv[0] = str(Path(sys.executable).parent / argv[0])
    environ = {
        **blueprint_environ(database_url, WORKER),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "MAIL_USE_TLS": "false",
        "MAIL_USERNAME": "",  # the stand-in SMTP server takes mail without signing in
        "MAIL_PASSWORD": "",
        "MAIL_TIMEOUT": "30",
        "BROKER_NAMESPACE": namespace,
    }
    return subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def web_client(database_url: str, namespace: str):
    """The web side: hands its jobs to the same Redis queue, and shares the Blueprint's secret
    (sign-in codes are stored as a hash keyed with it)."""
    secret = blueprint_environ(database_url, WEB)["SECRET_KEY"]
    environ = app_environ(database_url, BROKER_URL=QUEUE_URL, BROKER_NAMESPACE=namespace, SECRET_KEY=secret)
    return create_app(environ).test_client()


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def stop(worker: subprocess.Popen, how: int = signal.SIGTERM) -> int:
    worker.send_signal(how)
    return worker.wait(timeout=30)


def test_the_worker_sends_the_code_a_sign_in_asked_for_and_stops_cleanly_on_sigterm(database_url, namespace, smtp):
    port, inbox = smtp
    worker = start_worker(database_url, namespace, port)
    try:
        client = web_client(database_url, namespace)
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202

        [delivered] = eventually(lambda: inbox.messages, seconds=30)
        verified = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code_of(delivered)})
        assert verified.status_code == 200
    finally:
        started_stopping = time.monotonic()
        returncode = stop(worker)
    assert returncode == 0, worker.stdout.read().decode()
    assert time.monotonic() - started_stopping < 25


def test_a_worker_killed_in_the_middle_of_a_job_leaves_it_to_the_next_which_sends_the_email_once(
    database_url, namespace, smtp, session
):
    hung = HungServer()
    first = start_worker(database_url, namespace, hung.port)
    try:
        client = web_client(database_url, namespace)
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202
        eventually(lambda: hung.accepted, seconds=30)  # the job is talking to the mail server
    finally:
        stop(first, signal.SIGKILL)
        hung.close()
    port, inbox = smtp
    second = start_worker(database_url, namespace, port)
    try:
        [delivered] = eventually(lambda: inbox.messages, seconds=60)  # after the dead worker's heartbeat ran out
        assert delivered["To"] == "ada@example.com"
        eventually(lambda: session.scalar(select(func.count()).where(OutboxJob.status != "done")) == 0, seconds=30)
        assert len(inbox.messages) == 1  # any later delivery finds the job done
    finally:
        stop(second)


def test_the_worker_refuses_to_start_without_a_queue(database_url):
    environ = {**blueprint_environ(database_url, WORKER), "BROKER_URL": ""}
    environ.update(ENVIRONMENT="test")  # production would refuse before the command even runs
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "worker"],
        cwd=ROOT, env={**os.environ, **environ}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode != 0
    assert "BROKER_URL is not set" in result.stderr
