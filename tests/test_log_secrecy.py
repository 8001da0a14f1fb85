"""No secret, code or token ever reaches a log line: every line the process writes while a user
signs in, pays by card and is refunded is captured (at DEBUG, every logger, formatted as they
are written) and searched for each secret that passed through the app."""

import logging
from collections.abc import Callable, Iterator

import pytest

from nexus.logs import JsonFormatter
from tests.conftest import code_in, eventually
from tests.factories import ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import STRIPE_WEBHOOK_SECRET, pay_at_stripe, register_webhook


@pytest.fixture
def logged(caplog) -> Iterator[Callable[[], list[str]]]:
    """Every log line of the test so far, at DEBUG, as the JSON formatter writes it to stderr."""
    formatter = JsonFormatter()
    with caplog.at_level(logging.DEBUG):
        yield lambda: [formatter.format(record) for record in caplog.records]


def test_a_sign_in_and_a_card_payment_leave_no_secret_in_the_logs(
    app, client, outbox, localstripe, live_server, session, logged
):
    register_webhook(localstripe, f"{live_server}/api/v1/webhooks/stripe")
    teapot = ProductFactory(store=StoreFactory(currency="usd"), price=1500, stock=3)
    client.post("/api/v1/auth/register", json={"email": "ada@example.com"})
    code = code_in(outbox[-1])
    tokens = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code}).get_json()
    refreshed = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    ).get_json()
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
    body = {"items": [{"product_id": teapot.id, "quantity": 1}], "shipping_address": shipping_address()}
    order = client.post("/api/v1/orders", headers=bearer, json=body).get_json()
    started = client.post(f"/api/v1/orders/{order['id']}/payment", headers=bearer).get_json()
    pay_at_stripe(localstripe, started["payment"]["provider_payment_id"])
    eventually(lambda: client.get(f"/api/v1/orders/{order['id']}", headers=bearer).get_json()["status"] == "paid")
    client.post("/api/v1/auth/logout", headers=bearer, json={"refresh_token": refreshed["refresh_token"]})

    secrets = {
        "the sign-in code": code,
        "an access token": tokens["access_token"],
        "a refresh token": tokens["refresh_token"],
        "a rotated access token": refreshed["access_token"],
        "a rotated refresh token": refreshed["refresh_token"],
        "the payment's client secret": started["client_secret"],
        # Not the card number: the buyer's browser sends it to Stripe, never to the app, so it
        # could not be in these logs whatever the app did.
        "the Stripe secret key": app.config["STRIPE_SECRET_KEY"],
        "the webhook signing secret": STRIPE_WEBHOOK_SECRET,
        "the JWT signing key": app.config["JWT_SECRET_KEY"],
        "the app's secret key": app.config["SECRET_KEY"],
    }
    log_lines = logged()
    # The run was logged (so the search below searched something) ...
    assert any('"path":"/api/v1/auth/otp/verify"' in line for line in log_lines)
    assert any('"path":"/api/v1/webhooks/stripe"' in line for line in log_lines)
    # ... and nothing secret is in it, nor any bearer credential.
    for name, secret in secrets.items():
        leaks = [line for line in log_lines if secret in line]
        assert not leaks, f"{name} is in the logs: {leaks[0]}"
    assert not [line for line in log_lines if "Bearer " in line]
