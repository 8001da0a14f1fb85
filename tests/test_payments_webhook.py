"""Stripe's webhook with events the tests sign themselves: forgeries refused, every event
stored once, applied once, in whatever order and however often it arrives."""

import time

import pytest
from sqlalchemy import select, update

from nexus import create_app
from nexus.orders.models import Order
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product
from tests.conftest import all_at_once, app_environ
from tests.factories import PaymentFactory
from tests.stripe_helpers import (
    CHARGE_ID,
    WEBHOOK,
    deliver,
    ignored_event,
    intent_event,
    refund_event,
    sign_stripe_event,
    sign_stripe_payload,
)


@pytest.fixture
def payment(order, session) -> Payment:
    return PaymentFactory(order_id=order["id"], user_id=order["buyer_id"], amount=order["total"], currency="usd")


def state(session, payment: Payment, order: dict) -> tuple[str, str]:
    return (
        session.scalar(select(Payment.status).where(Payment.id == payment.id)),
        session.scalar(select(Order.status).where(Order.id == order["id"])),
    )


def audit_of(session, event: dict) -> PaymentEventAudit:
    session.expire_all()
    return session.scalars(select(PaymentEventAudit).filter_by(stripe_event_id=event["id"])).one()


# --- forgeries ----------------------------------------------------------------------------


def test_a_missing_signature_is_a_400(client, payment):
    response = client.post(WEBHOOK, json=intent_event(payment, "succeeded"))

    assert response.status_code == 400
    assert "Stripe-Signature" in response.get_json()["message"]


def test_a_wrong_signature_is_a_400_and_changes_nothing(client, payment, order, session):
    response = deliver(client, intent_event(payment, "succeeded"), secret="whsec_someone_else")

    assert response.status_code == 400
    assert state(session, payment, order) == ("pending", "pending_payment")
    assert session.scalars(select(PaymentEventAudit)).all() == []


def test_a_signature_older_than_five_minutes_is_a_400(client, payment, order, session):
    response = deliver(client, intent_event(payment, "succeeded"), at=int(time.time()) - 301)

    assert response.status_code == 400
    assert state(session, payment, order) == ("pending", "pending_payment")


def test_a_body_changed_after_signing_is_a_400(client, payment, order, session):
    payload, signature = sign_stripe_event(intent_event(payment, "succeeded"))

    tampered = payload.replace(b'"amount": 3000', b'"amount": 1')
    response = client.post(WEBHOOK, data=tampered, headers={"Stripe-Signature": signature})

    assert tampered != payload
    assert response.status_code == 400
    assert state(session, payment, order) == ("pending", "pending_payment")


@pytest.mark.parametrize("body", [b"not json", b'{"id": "evt_cut', b""])
def test_a_signed_body_that_is_not_json_is_a_400_and_records_nothing(client, session, body):
    response = client.post(WEBHOOK, data=body, headers={"Stripe-Signature": sign_stripe_payload(body)})

    assert response.status_code == 400
    assert response.get_json()["message"] == "The body is not a Stripe event."
    assert session.scalars(select(PaymentEventAudit)).all() == []


def test_an_unsigned_garbage_body_is_a_400(client, session):
    response = client.post(WEBHOOK, data=b"\x00garbage", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "Stripe-Signature" in response.get_json()["message"]
    assert session.scalars(select(PaymentEventAudit)).all() == []


def test_without_a_webhook_secret_the_webhook_is_a_503(database_url, payment):
    app = create_app(app_environ(database_url))

    response = deliver(app.test_client(), intent_event(payment, "succeeded"))

    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in response.get_json()["message"]


# --- applying events ----------------------------------------------------------------------


def test_payment_succeeded_pays_the_order(client, buyer, payment, order, session):
    event = intent_event(payment, "succeeded")

    response = deliver(client, event)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "duplicate": False, "outcome": "applied"}
    assert state(session, payment, order) == ("succeeded", "paid")
    assert session.scalar(select(Payment.charge_id).where(Payment.id == payment.id)) == CHARGE_ID  # sellers' source
    seen = client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers).get_json()
    assert (seen["status"], seen["payment_status"]) == ("paid", "succeeded")
    assert seen["paid_at"] is not None
    audit = audit_of(session, event)
    assert (audit.type, audit.outcome, audit.payment_id, audit.deliveries, audit.source) == (
        "payment_intent.succeeded",
        "applied",
        payment.id,
        1,
        "webhook",
    )
    assert audit.processing_ms > 0


def test_the_same_event_twice_is_applied_once(client, payment, order, session):
    event = intent_event(payment, "succeeded")

    first, second = deliver(client, event), deliver(client, event)

    assert first.get_json()["duplicate"] is False
    assert second.status_code == 200
    assert second.get_json() == {"received": True, "duplicate": True, "outcome": "applied"}
    assert state(session, payment, order) == ("succeeded", "paid")
    assert audit_of(session, event).deliveries == 2


def test_news_of_a_state_already_reached_is_a_duplicate(client, payment, order, session):
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"

    again = deliver(client, intent_event(payment, "succeeded"))  # another event id, same news

    assert again.get_json() == {"received": True, "duplicate": False, "outcome": "duplicate"}
    assert state(session, payment, order) == ("succeeded", "paid")


def test_processing_after_succeeded_is_stale_and_ignored(client, payment, order, session):
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"

    late = deliver(client, intent_event(payment, "processing"))

    assert late.get_json()["outcome"] == "ignored"
    assert state(session, payment, order) == ("succeeded", "paid")


def test_processing_then_succeeded_is_applied_in_turn(client, payment, order, session):
    assert deliver(client, intent_event(payment, "processing")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("processing", "pending_payment")

    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("succeeded", "paid")


@pytest.mark.parametrize("changes", [{"amount": 2999}, {"currency": "eur"}])
def test_an_amount_or_currency_that_does_not_match_is_an_anomaly_not_a_paid_order(
    client, payment, order, session, changes
):
    event = intent_event(payment, "succeeded", **changes)

    response = deliver(client, event)

    assert response.get_json()["outcome"] == "anomaly"
    assert state(session, payment, order) == ("pending", "pending_payment")
    assert "Stripe took" in audit_of(session, event).detail


def test_a_failed_payment_leaves_the_order_waiting_for_another_try(client, payment, order, session):
    event = intent_event(payment, "requires_payment_method", event_type="payment_failed")

    assert deliver(client, event).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("failed", "pending_payment")


def declined(client, payment: Payment) -> None:
    """Stripe declined the buyer's card: the intent stays payable with another card."""
    failed = intent_event(payment, "requires_payment_method", event_type="payment_failed")
    assert deliver(client, failed).get_json()["outcome"] == "applied"


def test_a_success_after_a_decline_pays_the_order(client, payment, order, session):
    declined(client, payment)

    retried = deliver(client, intent_event(payment, "succeeded"))  # another card on the same intent

    assert retried.get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("succeeded", "paid")


def test_a_decline_then_processing_then_success_is_applied_in_turn(client, payment, order, session):
    declined(client, payment)

    assert deliver(client, intent_event(payment, "processing")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("processing", "pending_payment")
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("succeeded", "paid")


def test_a_declined_intent_canceled_at_stripe_cancels_the_payment(client, payment, order, session):
    declined(client, payment)

    assert deliver(client, intent_event(payment, "canceled")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("canceled", "pending_payment")


def test_a_success_after_a_cancel_is_an_anomaly(client, payment, order, session):
    assert deliver(client, intent_event(payment, "canceled")).get_json()["outcome"] == "applied"

    late = deliver(client, intent_event(payment, "succeeded"))

    assert late.get_json()["outcome"] == "anomaly"
    assert state(session, payment, order) == ("canceled", "pending_payment")


def test_a_canceled_intent_cancels_the_payment(client, payment, order, session):
    assert deliver(client, intent_event(payment, "canceled")).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("canceled", "pending_payment")


def test_a_payment_for_an_order_cancelled_meanwhile_is_an_anomaly(client, buyer, payment, order, session):
    # Cancelling cancels the intent at Stripe first; this is the money that got through anyway.
    session.execute(update(Order).where(Order.id == order["id"]).values(status="cancelled"))
    event = intent_event(payment, "succeeded")

    assert deliver(client, event).get_json()["outcome"] == "anomaly"
    assert state(session, payment, order) == ("succeeded", "cancelled")
    assert "refund" in audit_of(session, event).detail


def test_unknown_event_types_and_unknown_payments_are_stored_and_ignored(client, payment, session):
    other = ignored_event()
    stranger = intent_event(payment, "succeeded", id="pi_not_ours")

    for event in (other, stranger):
        response = deliver(client, event)
        assert (response.status_code, response.get_json()["outcome"]) == (200, "ignored")
        assert audit_of(session, event).payment_id is None


# --- refunds --------------------------------------------------------------------------------


def test_a_partial_then_a_full_refund(client, payment, order, teapot, session):
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"

    assert deliver(client, refund_event(payment, 1000)).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("partially_refunded", "paid")
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 2

    assert deliver(client, refund_event(payment, 3000)).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("refunded", "refunded")
    assert session.scalar(select(Payment.amount_refunded).where(Payment.id == payment.id)) == 3000
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 4  # refunded from paid


def test_the_same_refund_reported_twice_counts_once(client, payment, order, session):
    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "applied"
    assert deliver(client, refund_event(payment, 1000)).get_json()["outcome"] == "applied"

    again = deliver(client, refund_event(payment, 1000))

    assert again.get_json()["outcome"] == "duplicate"
    assert session.scalar(select(Payment.amount_refunded).where(Payment.id == payment.id)) == 1000


def test_a_refund_that_arrives_before_the_success_settles_both(client, payment, order, teapot, session):
    assert deliver(client, refund_event(payment, 3000)).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("refunded", "refunded")
    assert session.scalar(select(Payment.charge_id).where(Payment.id == payment.id)) == CHARGE_ID
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 4

    assert deliver(client, intent_event(payment, "succeeded")).get_json()["outcome"] == "ignored"
    assert state(session, payment, order) == ("refunded", "refunded")


def test_a_refund_of_a_canceled_payment_is_an_anomaly(client, payment, order, session):
    assert deliver(client, intent_event(payment, "canceled")).get_json()["outcome"] == "applied"

    assert deliver(client, refund_event(payment, 3000)).get_json()["outcome"] == "anomaly"
    assert state(session, payment, order) == ("canceled", "pending_payment")


def test_a_refund_of_a_declined_payment_settles_its_later_success_first(client, payment, order, session):
    declined(client, payment)

    assert deliver(client, refund_event(payment, 1000)).get_json()["outcome"] == "applied"
    assert state(session, payment, order) == ("partially_refunded", "paid")


# --- failures and races, on Postgres -------------------------------------------------------


@pytest.mark.postgres
def test_an_event_waiting_past_the_lock_timeout_is_a_503_recorded_and_its_retry_applies_it(
    client, payment, order, session, test_engine
):
    event = intent_event(payment, "succeeded")
    busy = test_engine.connect().execution_options(isolation_level="READ COMMITTED")
    with busy, busy.begin():  # a cancel holds the order longer than a webhook waits (order, then payment)
        busy.execute(select(Order).where(Order.id == order["id"]).with_for_update())
        failed = deliver(client, event)

    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "1")
    assert failed.get_json()["message"] == "Another request was changing the same data; retry in a moment."
    assert audit_of(session, event).outcome == "error"
    assert state(session, payment, order) == ("pending", "pending_payment")

    retried = deliver(client, event)

    assert retried.get_json() == {"received": True, "duplicate": False, "outcome": "applied"}
    assert state(session, payment, order) == ("succeeded", "paid")
    assert audit_of(session, event).deliveries == 2


def test_an_event_that_fails_to_apply_is_a_json_500_recorded_as_an_error_and_changes_nothing(
    client, payment, order, session
):
    event = intent_event(payment, "succeeded")
    del event["data"]["object"]["amount"]  # signed, yet not the intent Stripe sends

    failed = deliver(client, event)

    assert (failed.status_code, failed.get_json()["code"]) == (500, 500)
    assert "Stripe's retry will apply it" in failed.get_json()["message"]
    assert (audit_of(session, event).outcome, audit_of(session, event).detail) == ("error", "KeyError: 'amount'")
    assert state(session, payment, order) == ("pending", "pending_payment")


@pytest.mark.postgres
def test_one_event_delivered_eight_times_at_once_is_applied_once(app, payment, order, teapot, session):
    payload, signature = sign_stripe_event(intent_event(payment, "succeeded"))

    answers = all_at_once(
        app, [lambda c: c.post(WEBHOOK, data=payload, headers={"Stripe-Signature": signature}).get_json()] * 8
    )

    assert [answer["duplicate"] for answer in answers].count(False) == 1
    assert {answer["outcome"] for answer in answers} == {"applied"}
    assert state(session, payment, order) == ("succeeded", "paid")
    assert session.scalar(select(Product.available).where(Product.id == teapot.id)) == 2
