"""`flask --app wsgi payments pay-test ORDER_ID`: in development, an order's open payment paid at
localstripe with a test card (what Stripe.js does in the buyer's browser), the order then paid by
the webhook localstripe sends to the app served on a local port; refused anywhere else."""

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from nexus import create_app
from nexus.payments.models import Payment, PaymentEventAudit
from tests.conftest import PRODUCTION, app_environ, eventually
from tests.stripe_helpers import (
    DECLINED_CARD,
    WEBHOOK,
    DownWebhook,
    intent_at_stripe,
    pay_at_stripe,
    register_webhook,
)


@pytest.fixture(autouse=True)
def webhook(localstripe, live_server) -> str:
    """localstripe delivers its signed events to the app's webhook."""
    url = f"{live_server}{WEBHOOK}"
    register_webhook(localstripe, url)
    return url


def development(database_url: str, **stripe: str) -> Flask:
    """The app as `make dev` runs it: ENVIRONMENT=development, on the tests' database."""
    return create_app(app_environ(database_url, ENVIRONMENT="development", STRIPE_SECRET_KEY="sk_test_nexus", **stripe))


@pytest.fixture(scope="module")
def dev_app(database_url, localstripe) -> Flask:
    return development(database_url, STRIPE_API_BASE=localstripe)


def pay_test(app: Flask, order_id: int, *options: str):
    return app.test_cli_runner().invoke(args=["payments", "pay-test", str(order_id), *options])


def start_payment(client, buyer, order: dict) -> dict:
    response = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["payment"]


def order_as(client, who, order: dict) -> dict:
    return client.get(f"/api/v1/orders/{order['id']}", headers=who.headers).get_json()


def test_pay_test_pays_the_open_payment_and_the_webhook_marks_the_order_paid(
    dev_app, client, buyer, order, localstripe, session
):
    payment = start_payment(client, buyer, order)

    result = pay_test(dev_app, order["id"])

    assert result.exit_code == 0, result.output
    assert f"PaymentIntent {payment['provider_payment_id']} of payment {payment['id']} is succeeded" in result.output
    assert f"payment {payment['id']} is succeeded, order {order['id']} is paid" in result.output
    assert (order_as(client, buyer, order)["status"], order_as(client, buyer, order)["payment_status"]) == (
        "paid",
        "succeeded",
    )
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "succeeded"
    audit = session.scalars(select(PaymentEventAudit).where(PaymentEventAudit.payment_id == payment["id"])).one()
    assert (audit.source, audit.type, audit.outcome) == ("webhook", "payment_intent.succeeded", "applied")


def test_pay_test_with_a_declined_card_says_so_and_the_order_waits(dev_app, client, buyer, order):
    start_payment(client, buyer, order)

    result = pay_test(dev_app, order["id"], "--card", DECLINED_CARD)

    assert result.exit_code == 1
    assert "Stripe refused to confirm the payment: Your card was declined." in result.output
    assert f"Order {order['id']} is still waiting for payment." in result.output
    eventually(lambda: order_as(client, buyer, order)["payment_status"] == "failed")
    assert order_as(client, buyer, order)["status"] == "pending_payment"


def test_after_a_decline_pay_test_asks_for_a_new_payment_and_pays_that_one(dev_app, client, buyer, order, localstripe):
    declined = start_payment(client, buyer, order)
    with pytest.raises(OSError):  # the decline, as Stripe.js would show it
        pay_at_stripe(localstripe, declined["provider_payment_id"], card=DECLINED_CARD)
    eventually(lambda: order_as(client, buyer, order)["payment_status"] == "failed")

    refused = pay_test(dev_app, order["id"])

    assert refused.exit_code == 1
    assert f"payment {declined['id']} was declined: its buyer asks to pay again" in refused.output
    assert f"POST /api/v1/orders/{order['id']}/payment" in refused.output
    retry = start_payment(client, buyer, order)
    assert pay_test(dev_app, order["id"]).exit_code == 0
    assert order_as(client, buyer, order)["status"] == "paid"
    assert retry["id"] != declined["id"]


def test_pay_test_before_the_buyer_starts_the_payment_says_to_start_it(dev_app, order, session):
    result = pay_test(dev_app, order["id"])

    assert result.exit_code == 1
    assert (
        f"Order {order['id']} has no payment to pay yet: its buyer starts one first "
        f"(POST /api/v1/orders/{order['id']}/payment)." in result.output
    )
    assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_pay_test_of_a_cancelled_order_says_only_a_waiting_order_can_be_paid(dev_app, client, buyer, order):
    start_payment(client, buyer, order)
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers).status_code == 200

    result = pay_test(dev_app, order["id"])

    assert result.exit_code == 1
    assert f"Order {order['id']} is cancelled; only an order waiting for payment can be paid." in result.output


def test_pay_test_of_an_unknown_order_says_there_is_none(dev_app):
    result = pay_test(dev_app, 987654)

    assert result.exit_code == 1
    assert "There is no order 987654." in result.output


@pytest.fixture
def elsewhere(request, app, localstripe) -> Flask:
    """The app outside development: the tests' own (ENVIRONMENT=test) or a production one."""
    if request.param == "test":
        return app
    return create_app({**PRODUCTION, "STRIPE_SECRET_KEY": "sk_test_nexus", "STRIPE_API_BASE": localstripe})


@pytest.mark.parametrize(
    ("elsewhere", "environment"), [("test", "test"), ("production", "production")], indirect=["elsewhere"]
)
def test_pay_test_is_refused_outside_development(elsewhere, environment, client, buyer, order, localstripe):
    payment = start_payment(client, buyer, order)

    result = pay_test(elsewhere, order["id"])

    assert result.exit_code == 1
    assert f"payments pay-test is for development only (ENVIRONMENT is {environment})" in result.output
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "requires_payment_method"


def test_pay_test_is_refused_when_it_would_be_real_stripe(database_url, client, buyer, order, localstripe):
    payment = start_payment(client, buyer, order)
    without_stand_in = development(database_url)

    result = pay_test(without_stand_in, order["id"])

    assert result.exit_code == 1
    assert "STRIPE_API_BASE is not set, so this would be real Stripe" in result.output
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "requires_payment_method"


@pytest.fixture
def lost_webhooks(localstripe) -> Iterator[DownWebhook]:
    """Stripe's webhooks go to an endpoint that is down (it answers 503) while the test runs."""
    down = DownWebhook()
    register_webhook(localstripe, down.url)
    yield down
    down.close()


def test_pay_test_says_when_no_webhook_reaches_the_app(dev_app, client, buyer, order, localstripe, lost_webhooks):
    payment = start_payment(client, buyer, order)

    result = pay_test(dev_app, order["id"], "--wait-seconds", "2")

    assert result.exit_code == 1
    assert f"No webhook reached the app in 2 s, so order {order['id']} is still pending_payment" in result.output
    assert "payments reconcile --older-than-minutes 0" in result.output
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "succeeded"
    assert order_as(client, buyer, order)["status"] == "pending_payment"
