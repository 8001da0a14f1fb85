"""`flask --app wsgi payments setup-webhooks --base-url URL`: the app's two webhook endpoints made
at Stripe (the stand-in serves /v1/webhook_endpoints, checked by the gate like every request),
with exactly the events the app handles and the API version it speaks, and each new signing
secret printed once beside the setting it belongs in."""

import re

import pytest

from nexus import create_app
from nexus.payments.gateway import API_VERSION
from tests.conftest import app_environ

BASE = "https://api.example.com"
PLATFORM_EVENTS = [
    "charge.refunded",
    "payment_intent.canceled",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.succeeded",
    "transfer.reversed",
]
CONNECT_EVENTS = ["account.updated", "payout.failed", "payout.paid", "transfer.reversed"]


@pytest.fixture(autouse=True)
def no_endpoints(stripe_connect):
    stripe_connect.webhook_endpoints.clear()


def setup_webhooks(app, *args: str, exit_code: int = 0) -> str:
    result = app.test_cli_runner().invoke(args=["payments", "setup-webhooks", *args])
    assert result.exit_code == exit_code, result.output
    return result.output


def endpoints(stripe_connect) -> dict[str, dict]:
    return {endpoint["url"]: endpoint for endpoint in stripe_connect.webhook_endpoints.values()}


def test_it_creates_both_endpoints_with_the_handled_events_and_the_pinned_version_and_prints_their_secrets(
    app, stripe_connect
):
    output = setup_webhooks(app, "--base-url", BASE + "/")

    made = endpoints(stripe_connect)
    platform, connect = made[f"{BASE}/api/v1/webhooks/stripe"], made[f"{BASE}/api/v1/webhooks/stripe-connect"]
    assert (platform["enabled_events"], platform["api_version"], platform["connect"]) == (
        PLATFORM_EVENTS,
        API_VERSION,
        False,
    )
    assert (connect["enabled_events"], connect["api_version"], connect["connect"]) == (
        CONNECT_EVENTS,
        API_VERSION,
        True,
    )
    secrets = dict(re.findall(r"set (STRIPE_\w+)=(whsec_\S+)", output))
    assert set(secrets) == {"STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET"}
    assert secrets["STRIPE_WEBHOOK_SECRET"] != secrets["STRIPE_CONNECT_WEBHOOK_SECRET"]


def test_run_again_it_updates_the_same_endpoints_and_keeps_their_secrets(app, stripe_connect):
    setup_webhooks(app, "--base-url", BASE)
    stripe_connect.webhook_endpoints[next(iter(stripe_connect.webhook_endpoints))]["enabled_events"] = [
        "charge.refunded"
    ]

    output = setup_webhooks(app, "--base-url", BASE)

    assert len(stripe_connect.webhook_endpoints) == 2
    assert endpoints(stripe_connect)[f"{BASE}/api/v1/webhooks/stripe"]["enabled_events"] == PLATFORM_EVENTS
    assert "whsec_" not in output
    assert output.count("its signing secret is unchanged") == 2
    assert "STRIPE_WEBHOOK_SECRET" in output and "STRIPE_CONNECT_WEBHOOK_SECRET" in output


def test_an_endpoint_of_another_api_version_is_replaced_by_a_new_one_and_named_for_deletion(app, stripe_connect):
    url = f"{BASE}/api/v1/webhooks/stripe"
    stripe_connect.create_webhook_endpoint(
        {"url": url, "enabled_events": ["charge.refunded"], "api_version": "2025-03-31.basil"}, "platform"
    )
    [old] = stripe_connect.webhook_endpoints

    output = setup_webhooks(app, "--base-url", BASE)

    current = [e for e in stripe_connect.webhook_endpoints.values() if e["url"] == url]
    assert sorted(e["api_version"] for e in current) == sorted([API_VERSION, "2025-03-31.basil"])
    assert f"{old} at the same URL sends events in API version 2025-03-31.basil" in output
    assert "set STRIPE_WEBHOOK_SECRET=whsec_" in output


def test_without_stripe_it_exits_1_naming_the_setting(database_url):
    output = setup_webhooks(create_app(app_environ(database_url)), "--base-url", BASE, exit_code=1)

    assert "STRIPE_SECRET_KEY" in output


@pytest.mark.parametrize("base_url", ["http://api.example.com", "api.example.com", "https://api.example.com/?a=1"])
def test_a_base_url_that_is_not_https_is_refused(app, stripe_connect, base_url):
    output = setup_webhooks(app, "--base-url", base_url, exit_code=2)

    assert "--base-url" in output and stripe_connect.webhook_endpoints == {}
