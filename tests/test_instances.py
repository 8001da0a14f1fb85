"""Two instances are one service: two gunicorn processes (the Blueprint's start command, two
workers each) on one database and one Redis share rate-limit budgets, revocations and webhook
deduplication, proven over real HTTP.

The instances run with ENVIRONMENT=development and no MAIL_SERVER, so a sign-in code goes to the
instance's log, as the contract says; the tests read it there and sign in over HTTP like a user.
Their rate-limit keys carry a prefix unique to this run, deleted after every test, so runs
sharing the Redis never meet. Redis must answer (CI starts it): without it these tests fail.
"""

import http.client
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import func, select, update

from nexus.auth.models import RevokedToken
from nexus.database import utcnow
from nexus.orders.models import Order
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product
from tests.conftest import app_environ, eventually, free_port, wait_for_jobs
from tests.factories import AdminFactory, PaymentFactory, ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import STRIPE_WEBHOOK_SECRET, intent_event, sign_stripe_event

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The web service's start command from the Render Blueprint (gunicorn with gunicorn.conf.py).
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text())
START = next(service["startCommand"] for service in BLUEPRINT["services"] if service["type"] == "web")

REGISTER = "/api/v1/auth/register"
REQUEST = "/api/v1/auth/otp/request"
VERIFY = "/api/v1/auth/otp/verify"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/profile/me"
WEBHOOK = "/api/v1/webhooks/stripe"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: dict | None


@dataclass
class Instance:
    """One app process, reached over HTTP; its log (stdout and stderr) is a file."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.connect()
        return connection

    def call(
        self,
        method: str,
        path: str,
        body: dict | bytes | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        connection = connection or self.connect()
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            return Answer(response.status, response.headers, json.loads(raw) if raw else None)
        finally:
            connection.close()

    def post(self, path: str, body: dict | bytes | None = None, **options) -> Answer:
        return self.call("POST", path, body, **options)

    def get(self, path: str, **options) -> Answer:
        return self.call("GET", path, **options)

    def codes_for(self, email: str) -> list[str]:
        """The sign-in codes this instance has emailed to `email` (written to its log: the email's
        text, where the code stands on a line of its own), oldest first."""
        codes = []
        for line in self.log.read_text().splitlines():
            try:
                message = json.loads(line).get("message", "")
            except (ValueError, AttributeError):
                continue  # not one of the app's lines (every line is JSON: tests/test_serving.py)
            if email in message:
                codes += re.findall(r"^(\d{6})$", message, re.MULTILINE)
        return codes

    def start(self, environ: dict[str, str]) -> None:
        command = [*shlex.split(START), "--bind", f"127.0.0.1:{self.port}"]  # on loopback, not 0.0.0.0
        command[0] = str(Path(sys.executable).parent / command[0])  # this venv's gunicorn
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)

    def wait_until_serving(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.get("/health").status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"instance {self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Ask gunicorn to shut down (it stops its workers); `wait_until_stopped` waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_until_stopped(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A rate-limit key prefix of this run's own; its keys are deleted when the module ends."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not answering at {REDIS_URL} ({error}); several-instance tests need it", pytrace=False)
    prefix = f"nexus-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    _delete_keys(client, prefix)
    client.close()


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def instances(app, database_url, redis_prefix, tmp_path_factory) -> Iterator[tuple[Instance, Instance]]:
    """Instances A and B, each its own gunicorn with two workers, as Render would run them.

    `app` has migrated the test database already; both share it, the secrets and the Redis."""
    logs = tmp_path_factory.mktemp("instances")
    environ = app_environ(
        database_url,
        ENVIRONMENT="development",  # with no MAIL_SERVER, sign-in codes are written to the log
        SECRET_KEY=secrets.token_urlsafe(32),
        JWT_SECRET_KEY=secrets.token_urlsafe(32),
        RATELIMIT_STORAGE_URI=REDIS_URL,
        RATELIMIT_KEY_PREFIX=redis_prefix,
        STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
        WEB_CONCURRENCY="2",
    )
    pair = (Instance("A", free_port(), logs / "a.log"), Instance("B", free_port(), logs / "b.log"))
    try:
        for instance in pair:
            instance.start(environ)
        for instance in pair:
            instance.wait_until_serving()
        yield pair
    finally:
        for instance in pair:
            instance.stop()
        for instance in pair:
            instance.wait_until_stopped()


@pytest.fixture
def a(instances) -> Instance:
    return instances[0]


@pytest.fixture
def b(instances) -> Instance:
    return instances[1]


@pytest.fixture(autouse=True)
def fresh_budgets(redis_prefix) -> Iterator[None]:
    """Every test starts with full rate-limit budgets: this run's keys are deleted after each."""
    yield
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    _delete_keys(client, redis_prefix)
    client.close()


def fresh_email(name: str) -> str:
    """An address of this test's own: the instances' logs live as long as the module, so a
    test that reads codes from them must not see another test's."""
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def sign_in(email: str, *, ask: Instance, verify: Instance) -> dict:
    """Register on `ask`, read the emailed code from its log, trade it for tokens on `verify`."""
    assert ask.post(REGISTER, {"email": email}).status == 202
    code = eventually(lambda: ask.codes_for(email))[-1]  # sent by a job of that instance
    answer = verify.post(VERIFY, {"email": email, "code": code})
    assert answer.status == 200, answer.body
    return answer.body


def at_once(targets: list[Instance], send: Callable[[Instance, http.client.HTTPConnection], Answer]) -> list[Answer]:
    """`send` to every target from its own thread, all released by one barrier; each connection
    is open before the barrier, so the requests reach the instances together."""
    start = threading.Barrier(len(targets))

    def one(instance: Instance) -> Answer:
        connection = instance.connect()
        start.wait()
        return send(instance, connection)

    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(one, targets))


def assert_limited(answer: Answer) -> None:
    assert answer.status == 429, answer.body
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.body["code"] == 429


# --- rate limits ----------------------------------------------------------------------------


def test_the_per_email_budget_is_shared_by_both_instances(a, b):
    email = fresh_email("ada")
    for instance, path in ((a, REGISTER), (b, REQUEST), (a, REQUEST), (b, REGISTER), (a, REQUEST)):
        assert instance.post(path, {"email": email}).status == 202

    # The sixth request is refused wherever it lands: 5 per hour for the service, not per process.
    assert_limited(b.post(REQUEST, {"email": email}))
    assert_limited(a.post(REGISTER, {"email": email}))
    eventually(lambda: len(a.codes_for(email)) + len(b.codes_for(email)) == 5)
    assert b.post(REGISTER, {"email": fresh_email("bob")}).status == 202  # other addresses keep theirs


def test_the_per_ip_budget_is_shared_by_both_instances(a, b):
    for n in range(30):  # every request comes from 127.0.0.1; each address is new, so only the IP budget counts
        instance = (a, b)[n % 2]
        assert instance.post(REQUEST, {"email": f"caller{n}@example.com"}).status == 202, n

    assert_limited(a.post(REQUEST, {"email": "fresh@example.com"}))
    assert_limited(b.post(REGISTER, {"email": "fresh@example.com"}))


# --- revocation -----------------------------------------------------------------------------


def test_a_code_emailed_by_one_instance_signs_in_on_the_other_once(a, b):
    ada = fresh_email("ada")
    tokens = sign_in(ada, ask=a, verify=b)

    assert a.get(ME, token=tokens["access_token"]).body["email"] == ada
    code = a.codes_for(ada)[-1]
    assert a.post(VERIFY, {"email": ada, "code": code}).status == 401  # spent on B


def test_signing_out_on_one_instance_is_refused_on_the_other(a, b):
    tokens = sign_in(fresh_email("ada"), ask=a, verify=b)
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    assert b.get(ME, token=access).status == 200

    assert a.post(LOGOUT, {"refresh_token": refresh}, token=access).status == 204

    assert b.get(ME, token=access).status == 401
    assert b.post(REFRESH, token=refresh).status == 401


def test_a_refresh_token_rotated_on_one_instance_is_spent_on_the_other(a, b, session):
    tokens = sign_in(fresh_email("ada"), ask=b, verify=a)

    rotated = a.post(REFRESH, token=tokens["refresh_token"])
    assert rotated.status == 200
    past_the_grace(session)

    replayed = b.post(REFRESH, token=tokens["refresh_token"])
    assert replayed.status == 401
    assert "already used" in replayed.body["message"]
    # Theft is likely, so every refresh token of the user died, the one A just issued too.
    assert a.post(REFRESH, token=rotated.body["refresh_token"]).status == 401
    assert b.post(REFRESH, token=rotated.body["refresh_token"]).status == 401


def past_the_grace(session) -> None:
    """As if every token revoked so far had been revoked a minute ago: past the grace for reuse."""
    session.execute(update(RevokedToken).values(revoked_at=utcnow() - timedelta(minutes=1)))
    session.commit()


@pytest.mark.postgres  # concurrent writes from several processes: SQLite answers 503 ("database is locked")
def test_one_refresh_token_spent_on_both_instances_at_once_gives_each_a_pair_and_revokes_nothing(a, b):
    tokens = sign_in(fresh_email("ada"), ask=a, verify=b)

    answers = at_once(
        [a, b, a, b],
        lambda instance, connection: instance.post(REFRESH, token=tokens["refresh_token"], connection=connection),
    )

    assert [answer.status for answer in answers] == [200] * 4, [answer.body for answer in answers]
    for answer in answers:  # within the grace: the tabs all stay signed in, wherever they refreshed
        assert b.post(REFRESH, token=answer.body["refresh_token"]).status == 200
        assert a.get(ME, token=answer.body["access_token"]).status == 200


@pytest.mark.postgres  # concurrent writes from several processes: SQLite answers 503 ("database is locked")
def test_one_refresh_token_spent_on_both_instances_past_the_grace_revokes_them_all(a, b, session):
    tokens = sign_in(fresh_email("ada"), ask=a, verify=b)
    rotated = a.post(REFRESH, token=tokens["refresh_token"])
    past_the_grace(session)

    answers = at_once(
        [a, b],
        lambda instance, connection: instance.post(REFRESH, token=tokens["refresh_token"], connection=connection),
    )

    assert [answer.status for answer in answers] == [401, 401], [answer.body for answer in answers]
    assert b.post(REFRESH, token=rotated.body["refresh_token"]).status == 401
    assert a.get(ME, token=rotated.body["access_token"]).status == 200  # access tokens live out their 15 minutes


def test_deactivating_a_user_on_one_instance_locks_them_out_on_the_other(a, b, session, test_engine):
    admin_email, ada_email = fresh_email("admin"), fresh_email("ada")
    AdminFactory(email=admin_email)
    admin = sign_in(admin_email, ask=a, verify=a)
    ada = sign_in(ada_email, ask=b, verify=b)
    assert b.get(ME, token=ada["access_token"]).status == 200

    path = f"/api/v1/admin/users/{ada['user']['id']}"
    assert a.call("PATCH", path, {"is_active": False}, token=admin["access_token"]).status == 200

    assert b.get(ME, token=ada["access_token"]).status == 401
    assert b.post(REFRESH, token=ada["refresh_token"]).status == 401
    codes_before = b.codes_for(ada_email)
    assert b.post(REQUEST, {"email": ada_email}).status == 202  # the same answer as ever...
    wait_for_jobs(test_engine)
    assert b.codes_for(ada_email) == codes_before  # ...but no code


# --- the Stripe webhook ---------------------------------------------------------------------


@pytest.mark.postgres  # concurrent writes from several processes: SQLite answers 503 ("database is locked")
def test_one_event_delivered_to_both_instances_at_once_is_applied_once(a, b, session):
    buyer = sign_in(fresh_email("buyer"), ask=a, verify=b)
    product = ProductFactory(store=StoreFactory(currency="usd"), price=1500, stock=10)
    rounds, senders = 3, 8  # each event: 4 deliveries to A and 4 to B, released together

    for _ in range(rounds):
        body = {"items": [{"product_id": product.id, "quantity": 2}], "shipping_address": shipping_address()}
        order = a.post("/api/v1/orders", body, token=buyer["access_token"])
        assert order.status == 201, order.body
        payment = PaymentFactory(
            order_id=order.body["id"], user_id=order.body["buyer_id"], amount=order.body["total"], currency="usd"
        )
        event = intent_event(payment, "succeeded")
        payload, signature = sign_stripe_event(event)

        answers = at_once(
            [a, b] * (senders // 2),
            lambda instance, connection, payload=payload, signature=signature: instance.post(
                WEBHOOK, payload, headers={"Stripe-Signature": signature}, connection=connection
            ),
        )

        assert [answer.status for answer in answers] == [200] * senders, [answer.body for answer in answers]
        assert [answer.body["duplicate"] for answer in answers].count(False) == 1
        assert {answer.body["outcome"] for answer in answers} == {"applied"}
        audits = session.execute(
            select(PaymentEventAudit.outcome, PaymentEventAudit.deliveries, PaymentEventAudit.payment_id).where(
                PaymentEventAudit.stripe_event_id == event["id"]
            )
        ).all()
        assert audits == [("applied", senders, payment.id)]
        assert session.execute(
            select(Payment.status, Payment.amount, Payment.amount_refunded).where(Payment.id == payment.id)
        ).one() == ("succeeded", order.body["total"], 0)
        seen = b.get(f"/api/v1/orders/{order.body['id']}", token=buyer["access_token"]).body
        assert (seen["status"], seen["total"], seen["paid_at"] is not None) == ("paid", 3000, True)

    assert session.scalar(select(func.count()).select_from(PaymentEventAudit)) == rounds
    assert session.scalar(select(func.count()).select_from(Order).where(Order.status == "paid")) == rounds
    assert session.scalar(select(Product.available).where(Product.id == product.id)) == 10 - 2 * rounds
