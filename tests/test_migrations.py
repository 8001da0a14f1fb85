"""Migrations that move data move the rows already there: each is applied to a scratch
database (of the kind the suite runs on) holding rows written as the previous revision left them."""

import json
import uuid
from collections.abc import Iterator

import flask_migrate
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nexus import create_app
from nexus.config import normalise_database_url
from tests.conftest import app_environ


@pytest.fixture
def scratch_database_url(database_url: str, tmp_path) -> Iterator[str]:
    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"{url.database}_migrations_{uuid.uuid4().hex[:6]}"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def migrate(database_url: str, revision: str = "head") -> None:
    with create_app(app_environ(database_url)).app_context():
        flask_migrate.upgrade(revision=revision)


def test_client_secrets_stored_before_are_scrubbed_from_payment_events(scratch_database_url):
    migrate(scratch_database_url, "76351bd5580c")
    intent = {"id": "pi_1", "object": "payment_intent", "client_secret": "pi_1_secret_abc", "amount": 3000}
    event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    plain = {"id": "evt_2", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    engine = create_engine(normalise_database_url(scratch_database_url))
    with engine.begin() as connection:
        for stored in (event, plain):
            connection.execute(
                text(
                    "INSERT INTO payment_event_audits (stripe_event_id, type, source, payload, outcome, deliveries,"
                    " replays, processing_ms, received_at, processed_at) VALUES (:id, :type, 'webhook', :payload,"
                    " 'applied', 1, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": stored["id"], "type": stored["type"], "payload": json.dumps(stored)},
            )

    migrate(scratch_database_url)

    with engine.connect() as connection:
        payloads = dict(connection.execute(text("SELECT stripe_event_id, payload FROM payment_event_audits")).all())
    engine.dispose()
    loaded = {key: value if isinstance(value, dict) else json.loads(value) for key, value in payloads.items()}
    without_secret = {key: value for key, value in intent.items() if key != "client_secret"}
    assert loaded == {"evt_1": {**event, "data": {"object": without_secret}}, "evt_2": plain}
