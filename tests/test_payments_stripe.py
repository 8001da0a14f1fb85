"""Payments end to end against localstripe: the app creates the intent, the test pays it at
"Stripe" with a test card as Stripe.js would, localstripe delivers its signed webhook to the
app served on a local port, and the order is paid. Also refunds, reconciliation, replays,
Stripe being down, and races."""

import json
import urllib.error
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select, text, update

from nexus import create_app
from nexus.database import utcnow
from nexus.orders.models import Order
from nexus.payments.models import Payment, PaymentEventAudit, Refund
from nexus.stores.models import Product
from tests.conftest import all_at_once, app_environ, eventually, expire_stale, free_port, run_command
from tests.factories import PaymentFactory
from tests.stripe_helpers import (
    DECLINED_CARD,
    AnsweringStripe,
    DownWebhook,
    charge_at_stripe,
    deliver,
    fail_authentication_at_stripe,
    intent_at_stripe,
    intent_event,
    pay_at_stripe,
    refund_event,
    refunds_at_stripe,
    register_webhook,
)


@pytest.fixture(scope="module", autouse=True)
def webhook(localstripe, live_server) -> str:
    """localstripe delivers its signed events to the app's webhook."""
    url = f"{live_server}/api/v1/webhooks/stripe"
    register_webhook(localstripe, url)
    return url


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
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 4


def test_an_order_whose_payment_is_processing_cannot_be_cancelled(client, buyer, order, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    session.execute(update(Payment).where(Payment.id == payment["id"]).values(status="processing"))

    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert response.status_code == 409
    assert "processing" in response.get_json()["message"]
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def payment_being_started(order: dict) -> Payment:
    """A payment row whose PaymentIntent is not made yet (its request is at Stripe, or died there)."""
    return PaymentFactory(
        order_id=order["id"], user_id=order["buyer_id"], amount=3000, currency="usd", provider_payment_id=None
    )


def test_an_order_whose_payment_is_being_started_cannot_be_cancelled_yet(client, buyer, order, teapot, session):
    payment = payment_being_started(order)

    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert response.status_code == 409
    assert "being started" in response.get_json()["message"]
    assert order_as(client, buyer, order)["status"] == "pending_payment"
    assert session.scalar(select(Payment.status).where(Payment.id == payment.id)) == "pending"
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 2


def test_an_order_whose_payment_start_was_abandoned_is_cancelled_with_it(client, buyer, order, teapot, session):
    payment = payment_being_started(order)

    with time_machine.travel(utcnow() + timedelta(minutes=2)):
        response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert (response.status_code, response.get_json()["status"]) == (200, "cancelled")
    assert session.scalar(select(Payment.status).where(Payment.id == payment.id)) == "canceled"
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 4


def test_a_payment_whose_start_was_cut_short_is_started_again_with_its_intent(client, buyer, order, session):
    orphan = payment_being_started(order)
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
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 4
    assert refund(client, admin, succeeded).status_code == 409
    assert [(e["action"], e["target_id"], e["before"], e["after"]) for e in audit_log(client, admin)] == [
        ("payment.refund", succeeded["id"], {"status": "partially_refunded", "amount_refunded": 1000},
         {"status": "refunded", "amount_refunded": 3000}),
        ("payment.refund", succeeded["id"], {"status": "succeeded", "amount_refunded": 0},
         {"status": "partially_refunded", "amount_refunded": 1000}),
    ]  # fmt: skip


def test_the_refund_webhook_after_a_refund_changes_nothing(client, admin, succeeded, session):
    assert refund(client, admin, succeeded).status_code == 200

    response = deliver(client, refund_event(succeeded, 3000))

    assert response.get_json()["outcome"] == "duplicate"
    assert session.scalar(select(Payment.amount_refunded).where(Payment.id == succeeded["id"])) == 3000


def test_refunds_are_for_admins_and_succeeded_payments(client, admin, buyer, order):
    pending = start_payment(client, buyer, order).get_json()["payment"]

    assert refund(client, buyer, pending).status_code == 403
    assert refund(client, admin, pending).status_code == 409
    assert client.post("/api/v1/admin/payments/999999/refund", headers=admin.headers, json={}).status_code == 404


@pytest.fixture
def paid_without_a_charge(order, session) -> Payment:
    """A succeeded payment of the order (paid) whose intent localstripe never saw."""
    session.execute(update(Order).where(Order.id == order["id"]).values(status="paid", paid_at=utcnow()))
    return PaymentFactory(
        order_id=order["id"], user_id=order["buyer_id"], amount=3000, currency="usd", status="succeeded"
    )


def payment_row(session, payment: Payment) -> tuple[str, int]:
    return session.execute(select(Payment.status, Payment.amount_refunded).where(Payment.id == payment.id)).one()


def test_without_a_stripe_key_a_refund_is_a_503_and_nothing_changes(
    client, database_url, admin, paid_without_a_charge, session
):
    unconfigured = create_app(app_environ(database_url)).test_client()

    response = refund(unconfigured, admin, {"id": paid_without_a_charge.id})

    assert response.status_code == 503
    assert "STRIPE_SECRET_KEY" in response.get_json()["message"]
    assert payment_row(session, paid_without_a_charge) == ("succeeded", 0)
    assert audit_log(client, admin) == []


def test_a_refund_stripe_refuses_is_a_409_with_its_reason_and_the_payment_is_read_back(
    client, admin, buyer, order, localstripe, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    with pytest.raises(urllib.error.HTTPError):
        pay_at_stripe(localstripe, payment["provider_payment_id"], card=DECLINED_CARD)
    eventually(lambda: order_as(client, buyer, order)["payment_status"] == "failed")
    # A success Stripe never had (a forged or mistaken event, signed with our secret): we think it paid.
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"

    response = refund(client, admin, payment)

    assert response.status_code == 409
    assert response.get_json()["message"] == "Stripe refused to refund the payment: Cannot refund a failed payment."
    assert payment_row(session, Payment(id=payment["id"])) == ("succeeded", 0)
    read_back = session.scalars(
        select(PaymentEventAudit).where(
            PaymentEventAudit.payment_id == payment["id"], PaymentEventAudit.source == "reconcile"
        )
    ).one()
    assert read_back.type == "payment_intent.payment_failed"
    assert audit_log(client, admin) == []


def stripe_at(database_url: str, url: str) -> Flask:
    """The app configured for the Stripe API at `url`."""
    return create_app(app_environ(database_url, STRIPE_SECRET_KEY="sk_test_nexus", STRIPE_API_BASE=url))


def stripe_down(database_url: str) -> Flask:
    """The app configured for a Stripe that does not answer (a port nothing listens on)."""
    return stripe_at(database_url, f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize(
    ("status", "answer", "says"),
    [
        (400, 409, "Stripe refused to start the payment: Amount must be at least 50 cents."),
        (500, 502, "Stripe failed to start the payment; try again shortly."),
    ],
    ids=["refused", "failing"],
)
def test_stripe_refusing_to_start_a_payment_is_a_409_and_failing_a_502_and_nothing_changes(
    client, database_url, buyer, order, session, status, answer, says
):
    stripe = AnsweringStripe(status, "Amount must be at least 50 cents")
    try:
        response = (
            stripe_at(database_url, stripe.url)
            .test_client()
            .post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)
        )
    finally:
        stripe.close()

    assert (response.status_code, response.get_json()["message"]) == (answer, says)
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def test_when_stripe_is_down_paying_is_a_502_and_nothing_changes(client, database_url, buyer, order, session):
    response = (
        stripe_down(database_url).test_client().post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)
    )

    assert response.status_code == 502
    assert "Stripe could not be reached" in response.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def test_when_stripe_is_down_a_refund_is_a_502_and_nothing_changes(database_url, admin, succeeded, session):
    response = refund(stripe_down(database_url).test_client(), admin, succeeded)

    assert response.status_code == 502
    assert session.scalar(select(Payment.status).where(Payment.id == succeeded["id"])) == "succeeded"


def test_a_refund_stripe_never_received_is_made_once_when_asked_again(
    client, database_url, admin, succeeded, localstripe, session
):
    assert refund(stripe_down(database_url).test_client(), admin, succeeded, amount=1000).status_code == 502

    again = refund(client, admin, succeeded, amount=1000)  # looked for at Stripe first: never made

    assert again.status_code == 200 and again.get_json()["amount_refunded"] == 1000
    assert [r["amount"] for r in refunds_at_stripe(localstripe, succeeded["provider_payment_id"])] == [1000]
    noted = session.execute(select(Refund.amount, Refund.status).order_by(Refund.id)).all()
    assert [tuple(row) for row in noted] == [(1000, "not_made"), (1000, "made")]


def test_asking_for_the_rest_after_a_lost_refund_counts_the_lost_one_and_refunds_what_is_left(
    client, admin, succeeded, localstripe, stripe_connect
):
    stripe_connect.lose_answers_to("refunds.create", 3)  # made at Stripe; no answer comes back
    assert refund(client, admin, succeeded, amount=1000).status_code == 502
    stripe_connect.forget_idempotency_keys()

    rest = refund(client, admin, succeeded)
    again = refund(client, admin, succeeded)  # nothing is left to refund

    assert (rest.status_code, rest.get_json()["amount_refunded"], rest.get_json()["status"]) == (200, 3000, "refunded")
    assert sorted(r["amount"] for r in refunds_at_stripe(localstripe, succeeded["provider_payment_id"])) == [1000, 2000]
    assert again.status_code == 409


def test_when_stripe_is_down_cancelling_a_paying_order_is_a_502_and_nothing_changes(
    client, database_url, buyer, order, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    response = (
        stripe_down(database_url).test_client().post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)
    )

    assert response.status_code == 502
    assert order_as(client, buyer, order)["status"] == "pending_payment"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "pending"


def test_without_a_stripe_key_paying_is_a_503(database_url, buyer, order):
    app = create_app(app_environ(database_url))

    response = app.test_client().post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    assert response.status_code == 503
    assert "STRIPE_SECRET_KEY" in response.get_json()["message"]


@pytest.fixture
def lost_webhooks(localstripe, webhook) -> Iterator[DownWebhook]:
    """Stripe's webhooks go to an endpoint that is down (it answers 503) while the test runs."""
    down = DownWebhook()
    register_webhook(localstripe, down.url)
    yield down
    register_webhook(localstripe, webhook)
    down.close()


def reconcile(app, *, after_minutes: float, exit_code: int = 0) -> str:
    return run_command(app, "payments", "reconcile", after_minutes=after_minutes, exit_code=exit_code)


def test_reconcile_settles_a_payment_whose_webhook_was_lost(
    app, client, buyer, order, localstripe, lost_webhooks, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    eventually(lambda: lost_webhooks.received("payment_intent.succeeded", payment["provider_payment_id"]))
    assert order_as(client, buyer, order)["status"] == "pending_payment"

    assert "0 changed" in reconcile(app, after_minutes=2)  # too recent to chase yet
    output = reconcile(app, after_minutes=6)

    assert f"payment {payment['id']}: payment_intent.succeeded applied" in output
    assert order_as(client, buyer, order)["status"] == "paid"
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == payment["id"])).one()
    assert (audit.source, audit.outcome) == ("reconcile", "applied")
    charge_id = charge_at_stripe(localstripe, payment["provider_payment_id"])
    assert session.get(Payment, payment["id"]).charge_id == charge_id  # its sellers' transfers come from it
    assert audit.payload["data"]["object"]["latest_charge"] == charge_id  # as Stripe sends it: not expanded
    assert "checked 0 payments" in reconcile(app, after_minutes=7)


def test_when_stripe_is_down_reconcile_reports_the_payment_unread_and_changes_nothing(
    client, database_url, buyer, order, session
):
    payment = PaymentFactory(order_id=order["id"], user_id=order["buyer_id"], amount=3000, currency="usd")

    output = reconcile(stripe_down(database_url), after_minutes=6, exit_code=1)

    assert f"payment {payment.id}: not read from Stripe (Stripe could not be reached" in output
    assert "checked 1 payments" in output and "1 could not be read" in output
    assert payment_row(session, payment) == ("pending", 0)
    assert order_as(client, buyer, order)["status"] == "pending_payment"
    assert session.scalar(select(func.count()).select_from(PaymentEventAudit)) == 0


def test_replaying_an_applied_event_changes_nothing_and_is_recorded(
    client, admin, buyer, order, teapot, succeeded, session
):
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == succeeded["id"])).one()

    response = client.post(f"/api/v1/admin/payment-events/{audit.id}/replay", headers=admin.headers)

    assert response.status_code == 200
    replayed = response.get_json()
    assert (replayed["id"], replayed["outcome"], replayed["replays"]) == (audit.id, "duplicate", 1)
    assert order_as(client, buyer, order)["status"] == "paid"
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 2
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
    answers = all_at_once(app, [lambda c: start_payment(c, buyer, order)] * 8)

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[201] == 1 and set(statuses) <= {200, 201, 409}
    assert session.scalar(select(func.count()).select_from(Payment)) == 1
    assert {a.get_json()["payment"]["id"] for a in answers if a.status_code in (200, 201)} == {
        session.scalar(select(Payment.id))
    }


@pytest.mark.postgres
def test_two_refunds_at_once_take_turns_and_both_count(app, client, admin, buyer, order, succeeded, session):
    answers = all_at_once(
        app, [lambda c, amount=amount: refund(c, admin, succeeded, amount=amount) for amount in (1000, 2000)]
    )

    assert [answer.status_code for answer in answers] == [200, 200]
    refunded = session.execute(select(Payment.status, Payment.amount_refunded).where(Payment.id == succeeded["id"]))
    assert refunded.one() == ("refunded", 3000)
    assert order_as(client, buyer, order)["status"] == "refunded"
    assert sorted(entry["after"]["amount_refunded"] for entry in audit_log(client, admin)) in (
        [1000, 3000],
        [2000, 3000],
    )


def test_expiring_an_order_cancels_its_unconfirmed_payment_at_stripe(app, client, buyer, order, localstripe, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    assert "expired 1 orders" in expire_stale(app, after_minutes=31)

    assert order_as(client, buyer, order)["status"] == "expired"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "canceled"
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "canceled"


def test_when_stripe_cannot_cancel_its_payment_an_order_does_not_expire(
    client, database_url, buyer, order, teapot, localstripe, session
):
    payment = start_payment(client, buyer, order).get_json()["payment"]

    output = expire_stale(stripe_down(database_url), after_minutes=31, exit_code=1)

    assert "expired 0 orders" in output and "1 could not be expired" in output

    assert order_as(client, buyer, order)["status"] == "pending_payment"
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 2
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "pending"
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "requires_payment_method"


def test_an_order_whose_payment_is_processing_does_not_expire(app, client, buyer, order, session):
    payment = start_payment(client, buyer, order).get_json()["payment"]
    assert deliver(client, intent_event(payment, "processing")).get_json()["outcome"] == "applied"

    assert "expired 0 orders" in expire_stale(app, after_minutes=31)
    assert order_as(client, buyer, order)["status"] == "pending_payment"


# --- a declined card stays payable, as at Stripe ----------------------------------------------


def declined_at_stripe(client, buyer, order: dict, localstripe: str) -> tuple[dict, str]:
    """The order's payment, its first card declined at Stripe: `(payment, client secret)`. The
    card fails 3-D Secure, which leaves the intent payable with another card, and Stripe's
    `payment_intent.payment_failed` is delivered (localstripe keeps a card decline's intent
    unpayable, which Stripe does not, and sends no event for a failed authentication)."""
    started = start_payment(client, buyer, order).get_json()
    payment, secret = started["payment"], started["client_secret"]
    fail_authentication_at_stripe(localstripe, payment["provider_payment_id"], secret)
    decline = intent_event(payment, "requires_payment_method", event_type="payment_failed")
    assert deliver(client, decline).get_json()["outcome"] == "applied"
    assert order_as(client, buyer, order)["payment_status"] == "failed"
    return payment, secret


def test_a_declined_card_then_another_card_on_the_same_intent_pays_the_order(client, buyer, order, localstripe):
    payment, _ = declined_at_stripe(client, buyer, order, localstripe)

    pay_at_stripe(localstripe, payment["provider_payment_id"])  # Stripe.js: another card, the same client secret

    settled = eventually(lambda: (o := order_as(client, buyer, order))["status"] == "paid" and o)
    assert settled["payment_status"] == "succeeded"


def test_cancelling_an_order_after_a_decline_cancels_the_declined_intent_at_stripe(
    client, buyer, order, localstripe, session
):
    payment, _ = declined_at_stripe(client, buyer, order, localstripe)

    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)

    assert (response.status_code, response.get_json()["status"]) == (200, "cancelled")
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "canceled"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "canceled"
    with pytest.raises(urllib.error.HTTPError):  # the page still holding the secret pays nothing
        pay_at_stripe(localstripe, payment["provider_payment_id"])


def test_expiring_an_order_after_a_decline_cancels_the_declined_intent_at_stripe(
    app, client, buyer, order, localstripe, session
):
    payment, _ = declined_at_stripe(client, buyer, order, localstripe)

    assert "expired 1 orders" in expire_stale(app, after_minutes=31)

    assert order_as(client, buyer, order)["status"] == "expired"
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "canceled"
    assert session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "canceled"


def test_reconcile_settles_a_declined_payment_another_card_paid_while_webhooks_were_lost(
    app, client, buyer, order, localstripe, lost_webhooks
):
    payment, _ = declined_at_stripe(client, buyer, order, localstripe)
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    eventually(lambda: lost_webhooks.received("payment_intent.succeeded", payment["provider_payment_id"]))
    assert order_as(client, buyer, order)["status"] == "pending_payment"

    output = reconcile(app, after_minutes=6)

    assert f"payment {payment['id']}: payment_intent.succeeded applied" in output
    assert order_as(client, buyer, order)["status"] == "paid"


# --- paying and cancelling at the same moment, on Postgres ------------------------------------


def wait_for_lock_waits(test_engine, count: int) -> None:
    """Until `count` sessions of the app wait for a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with test_engine.connect() as connection:
        eventually(lambda: connection.execute(query).scalar() >= count)


@pytest.mark.postgres
def test_a_cancel_racing_a_payment_start_never_leaves_a_payable_intent_for_a_cancelled_order(
    app, buyer, order, localstripe, test_engine, session
):
    holder = test_engine.connect().execution_options(isolation_level="READ COMMITTED")
    with holder, ThreadPoolExecutor(max_workers=2) as pool:
        hold = holder.begin()  # both requests queue behind this lock on the order, then go at once
        holder.execute(text("SELECT id FROM orders WHERE id = :id FOR UPDATE"), {"id": order["id"]})
        paying = pool.submit(start_payment, app.test_client(), buyer, order)
        wait_for_lock_waits(test_engine, 1)
        cancelling = pool.submit(
            lambda: app.test_client().post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)
        )
        wait_for_lock_waits(test_engine, 2)
        hold.rollback()
        paid, cancelled = paying.result(timeout=30), cancelling.result(timeout=30)

    assert {paid.status_code, cancelled.status_code} <= {200, 201, 409}
    status = session.scalar(select(Order.status).where(Order.id == order["id"]))
    assert status == ("cancelled" if cancelled.status_code == 200 else "pending_payment")
    if status == "cancelled" and paid.status_code in (200, 201):
        intent = paid.get_json()["payment"]["provider_payment_id"]
        assert intent_at_stripe(localstripe, intent)["status"] == "canceled", "a live secret for a cancelled order"
    for intent in session.scalars(select(Payment.provider_payment_id).where(Payment.provider_payment_id.is_not(None))):
        live = intent_at_stripe(localstripe, intent)["status"] != "canceled"
        assert not (live and status == "cancelled")


# --- client secrets are handed to the buyer only ------------------------------------------------


def redeliver(client, events: list[dict]) -> None:
    """Deliver again, signed, what Stripe sent while the webhook was down (Stripe's retries)."""
    for event in events:
        assert deliver(client, event).status_code == 200


def test_no_client_secret_is_stored_or_shown_to_admins(
    app, client, admin, buyer, order, localstripe, lost_webhooks, session
):
    started = start_payment(client, buyer, order).get_json()
    secret, intent = started["client_secret"], started["payment"]["provider_payment_id"]
    pay_at_stripe(localstripe, intent)
    eventually(lambda: lost_webhooks.received("payment_intent.succeeded", intent))
    reconcile(app, after_minutes=6)  # stores the intent as read from Stripe
    assert refund(client, admin, started["payment"], amount=1000).status_code == 200
    redeliver(client, list(lost_webhooks.events))  # Stripe's own payload, which carries the secret

    stored = [json.dumps(payload) for payload in session.scalars(select(PaymentEventAudit.payload))]
    assert len(stored) == 2 and any('"client_secret"' in json.dumps(e) for e in lost_webhooks.events)
    assert not [payload for payload in stored if secret in payload or "client_secret" in payload]
    payment_id, event_ids = started["payment"]["id"], session.scalars(select(PaymentEventAudit.id)).all()
    answers = [
        client.get(path, headers=admin.headers)
        for path in (
            "/api/v1/admin/payments",
            f"/api/v1/admin/payments/{payment_id}",
            "/api/v1/admin/payment-events",
            "/api/v1/admin/orders",
            "/api/v1/admin/audit-log",
            f"/api/v1/orders/{order['id']}",
        )
    ] + [
        client.post(f"/api/v1/admin/payment-events/{event_id}/replay", headers=admin.headers) for event_id in event_ids
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.request.path
        assert secret not in answer.get_data(as_text=True) and "client_secret" not in answer.get_data(as_text=True)
