"""The tests' Stripe speaks the API version the pinned stripe-python speaks: every request that
reaches it is checked against the parameter types stripe-python generates from Stripe's OpenAPI
document, and refused as Stripe would refuse it; what localstripe knows by an older name is
translated on its way there; idempotency keys behave as Stripe's do, and can be forgotten."""

import pytest
import stripe

from tests.stripe_gate import API_VERSION


@pytest.fixture
def stripe_client(stripe_connect) -> stripe.StripeClient:
    """stripe-python as the app builds it (the pinned version), pointed at the tests' Stripe."""
    return stripe.StripeClient("sk_test_nexus", base_addresses={"api": stripe_connect.url}, max_network_retries=0)


def test_the_gate_refuses_payment_method_types_as_the_pinned_version_does(stripe_client, stripe_connect):
    old_request = {"amount": 3000, "currency": "usd", "payment_method_types": ["card"]}  # what Nexus sent until now

    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.payment_intents.create(old_request)

    assert refused.value.http_status == 400
    assert (refused.value.code, refused.value.param) == (
        "payment_method_types_no_longer_supported",
        "payment_method_types",
    )
    [recorded] = stripe_connect.refused()  # taken, so this test does not fail for it
    assert recorded["type"] == "invalid_request_error" and recorded["path"] == "/v1/payment_intents"


def test_the_app_asks_for_cards_in_the_pinned_versions_words_and_localstripe_takes_them(
    client, buyer, order, stripe_connect
):
    started = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    assert started.status_code == 201, started.get_json()  # localstripe took it, under its older name
    [asked] = [params for name, params in stripe_connect.received if name == "payment_intents.create"]
    assert asked["allowed_payment_method_types"] == ["card"] and "payment_method_types" not in asked


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        (
            {
                "amount": 100,
                "currency": "usd",
                "payment_method_options": {"affirm": {"setup_future_usage": "off_session"}},
            },
            "payment_method_options[affirm][setup_future_usage]",
            "parameter_invalid_enum",
        ),
        ({"amount": "ten", "currency": "usd"}, "amount", "parameter_invalid_int"),
        ({"currency": "usd"}, "amount", "parameter_missing"),
        (
            {"amount": 100, "currency": "usd", "automatic_payment_methods": {"on": True}},
            "automatic_payment_methods[on]",
            "parameter_unknown",
        ),
    ],
)
def test_a_value_outside_its_type_or_enum_is_refused_naming_the_parameter(
    stripe_client, stripe_connect, params, param, code
):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.payment_intents.create(params)

    assert (refused.value.http_status, refused.value.param, refused.value.code) == (400, param, code)
    assert [r["param"] for r in stripe_connect.refused()] == [param]


def test_an_event_type_the_version_does_not_send_is_refused(stripe_client, stripe_connect):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.webhook_endpoints.create(
            {"url": "https://shop.example.com/hook", "enabled_events": ["order.paid"]}
        )

    assert (refused.value.param, refused.value.code) == ("enabled_events[0]", "parameter_invalid_enum")
    assert len(stripe_connect.refused()) == 1


def test_a_path_the_version_does_not_have_is_a_404(stripe_client, stripe_connect):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.raw_request("get", "/v1/payment_intents/pi_1/receipts")

    assert refused.value.http_status == 404
    assert "Unrecognized request URL" in stripe_connect.refused()[0]["message"]


def test_a_request_for_another_api_version_is_refused(stripe_connect):
    other = stripe.StripeClient(
        "sk_test_nexus", base_addresses={"api": stripe_connect.url}, stripe_version="2024-06-20", max_network_retries=0
    )

    with pytest.raises(stripe.InvalidRequestError):
        other.v1.accounts.create({"type": "express"})

    assert API_VERSION in stripe_connect.refused()[0]["message"]


def test_the_same_key_with_other_parameters_is_an_idempotency_error_until_stripe_forgets_it(
    stripe_client, stripe_connect
):
    key = {"idempotency_key": "nexus-test-key"}
    first = stripe_client.v1.accounts.create({"type": "express", "metadata": {"store_id": "1"}}, key)
    again = stripe_client.v1.accounts.create({"type": "express", "metadata": {"store_id": "1"}}, key)

    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.accounts.create({"type": "express", "metadata": {"store_id": "2"}}, key)
    stripe_connect.forget_idempotency_keys()  # as Stripe does after 24 hours
    later = stripe_client.v1.accounts.create({"type": "express", "metadata": {"store_id": "2"}}, key)

    assert again["id"] == first["id"] and later["id"] != first["id"]
    assert stripe_connect.refused() == []  # an idempotency error is Stripe's, not the gate's


def test_keys_hold_for_requests_passed_on_to_localstripe_too(stripe_client, localstripe):
    key = {"idempotency_key": "nexus-test-customer"}

    first = stripe_client.v1.customers.create({"email": "ada@example.com"}, key)
    again = stripe_client.v1.customers.create({"email": "ada@example.com"}, key)

    assert again["id"] == first["id"]
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.customers.create({"email": "bob@example.com"}, key)
