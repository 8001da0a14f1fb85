"""Sentry (SENTRY_DSN): an unexpected error reaches it with the release and environment, and
with no personal data: no request body, no email address, no token."""

import json
import logging
from collections.abc import Iterator

import pytest
import sentry_sdk
from flask import Flask, request
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from nexus import create_app
from nexus.config import VERSION
from tests.conftest import app_environ

EMAIL = "private.person@example.com"
DSN = "http://public-key@127.0.0.1:9/42"  # never reached: the test's transport keeps what is sent
log = logging.getLogger("nexus.test_sentry")


class CapturingTransport(Transport):
    """Keeps the envelopes the SDK would send."""

    def __init__(self, options: dict) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [item.payload.json for envelope in self.envelopes for item in envelope.items if item.type == "event"]


def crash() -> None:
    """A test-only route that fails the way a bug would, after reading the body and logging."""
    email = request.get_json()["email"]
    log.warning("looking up %s", email)
    raise RuntimeError(f"the test route crashed for {email}")


@pytest.fixture
def reported(app: Flask, database_url: str) -> Iterator[tuple[Flask, CapturingTransport]]:
    """An app with SENTRY_DSN set (Sentry set up by create_app itself), a crashing route added to
    it, and the Sentry client's transport replaced by one that keeps what it is given."""
    crashing = create_app(app_environ(database_url, SENTRY_DSN=DSN))
    crashing.add_url_rule("/api/v1/test-only/crash", "crash", crash, methods=["POST"])
    client = sentry_sdk.get_client()
    transport = CapturingTransport(client.options)
    client.transport = transport
    yield crashing, transport
    sentry_sdk.get_global_scope().set_client(None)  # Sentry off again for the rest of the run


def test_sentry_is_set_up_from_sentry_dsn_with_release_and_environment(reported):
    options = sentry_sdk.get_client().options

    assert options["dsn"] == DSN
    assert options["release"] == f"nexus@{VERSION}"
    assert options["environment"] == "test"
    collected = options["data_collection"]
    assert collected["user_info"] is False
    assert collected["http_bodies"] == []
    assert collected["stack_frame_variables"] is False


def test_an_unexpected_error_reaches_sentry_without_the_body_the_email_or_the_token(reported, bearer_for):
    crashing, transport = reported
    authorization = bearer_for(1)["Authorization"]
    token = authorization.removeprefix("Bearer ")
    body = {"email": EMAIL, "note": "a body Sentry must not see"}

    headers = {"Authorization": authorization}
    response = crashing.test_client().post("/api/v1/test-only/crash", json=body, headers=headers)

    assert response.status_code == 500
    events = transport.events()
    assert len(events) == 1
    event = events[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["request"]["url"].endswith("/api/v1/test-only/crash")
    sent = json.dumps(event)
    for secret in (EMAIL, token, token.split(".")[2], "a body Sentry must not see"):
        assert secret not in sent
    assert "data" not in event["request"]
    assert not {name.lower() for name in event["request"].get("headers", {})} & {"authorization", "cookie"}


def test_without_sentry_dsn_nothing_is_set_up(database_url):
    create_app(app_environ(database_url))

    assert not sentry_sdk.get_client().is_active()
