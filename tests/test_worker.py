"""The background-job worker as Render runs it: `flask --app wsgi worker` with the Blueprint's
own environment, on Postgres and the Redis queue, sending real email to an SMTP server (aiosmtpd)
or to one that hangs. The web side is an app of the test on the same database and queue."""

import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dramatiq
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from nexus import create_app
from nexus.cli.worker import maintain_queues
from nexus.jobs import broker
from nexus.jobs.outbox import OutboxJob
from tests.conftest import Inbox, SilentServer, app_environ, eventually, free_port
from tests.factories import ProductFactory
from tests.test_deploy import ROOT, WEB, WORKER, blueprint_environ
from tests.test_emails import code_of

pytestmark = pytest.mark.postgres
QUEUE_URL = "redis://127.0.0.1:6379/15"  # what test_deploy gives the Blueprint's Key Value


@pytest.fixture
def namespace() -> str:
    """Queue keys of this test only, so no other run's messages reach its worker."""
    return f"nexus-test-{uuid.uuid4().hex[:8]}"


def start_worker(database_url: str, namespace: str, smtp_port: int, **settings: str) -> subprocess.Popen:
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
        **settings,
    }
    return subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def web_client(database_url: str, namespace: str):
    """The web side: hands its jobs to the same Redis queue, and shares the Blueprint's secret
    (sign-in codes are stored as a hash keyed with it)."""
    secret = blueprint_environ(database_url, WEB)["SECRET_KEY"]
    environ = app_environ(database_url, BROKER_URL=QUEUE_URL, BROKER_NAMESPACE=namespace, SECRET_KEY=secret)
    return create_app(environ).test_client()


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
    hung = SilentServer()
    first = start_worker(database_url, namespace, hung.port)
    try:
        client = web_client(database_url, namespace)
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202
        eventually(lambda: hung.accepted >= 1, seconds=30)  # the job is talking to the mail server
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


@pytest.mark.parametrize(("delay", "queue"), [(None, "jobs"), (1, "jobs.DQ")])  # a job; a retry in its backoff
def test_maintenance_hands_a_dead_workers_message_back_on_its_queue(namespace, delay, queue):
    """What `flask worker` does every few seconds: a message a worker fetched and never
    acknowledged before it went silent is on its queue again once its heartbeat is past the
    timeout, whichever queue it came from (Dramatiq alone did this on a random call in twenty,
    for that call's queue only)."""
    dead, alive = (broker.RedisBroker(url=QUEUE_URL, namespace=namespace, heartbeat_timeout=300) for _ in range(2))
    try:
        for each in (dead, alive):
            each.declare_queue("jobs")
        job = dramatiq.Message(queue_name="jobs", actor_name="run_job", args=(1,), kwargs={}, options={})
        message = dead.enqueue(job, delay=delay)
        [fetched] = dead.do_fetch(queue, 1)  # and never acknowledged: then it dies
        assert dramatiq.Message.decode(fetched).message_id == message.message_id
        assert alive.do_fetch(queue, 1) == []
        time.sleep(0.4)  # past the dead one's heartbeat timeout

        alive.maintain()

        [redelivered] = alive.do_fetch(queue, 1)
        assert dramatiq.Message.decode(redelivered).message_id == message.message_id
    finally:
        alive.flush_all()
        for each in (dead, alive):
            each.close()


def test_maintenance_with_redis_away_is_logged_and_the_worker_goes_on(caplog, namespace):
    away = broker.RedisBroker(url=f"redis://127.0.0.1:{free_port()}/0", namespace=namespace)  # nothing listens
    away.declare_queue("jobs")

    maintain_queues(away)  # does not raise

    assert any("queue maintenance failed (ConnectionError)" in record.getMessage() for record in caplog.records)


def test_the_worker_refuses_to_start_without_a_queue(database_url):
    environ = {**blueprint_environ(database_url, WORKER), "BROKER_URL": ""}
    environ.update(ENVIRONMENT="test")  # production would refuse before the command even runs
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "worker"],
        cwd=ROOT, env={**os.environ, **environ}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode != 0
    assert "BROKER_URL is not set" in result.stderr


def start_web(database_url: str, namespace: str, port: int) -> subprocess.Popen:
    """The Blueprint's web start command with the Blueprint's environment, on a loopback port,
    handing its jobs to the test's queue namespace."""
    argv = [*shlex.split(WEB["startCommand"]), "--bind", f"127.0.0.1:{port}"]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    environ = {
        **blueprint_environ(database_url, WEB),
        "PORT": str(port),
        "BROKER_NAMESPACE": namespace,
        "RATELIMIT_KEY_PREFIX": namespace,  # budgets of this test only, on the shared Redis
        "CATALOG_RATE_LIMIT_PER_IP": "1000000 per minute",  # all the test's load comes from one address
    }
    server = subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eventually(lambda: _answers(f"http://127.0.0.1:{port}/health"), seconds=30)
    return server


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def post(url: str, body: dict) -> tuple[int, float]:
    """POST JSON; the status and the seconds it took."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started


def catalog_p99_ms(base: str, seconds: float) -> float:
    """The catalog's 99th-percentile latency over a bounded loop of requests."""
    timings, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and len(timings) < 2000:
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/api/v1/products?limit=20", timeout=10) as answer:
            assert answer.status == 200
        timings.append((time.monotonic() - started) * 1000)
    return statistics.quantiles(timings, n=100)[98]


def test_with_smtp_hung_eight_sign_ins_answer_at_once_the_catalog_keeps_up_and_the_codes_arrive_once_it_is_back(
    database_url, namespace, session
):
    ProductFactory.create_batch(30)
    hung = SilentServer()
    port = free_port()
    worker = start_worker(database_url, namespace, hung.port, MAIL_TIMEOUT="2")
    web = start_web(database_url, namespace, port)
    base = f"http://127.0.0.1:{port}"
    emails = [f"user{n}@example.com" for n in range(8)]
    inbox = Inbox()
    controller = None
    try:
        with ThreadPoolExecutor(max_workers=9) as pool:
            during = pool.submit(catalog_p99_ms, base, 3.0)
            answers = list(pool.map(lambda email: post(f"{base}/api/v1/auth/register", {"email": email}), emails))
            p99 = during.result()
        assert [status for status, _ in answers] == [202] * 8
        assert max(seconds for _, seconds in answers) < 1.0, answers
        assert p99 < 250, p99
        eventually(lambda: hung.accepted >= 1, seconds=10)  # the worker is stuck on the mail server
        assert inbox.messages == []

        hung.close()  # the mail server comes back, on the address the worker knows
        controller = Controller(inbox, hostname="127.0.0.1", port=hung.port)
        controller.start()
        eventually(lambda: len(inbox.messages) == 8, seconds=60)
        assert sorted(message["To"] for message in inbox.messages) == sorted(emails)
        code = code_of(next(m for m in inbox.messages if m["To"] == emails[0]))
        assert post(f"{base}/api/v1/auth/otp/verify", {"email": emails[0], "code": code})[0] == 200
    finally:
        web.terminate()
        web.wait(timeout=30)
        stop(worker)
        if controller is not None:
            controller.stop()
