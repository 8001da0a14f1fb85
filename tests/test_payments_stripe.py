"""Payments end to end against localstripe: the app creates the intent, the test pays it at
"Stripe" with a test card as Stripe.js would, localstripe delivers its signed webhook to the
app served on a local port, and the order is paid. Also refunds, reconciliation, replays,
Stripe being down, and races."""

import json
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from nexus import create_app
from nexus.database import utcnow
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product
from nexus.users.models import User
from tests.conftest import STRIPE_WEBHOOK_SECRET, app_environ, free_port, sign_stripe_event
from tests.factories import PaymentFactory, ProductFactory, StoreFactory

GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000341"


def stripe_post(localstripe: str, path: str, **form: str) -> dict:
    """A call to localstripe as Stripe.js (or the dashboard) would make it."""
    request = urllib.request.Request(
        f"{localstripe}{path}",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": "Bearer sk_test_nexus"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


def pay_at_stripe(localstripe: str, intent_id: str, card: str = GOOD_CARD) -> None:
    """What the buyer's browser does with the client secret: a card, then confirm."""
    card_details = {"card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2034", "card[cvc]": "123"}
    method = stripe_post(localstripe, "/v1/payment_methods", type="card", **card_details)
    stripe_post(localstripe, f"/v1/payment_intents/{intent_id}", payment_method=method["id"])
    stripe_post(localstripe, f"/v1/payment_intents/{intent_id}/confirm")


def intent_at_stripe(localstripe: str, intent_id: str) -> dict:
    request = urllib.request.Request(
        f"{localstripe}/v1/payment_intents/{intent_id}", headers={"Authorization": "Bearer sk_test_nexus"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def register_webhook(localstripe: str, url: str) -> None:
    stripe_post(localstripe, "/_config/webhooks/nexus", url=url, secret=STRIPE_WEBHOOK_SECRET)


@pytest.fixture(scope="module", autouse=True)
def webhook(localstripe, live_server) -> Iterator[str]:
    """localstripe delivers its signed events to the app's webhook."""
    url = f"{live_server}/api/v1/webhooks/stripe"
    register_webhook(localstripe, url)
    return url


def eventually(check, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.1)
    return result


@pytest.fixture
def buyer(sign_in):
    return sign_in("buyer@example.com")


@pytest.fixture
def teapot(owner, session) -> Product:
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    return ProductFactory(store=store, price=1500, stock=4)


@pytest.fixture
def order(client, buyer, teapot) -> dict:
    response = client.post(
        "/api/v1/orders", headers=buyer.headers, json={"items": [{"product_id": teapot.id, "quantity": 2}]}
    )
    return response.get_json()


def start_payment(client, who, order: dict):
    return client.post(f"/api/v1/orders/{order['id']}/payment", headers=who.headers)


def order_as(client, who, order: dict) -> dict:
    return client.get(f"/api/v1/orders/{order['id']}", headers=who.headers).get_json()


def test_a_card_payment_end_to_end_pays_the_order(client, buyer, order, localstripe, session):
    response = start_payment(client, buyer, order)

    assert response.status_code == 201
    started = response.get_json()
    payment = started["payment"]
    assert (payment["status"], payment["amount"], payment["currency"], payment["order_id"]) == (
        "pending",
        3000,
        "usd",
        order["id"],
    )
    assert payment["provider_payment_id"].startswith("pi_") and started["client_secret"].startswith(
        payment["provider_payment_id"]
    )

    pay_at_stripe(localstripe, payment["provider_payment_id"])

    settled = eventually(lambda: (o := order_as(client, buyer, order))["status"] == "paid" and o)
    assert settled["payment_status"] == "succeeded"
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == payment["id"])).one()
    assert (audit.source, audit.type, audit.outcome) == ("webhook", "payment_intent.succeeded", "applied")


def test_asking_again_returns_the_open_payment(client, buyer, order, session):
    first = start_payment(client, buyer, order)
    again = start_payment(client, buyer, order)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert session.scalar(select(func.count()).select_from(Payment)) == 1


def test_only_the_buyer_pays_and_only_an_unpaid_order(client, buyer, owner, stranger, order, localstripe):
    assert start_payment(client, owner, order).status_code == 403
    assert start_payment(client, stranger, order).status_code == 404
    pay_at_stripe(localstripe, start_payment(client, buyer, order).get_json()["payment"]["provider_payment_id"])
    eventually(lambda: order_as(client, buyer, order)["status"] == "paid")

    response = start_payment(client, buyer, order)

    assert response.status_code == 409
    assert "The order is paid" in response.get_json()["message"]


def test_a_declined_card_fails_the_payment_and_the_buyer_can_try_again(client, buyer, order, localstripe):
    first = start_payment(client, buyer, order).get_json()["payment"]

    with pytest.raises(urllib.error.HTTPError):  # Stripe.js shows the decline to the buyer
        pay_at_stripe(localstripe, first["provider_payment_id"], card=DECLINED_CARD)

    eventually(lambda: order_as(client, buyer, order)["payment_status"] == "failed")
    assert order_as(client, buyer, order)["status"] == "pending_payment"
    retry = start_payment(client, buyer, order)
    assert retry.status_code == 201
    assert retry.get_json()["payment"]["id"] != first["id"]
    # The declined intent is closed: a page still holding its secret cannot pay it now.
    assert intent_at_stripe(localstripe, first["provider_payment_id"])["status"] == "canceled"


def test_cancelling_an_order_cancels_its_payment_at_stripe(client, buyer, order, teapot, localstripe, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert (response.status_code, response.get_json()["status"]) == (200, "cancelled")
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "canceled"
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "canceled"
    with pytest.raises(urllib.error.HTTPError):  # the old client secret pays nothing
        pay_at_stripe(localstripe, payment["provider_payment_id"])
    assert session.scalar(select(Product.stock).where(Product.id == teapot.id)) == 4


def test_an_order_whose_payment_is_processing_cannot_be_cancelled(client, buyer, order, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    session.execute(update(Payment).where(Payment.id == payment["id"]).values(status="processing"))

    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert response.status_code == 409
    assert "processing" in response.get_json()["message"]
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def test_a_payment_whose_start_was_cut_short_is_started_again_with_its_intent(client, buyer, order, session):
    orphan = PaymentFactory(
        order_id=order["id"], user_id=order["buyer_id"], amount=3000, currency="usd", provider_payment_id=None
    )
    assert start_payment(client, buyer, order).status_code == 409  # maybe still being started

    with time_machine.travel(utcnow() + timedelta(minutes=2)):
        response = start_payment(client, buyer, order)

    assert response.status_code == 201
    started = response.get_json()
    assert started["payment"]["id"] == orphan.id
    assert started["client_secret"].startswith(started["payment"]["provider_payment_id"])


@pytest.fixture
def succeeded(client, buyer, order, localstripe) -> dict:
    """The order paid by card; its payment."""
    payment = start_payment(client, buyer, order).get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    eventually(lambda: order_as(client, buyer, order)["status"] == "paid")
    return payment


def refund(client, who, payment: dict, **body):
    return client.post(f"/api/v1/admin/payments/{payment['id']}/refund", headers=who.headers, json=body)


def audit_log(client, admin) -> list[dict]:
    return client.get("/api/v1/admin/audit-log", headers=admin.headers).get_json()["items"]


def test_admins_refund_in_part_then_in_full_through_stripe(client, admin, buyer, order, teapot, succeeded, session):
    partial = refund(client, admin, succeeded, amount=1000)

    assert partial.status_code == 200
    assert (partial.get_json()["status"], partial.get_json()["amount_refunded"]) == ("partially_refunded", 1000)
    too_much = refund(client, admin, succeeded, amount=2001)
    assert too_much.status_code == 422
    assert "amount" in too_much.get_json()["errors"]["json"]

    rest = refund(client, admin, succeeded)

    assert (rest.get_json()["status"], rest.get_json()["amount_refunded"]) == ("refunded", 3000)
    assert order_as(client, buyer, order)["status"] == "refunded"
    assert session.scalar(select(Product.stock).where(Product.id == teapot.id)) == 4
    assert refund(client, admin, succeeded).status_code == 409
    assert [(e["action"], e["target_id"], e["before"], e["after"]) for e in audit_log(client, admin)] == [
        ("payment.refund", succeeded["id"], {"status": "partially_refunded", "amount_refunded": 1000},
         {"status": "refunded", "amount_refunded": 3000}),
        ("payment.refund", succeeded["id"], {"status": "succeeded", "amount_refunded": 0},
         {"status": "partially_refunded", "amount_refunded": 1000}),
    ]  # fmt: skip


def test_the_refund_webhook_after_a_refund_changes_nothing(client, admin, succeeded, session):
    refund(client, admin, succeeded)
    charge = {"id": "ch_x", "object": "charge", "payment_intent": succeeded["provider_payment_id"],
              "amount": 3000, "amount_refunded": 3000, "currency": "usd", "refunded": True}  # fmt: skip
    payload, signature = sign_stripe_event(
        {"id": "evt_refund_late", "type": "charge.refunded", "data": {"object": charge}}
    )

    response = client.post("/api/v1/webhooks/stripe", data=payload, headers={"Stripe-Signature": signature})

    assert response.get_json()["outcome"] == "duplicate"
    assert session.scalar(select(Payment.amount_refunded).where(Payment.id == succeeded["id"])) == 3000


def test_refunds_are_for_admins_and_succeeded_payments(client, admin, buyer, order):
    pending = start_payment(client, buyer, order).get_json()["payment"]

    assert refund(client, buyer, pending).status_code == 403
    assert refund(client, admin, pending).status_code == 409
    assert client.post("/api/v1/admin/payments/999999/refund", headers=admin.headers, json={}).status_code == 404


def stripe_down(database_url: str):
    """A client of the app configured for a Stripe that does not answer."""
    environ = app_environ(
        database_url, STRIPE_SECRET_KEY="sk_test_nexus", STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"
    )
    return create_app(environ).test_client()


def test_when_stripe_is_down_paying_is_a_502_and_nothing_changes(client, database_url, buyer, order, session):
    response = stripe_down(database_url).post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    assert response.status_code == 502
    assert "Stripe could not be reached" in response.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def test_when_stripe_is_down_a_refund_is_a_502_and_nothing_changes(database_url, admin, succeeded, session):
    response = refund(stripe_down(database_url), admin, succeeded)

    assert response.status_code == 502
    assert session.scalar(select(Payment.status).where(Payment.id == succeeded["id"])) == "succeeded"


def test_when_stripe_is_down_cancelling_a_paying_order_is_a_502_and_nothing_changes(
    client, database_url, buyer, order, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    response = stripe_down(database_url).post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert response.status_code == 502
    assert order_as(client, buyer, order)["status"] == "pending_payment"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "pending"


def test_without_a_stripe_key_paying_is_a_503(database_url, buyer, order):
    app = create_app(app_environ(database_url))

    response = app.test_client().post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    assert response.status_code == 503
    assert "STRIPE_SECRET_KEY" in response.get_json()["message"]


@pytest.fixture
def lost_webhooks(localstripe, webhook) -> Iterator[None]:
    """Stripe's webhooks go nowhere while the test runs."""
    register_webhook(localstripe, f"http://127.0.0.1:{free_port()}/lost")
    yield
    register_webhook(localstripe, webhook)


def reconcile(app, *, after_minutes: float) -> str:
    with time_machine.travel(utcnow() + timedelta(minutes=after_minutes)):
        result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    return result.output


def test_reconcile_settles_a_payment_whose_webhook_was_lost(
    app, client, buyer, order, localstripe, lost_webhooks, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    time.sleep(1.5)  # localstripe has tried (and failed) to deliver by now
    assert order_as(client, buyer, order)["status"] == "pending_payment"

    assert "0 changed" in reconcile(app, after_minutes=2)  # too recent to chase yet
    output = reconcile(app, after_minutes=6)

    assert f"payment {payment['id']}: payment_intent.succeeded applied" in output
    assert order_as(client, buyer, order)["status"] == "paid"
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == payment["id"])).one()
    assert (audit.source, audit.outcome) == ("reconcile", "applied")
    assert "checked 0 open payments" in reconcile(app, after_minutes=7)


def test_replaying_an_applied_event_changes_nothing_and_is_recorded(
    client, admin, buyer, order, teapot, succeeded, session
):
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == succeeded["id"])).one()

    response = client.post(f"/api/v1/admin/payment-events/{audit.id}/replay", headers=admin.headers)

    assert response.status_code == 200
    replayed = response.get_json()
    assert (replayed["id"], replayed["outcome"], replayed["replays"]) == (audit.id, "duplicate", 1)
    assert order_as(client, buyer, order)["status"] == "paid"
    assert session.scalar(select(Product.stock).where(Product.id == teapot.id)) == 2
    assert client.post(f"/api/v1/admin/payment-events/{audit.id}/replay", headers=buyer.headers).status_code == 403
    assert client.post("/api/v1/admin/payment-events/999999/replay", headers=admin.headers).status_code == 404
    [entry] = audit_log(client, admin)
    assert (entry["action"], entry["target_type"], entry["target_id"]) == (
        "payment_event.replay",
        "payment_event",
        audit.id,
    )
    assert (entry["before"]["replays"], entry["after"]["replays"]) == (0, 1)


# --- races, on Postgres ---------------------------------------------------------------------


@pytest.mark.postgres
def test_eight_pay_requests_at_once_start_one_payment(app, buyer, order, session):
    start = threading.Barrier(8)

    def pay():
        client = app.test_client()
        start.wait()
        return client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: pay(), range(8)))

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[201] == 1 and set(statuses) <= {200, 201, 409}
    assert session.scalar(select(func.count()).select_from(Payment)) == 1
    assert {a.get_json()["payment"]["id"] for a in answers if a.status_code in (200, 201)} == {
        session.scalar(select(Payment.id))
    }


@pytest.mark.postgres
def test_two_refunds_at_once_take_turns_and_both_count(app, client, admin, buyer, order, succeeded, session):
    start = threading.Barrier(2)

    def refund_at_once(amount: int):
        each = app.test_client()
        start.wait()
        return refund(each, admin, succeeded, amount=amount)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(refund_at_once, (1000, 2000)))

    assert [answer.status_code for answer in answers] == [200, 200]
    refunded = session.execute(select(Payment.status, Payment.amount_refunded).where(Payment.id == succeeded["id"]))
    assert refunded.one() == ("refunded", 3000)
    assert order_as(client, buyer, order)["status"] == "refunded"
    assert sorted(entry["after"]["amount_refunded"] for entry in audit_log(client, admin)) in (
        [1000, 3000],
        [2000, 3000],
    )


def expire_stale(app, *, after_minutes: float) -> str:
    with time_machine.travel(utcnow() + timedelta(minutes=after_minutes)):
        result = app.test_cli_runner().invoke(args=["orders", "expire-stale"])
    assert result.exit_code == 0, result.output
    return result.output


def test_expiring_an_order_cancels_its_unconfirmed_payment_at_stripe(app, client, buyer, order, localstripe, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    assert "expired 1 orders" in expire_stale(app, after_minutes=31)

    assert order_as(client, buyer, order)["status"] == "expired"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "canceled"
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{localstripe}/v1/payment_intents/{payment['provider_payment_id']}",
            headers={"Authorization": "Bearer sk_test_nexus"},
        )
    ) as intent:
        assert json.load(intent)["status"] == "canceled"


def test_an_order_whose_payment_is_processing_does_not_expire(app, client, buyer, order, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    intent = {
        "id": payment["provider_payment_id"],
        "object": "payment_intent",
        "amount": 3000,
        "currency": "usd",
        "status": "processing",
    }
    payload, signature = sign_stripe_event(
        {"id": "evt_processing", "type": "payment_intent.processing", "data": {"object": intent}}
    )
    client.post("/api/v1/webhooks/stripe", data=payload, headers={"Stripe-Signature": signature})

    assert "expired 0 orders" in expire_stale(app, after_minutes=31)
    assert order_as(client, buyer, order)["status"] == "pending_payment"
