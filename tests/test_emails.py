"""How sign-in codes reach people: through a real SMTP server (aiosmtpd), end to end, and
through the log in development when no mail server is set."""

import email
import logging
import re
import time
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from nexus import create_app
from nexus.auth.models import OtpCode
from tests.conftest import app_environ, free_port, within


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def plain_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def test_sign_in_with_the_code_from_a_delivered_email(database_url, smtp_server):
    controller, inbox = smtp_server
    app = create_app(
        app_environ(database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(controller.port), MAIL_USE_TLS="false")
    )
    client = app.test_client()

    assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202

    [delivered] = inbox.messages
    assert delivered["To"] == "ada@example.com"
    assert {part.get_content_type() for part in delivered.walk()} >= {"text/plain", "text/html"}
    [code] = [line for line in plain_text(delivered).splitlines() if line.strip().isdigit()]
    assert len(code) == 6
    tokens = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code}).get_json()
    me = client.get("/api/v1/profile/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.get_json()["email"] == "ada@example.com"


def test_a_mail_server_that_never_answers_is_given_up_on_after_mail_timeout_with_a_503(
    database_url, silent_server, session
):
    app = create_app(
        app_environ(
            database_url,
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=str(silent_server.port),
            MAIL_USE_TLS="false",
            MAIL_TIMEOUT="1",
        )
    )
    client = app.test_client()

    started = time.monotonic()
    response = within(10, lambda: client.post("/api/v1/auth/register", json={"email": "ada@example.com"}))
    waited = time.monotonic() - started

    assert silent_server.accepted == 1
    assert 1 <= waited < 2.5  # it waited for the greeting for MAIL_TIMEOUT, then gave up
    assert response.status_code == 503
    assert response.get_json() == {
        "code": 503,
        "status": "Service Unavailable",
        "message": "The sign-in email could not be sent right now; please try again shortly.",
    }
    assert session.scalar(select(func.count()).select_from(OtpCode)) == 0


def test_smtp_down_answers_503_stores_nothing_and_a_retry_works_once_it_is_back(database_url, session):
    port = free_port()
    app = create_app(app_environ(database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(port), MAIL_USE_TLS="false"))
    client = app.test_client()

    response = client.post("/api/v1/auth/register", json={"email": "ada@example.com"})

    assert response.status_code == 503
    assert "email could not be sent" in response.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(OtpCode)) == 0

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert session.scalar(select(func.count()).select_from(OtpCode)) == 1


def test_development_without_a_mail_server_writes_the_email_to_the_log(database_url, caplog):
    app = create_app({**app_environ(database_url), "ENVIRONMENT": "development"})
    client = app.test_client()

    with caplog.at_level(logging.WARNING, logger="nexus.auth.emails"):
        assert client.post("/api/v1/auth/register", json={"email": "ada@example.com"}).status_code == 202

    [logged] = [r.getMessage() for r in caplog.records if r.name == "nexus.auth.emails"]
    code = re.match(r"Sign-in code for ada@example.com: (\d{6}) ", logged).group(1)
    assert "Your Nexus sign-in code is" in logged
    assert client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code}).status_code == 200
