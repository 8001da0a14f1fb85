"""The test app and its database.

Postgres when TEST_DATABASE_URL is set (this run creates its own database there and drops it
at the end), else a SQLite file. The schema is built by running the migrations, so every test
run tests them too. Tests talk to the app only over HTTP; after each one every table is emptied.
"""

import email
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import flask_migrate
import pytest
import time_machine
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from nexus import create_app
from nexus.config import normalise_database_url
from nexus.database import utcnow
from nexus.extensions import db, limiter, mail
from nexus.stores.models import Product
from nexus.users.models import User
from tests import factories, stripe_gate
from tests.stripe_connect import StripeConnect
from tests.stripe_helpers import STRIPE_CONNECT_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET, register_webhook


def app_environ(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment a test app runs with: the test settings plus `overrides`."""
    keep = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    return {**keep, "ENVIRONMENT": "test", "DATABASE_URL": database_url, "LOG_LEVEL": "INFO", **overrides}


SECRET = "s" * 48
# The environment of a production app with everything it refuses to start without.
PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": SECRET,
    "JWT_SECRET_KEY": SECRET + "j",
    "DATABASE_URL": "postgres://nexus:pw@db.internal:5432/nexus",
    "CORS_ALLOWED_ORIGINS": "https://shop.example.com",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_DEFAULT_SENDER": "Nexus <no-reply@example.com>",
    "BROKER_URL": "redis://redis.internal:6379/0",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` run in the Postgres pass (`.ci/run` runs both passes)."""
    if os.environ.get("TEST_DATABASE_URL"):
        return
    skip = pytest.mark.skip(reason="needs Postgres: set TEST_DATABASE_URL (the Postgres pass of .ci/run does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'nexus.db'}"
        return
    server = create_engine(normalise_database_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"nexus_test_{uuid.uuid4().hex[:10]}"
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(normalise_database_url(server_url)).set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class SilentServer:
    """A TCP port that accepts connections and never says a word, like a hung SMTP server, Stripe
    or database; `accepted` counts the connections it took. Closed, it hangs up on all of them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self.held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in [*self.held, self.listener]:
            connection.close()


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server (aiosmtpd) on a free local port: `(its port, what it received)`."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def within(seconds: float, call: Callable):
    """`call()`'s result, failing the test if it has not returned after `seconds` (it is left
    running on a daemon thread, so a call that hangs for ever fails instead of hanging the run)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"it was still waiting after {seconds} s", pytrace=False)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def eventually(check: Callable, seconds: float = 10.0):
    """Poll `check` until it returns something true (returned), or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.1)
    return result


@pytest.fixture(scope="session")
def localstripe_process() -> Iterator[str]:
    """localstripe (a Stripe API stand-in, from PyPI) run as its own process, through its own
    command: it is GPL-licensed, so it is run, never imported. Tests reach it only through the
    gate (`localstripe`)."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "localstripe"), "--port", str(port), "--from-scratch"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/v1/balance")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def stripe_connect(localstripe_process: str) -> Iterator[StripeConnect]:
    """The tests' Stripe (tests/stripe_connect.py): every request checked against the API version
    the pinned stripe-python speaks, the Connect endpoints Nexus calls served there, and every
    other request passed on to localstripe, so the app's one STRIPE_API_BASE serves both."""
    stand_in = StripeConnect(webhook_secret=STRIPE_CONNECT_WEBHOOK_SECRET, upstream=localstripe_process)
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="session")
def localstripe(stripe_connect: StripeConnect) -> str:
    """Where the tests drive localstripe as Stripe.js or Stripe's dashboard would: through the
    gate, like the app."""
    return stripe_connect.url


@pytest.fixture(autouse=True)
def stripe_speaks_the_pinned_version(stripe_connect: StripeConnect) -> Iterator[None]:
    """Each test starts with idempotency keys unknown to "Stripe" (its empty database hands out the
    same ids again, as a day later Stripe would have forgotten them) and no request received, and
    fails if any request it caused was one the pinned Stripe API version refuses (a test that
    expects a refusal takes it from `stripe_connect.refused()`)."""
    stripe_connect.forget_idempotency_keys()
    stripe_connect.refused()
    stripe_connect.received.clear()
    yield
    refused = stripe_connect.refused()
    assert not refused, f"requests the pinned Stripe API version ({stripe_gate.API_VERSION}) refuses: {refused}"


FRONTEND_URL = "https://shop.example.com"


@pytest.fixture(scope="session")
def app(database_url: str, stripe_connect: StripeConnect) -> Flask:
    app = create_app(
        app_environ(
            database_url,
            STRIPE_SECRET_KEY="sk_test_nexus",
            STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
            STRIPE_CONNECT_WEBHOOK_SECRET=STRIPE_CONNECT_WEBHOOK_SECRET,
            STRIPE_API_BASE=stripe_connect.url,
            FRONTEND_URL=FRONTEND_URL,
        )
    )
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a local port, for what calls it from outside (Stripe)."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def is_postgres(app: Flask) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(autouse=True)
def clean_state(app: Flask, is_postgres: bool) -> Iterator[None]:
    """Every test starts with empty tables and fresh rate-limit budgets."""
    yield
    with app.app_context():
        tables = [table.name for table in db.metadata.sorted_tables]
        with db.engine.begin() as connection:
            if is_postgres:
                connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(tables):
                    connection.execute(text(f"DELETE FROM {table}"))
        limiter.reset()


@pytest.fixture(scope="session")
def test_engine(database_url: str) -> Iterator[Engine]:
    """The test's own connections, in autocommit: a read never holds a transaction (or a SQLite
    lock) open while the app works, and always sees what the app committed."""
    engine = create_engine(normalise_database_url(database_url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def session(test_engine: Engine) -> Iterator[Session]:
    """A session for setup through factories and for looking at rows."""
    with Session(test_engine, expire_on_commit=False) as session:
        factories.use_session(session)
        yield session


def wait_for_jobs(engine: Engine, seconds: float = 10.0) -> None:
    """Until no background job is pending: the app's in-process worker has run what the test's
    requests asked for (emails, reports)."""
    query = text("SELECT count(*) FROM outbox WHERE status = 'pending'")
    with engine.connect() as connection:
        eventually(lambda: connection.execute(query).scalar() == 0, seconds)


class SentEmails(Sequence):
    """Flask-Mail's record of the emails sent (none leave the machine). Emails are sent by
    background jobs, so reading it first waits until no job is pending."""

    def __init__(self, recorded: list, engine: Engine) -> None:
        self._recorded, self._engine = recorded, engine

    def _settled(self) -> list:
        wait_for_jobs(self._engine)
        return self._recorded

    def __getitem__(self, index):
        return self._settled()[index]

    def __len__(self) -> int:
        return len(self._settled())

    def __eq__(self, other) -> bool:
        return self._settled() == list(other)

    def clear(self) -> None:
        self._settled().clear()


@pytest.fixture
def outbox(app: Flask, test_engine: Engine) -> Iterator[SentEmails]:
    """The emails the app sends during the test, once its jobs are done."""
    with mail.record_messages() as messages:
        yield SentEmails(messages, test_engine)


def code_in(message) -> str:
    """The 6-digit code standing on its own in an email's plain-text body."""
    return re.search(r"^(\d{6})$", message.body, re.MULTILINE).group(1)


@dataclass
class SignedIn:
    access_token: str
    refresh_token: str
    user: dict

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
def sign_in(client: FlaskClient, outbox: list) -> Callable[[str], SignedIn]:
    """Sign in over HTTP as a user found or created by email: register, read the code, verify."""

    def sign_in(email: str) -> SignedIn:
        assert client.post("/api/v1/auth/register", json={"email": email}).status_code == 202
        # Its code's email, the newest to the address: order emails may be sent meanwhile, in any order.
        code = code_in(next(m for m in reversed(outbox) if m.recipients == [email] and "sign-in code" in m.subject))
        body = client.post("/api/v1/auth/otp/verify", json={"email": email, "code": code}).get_json()
        return SignedIn(body["access_token"], body["refresh_token"], body["user"])

    return sign_in


@pytest.fixture
def owner(sign_in) -> SignedIn:
    """A signed-in customer who will own stores."""
    return sign_in("owner@example.com")


@pytest.fixture
def stranger(sign_in) -> SignedIn:
    """A signed-in customer with no business in the test's stores or orders."""
    return sign_in("stranger@example.com")


@pytest.fixture
def buyer(sign_in) -> SignedIn:
    """A signed-in customer who buys from the owner's stores."""
    return sign_in("buyer@example.com")


@pytest.fixture
def teapot(owner, session) -> Product:
    """A product of the owner's store, in usd: 15.00, 4 in stock."""
    store = factories.StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    return factories.ProductFactory(store=store, price=1500, stock=4)


@pytest.fixture
def order(client, buyer, teapot) -> dict:
    """The buyer's order of 2 teapots (3000 usd), placed over HTTP, waiting for payment."""
    body = {"items": [{"product_id": teapot.id, "quantity": 2}], "shipping_address": factories.shipping_address()}
    response = client.post("/api/v1/orders", headers=buyer.headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture(scope="module")
def connect_webhooks(localstripe: str, live_server: str, stripe_connect: StripeConnect) -> Iterator[None]:
    """localstripe and the Connect stand-in deliver their signed events to the app's two webhooks
    (for a module: `pytestmark = pytest.mark.usefixtures("connect_webhooks")`)."""
    register_webhook(localstripe, f"{live_server}/api/v1/webhooks/stripe")
    stripe_connect.webhook_url = f"{live_server}/api/v1/webhooks/stripe-connect"
    yield
    stripe_connect.webhook_url = None


@pytest.fixture
def vase(owner, session) -> Product:
    """A product of the owner's store, in usd: 50.00, 10 in stock (two make the contract's 10000)."""
    store = factories.StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    return factories.ProductFactory(store=store, price=5000, stock=10)


@pytest.fixture
def admin(sign_in, session) -> SignedIn:
    """A signed-in admin."""
    factories.AdminFactory(email="admin@example.com")
    return sign_in("admin@example.com")


@pytest.fixture
def bearer_for(app: Flask) -> Callable[[int], dict[str, str]]:
    """Authorization headers for a user made by a factory (signing in over HTTP is tested in
    test_auth; tests that need many signed-in users mint their tokens here)."""

    def bearer_for(user_id: int) -> dict[str, str]:
        with app.app_context():
            return {"Authorization": f"Bearer {create_access_token(identity=str(user_id))}"}

    return bearer_for


@pytest.fixture
def statements(app: Flask):
    """The SQL statements the app sends for the test's requests, on any of its engines, while the
    test runs (BEGIN left out, and what background jobs send on their own threads), as
    SQLAlchemy wrote them: a read planned once is recorded as its SELECT, not as the EXECUTE of
    it that nexus.database sends in its place."""
    with app.app_context():
        engines = list(db.engines.values())
    sent: list[tuple[str, object]] = []
    requests_thread = threading.get_ident()

    def record(connection, cursor, statement, parameters, context, executemany):
        statement = statement if context is None else context.statement  # before any listener rewrote it
        if not statement.strip().upper().startswith("BEGIN") and threading.get_ident() == requests_thread:
            sent.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield sent
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)


def all_at_once(app: Flask, calls: list[Callable[[FlaskClient], object]]) -> list:
    """Run every call in its own thread, released together by a barrier, each with its own test
    client; their results, in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[FlaskClient], object]):
        client = app.test_client()
        start.wait()
        return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def run_command(app: Flask, *args: str, after_minutes: float, exit_code: int = 0) -> str:
    """The output of `flask ARGS...` run `after_minutes` from now, which exits with `exit_code`."""
    with time_machine.travel(utcnow() + timedelta(minutes=after_minutes)):
        result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == exit_code, result.output
    return result.output


def expire_stale(app: Flask, *, after_minutes: float, exit_code: int = 0) -> str:
    """The output of `flask orders expire-stale` run `after_minutes` from now."""
    return run_command(app, "orders", "expire-stale", after_minutes=after_minutes, exit_code=exit_code)
