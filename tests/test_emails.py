"""How sign-in codes reach people: through a real SMTP server (aiosmtpd), end to end, and
through the log in development when no mail server is set."""

import logging
import re
import statistics
import time
import uuid
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from nexus import create_app
from nexus.auth.models import OtpCode
from nexus.jobs.outbox import OutboxJob
from tests.conftest import Inbox, SilentServer, app_environ, eventually, free_port
from tests.factories import UserFactory


def plain_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def mail_app(database_url: str, port: int, **settings: str):
    """The app sending through an SMTP server on a local port."""
    environ = app_environ(database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(port), MAIL_USE_TLS="false", **settings)
    return create_app(environ)


def timed(call):
    """`(call(), the seconds it took)`."""
    started = time.monotonic()
    return call(), time.monotonic() - started


def code_of(message: Message) -> str:
    [code] = [line for line in plain_text(message).splitlines() if line.strip().isdigit()]
    return code


def test_sign_in_with_the_code_from_a_delivered_email(database_url, smtp):
    port, inbox = smtp
    client = mail_app(database_url, port).test_client()

    assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202

    [delivered] = eventually(lambda: inbox.messages)
    assert delivered["To"] == "ada@example.com"
    assert {part.get_content_type() for part in delivered.walk()} >= {"text/plain", "text/html"}
    assert len(code_of(delivered)) == 6
    tokens = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code_of(delivered)})
    me = client.get("/api/v1/profile/me", headers={"Authorization": f"Bearer {tokens.get_json()['access_token']}"})
    assert me.get_json()["email"] == "ada@example.com"


def test_with_smtp_down_the_request_still_answers_202_and_the_job_sends_the_code_once_it_is_back(database_url, session):
    port = free_port()
    client = mail_app(database_url, port).test_client()

    response = client.post("/api/v1/auth/register", json={"email": "ada@example.com"})

    assert response.status_code == 202
    eventually(lambda: session.scalar(select(OutboxJob.attempts)) >= 1)  # tried, refused, waiting to retry
    assert session.scalar(select(func.count()).select_from(OtpCode)) == 0  # nothing kept unsent
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        [delivered] = eventually(lambda: inbox.messages, seconds=15)
    finally:
        controller.stop()
    eventually(lambda: session.scalar(select(OutboxJob.status)) == "done")  # the code commits as the job is done
    verified = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code_of(delivered)})
    assert verified.status_code == 200


@pytest.mark.postgres  # SQLite has one writer: a job waiting on SMTP inside its transaction holds up every other
def test_with_smtp_hung_sign_ins_answer_at_once_and_the_job_gives_up_each_try_within_mail_timeout(
    database_url, session
):
    hung = SilentServer()
    try:
        client = mail_app(database_url, hung.port, MAIL_TIMEOUT="3").test_client()
        answers = [
            timed(lambda n=n: client.post("/api/v1/auth/register", json={"email": f"u{n}@example.com"}))
            for n in range(4)
        ]
        assert [answer.status_code for answer, _ in answers] == [202] * 4
        assert max(seconds for _, seconds in answers) < 1.0  # none waits for the mail server
        eventually(lambda: session.scalar(select(func.min(OutboxJob.attempts))) >= 1, seconds=20)
    finally:
        hung.close()
    errors = session.scalars(select(OutboxJob.last_error)).all()
    assert errors and all("timed out" in (error or "") for error in errors), errors


def test_development_without_a_mail_server_writes_the_email_to_the_log(database_url, caplog):
    app = create_app({**app_environ(database_url), "ENVIRONMENT": "development"})
    client = app.test_client()

    with caplog.at_level(logging.WARNING, logger="nexus.emails"):
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202
        [logged] = eventually(lambda: [r.getMessage() for r in caplog.records if r.name == "nexus.emails"])

    code = re.match(r"Sign-in code for ada@example.com: (\d{6}) ", logged).group(1)
    assert "Your Nexus sign-in code is" in logged
    assert client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code}).status_code == 200


def test_asking_for_a_code_takes_as_long_for_an_unknown_address_as_for_a_known_one(database_url, smtp, session):
    port, inbox = smtp
    environ = {
        "OTP_RATE_LIMIT_PER_IP": "1000 per hour",
        "OTP_RATE_LIMIT_PER_EMAIL": "1000 per hour",
        "BROKER_URL": "redis://127.0.0.1:6379/15",  # as deployed: the jobs wait on the queue for a worker
        "BROKER_NAMESPACE": f"nexus-test-{uuid.uuid4().hex[:8]}",
    }
    app = mail_app(database_url, port, **environ)
    client = app.test_client()
    known = [UserFactory(email=f"known{n}@example.com").email for n in range(50)]
    unknown = [f"unknown{n}@example.com" for n in range(50)]
    for warm_up in ("known0@example.com", "unknown0@example.com"):
        client.post("/api/v1/auth/otp/request", json={"email": warm_up})
    timings: dict[str, list[float]] = {"known": [], "unknown": []}

    for n, pair in enumerate(zip(known, unknown, strict=True)):  # interleaved, each first in turn
        kinds = list(zip(("known", "unknown"), pair, strict=True))
        for kind, address in kinds if n % 2 else reversed(kinds):
            started = time.perf_counter()
            assert client.post("/api/v1/auth/otp/request", json={"email": address}).status_code == 202
            timings[kind].append((time.perf_counter() - started) * 1000)

    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    assert abs(medians["known"] - medians["unknown"]) < 1.0, medians
    worker = app.extensions["jobs"].worker(threads=4)
    worker.start()
    try:
        eventually(lambda: len(inbox.messages) == 51, seconds=30)  # codes went to the known addresses only
    finally:
        worker.stop()
    assert {message["To"] for message in inbox.messages} == set(known)
