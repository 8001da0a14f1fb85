"""The only module that talks to Stripe.

Every write carries an idempotency key, so a retried call (ours, or stripe-python's own retry
after a timeout) never creates a second intent or refund. Any Stripe failure becomes one
`PaymentGatewayError` (502) with a plain message; nothing of Stripe's leaks further in.
"""

import logging
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import stripe
from flask import current_app

from nexus.errors import BadRequest, DomainError, ServiceUnavailable

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10  # stripe-python waits 80 s by default: a whole worker held up
WEBHOOK_TOLERANCE_SECONDS = 300


class PaymentGatewayError(DomainError):
    """Stripe could not be reached, or refused the request."""

    status_code = HTTPStatus.BAD_GATEWAY


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        max_network_retries=2,  # safe: every write below has an idempotency key
    )


def configured() -> bool:
    return bool(current_app.config["STRIPE_SECRET_KEY"])


def _stripe() -> stripe.StripeClient:
    config = current_app.config
    if not config["STRIPE_SECRET_KEY"]:
        raise ServiceUnavailable("Payments are not configured: set STRIPE_SECRET_KEY.")
    return _client(config["STRIPE_SECRET_KEY"], config["STRIPE_API_BASE"])


def _call(action: str, request) -> dict[str, Any]:
    try:
        return request().to_dict()
    except stripe.APIConnectionError as error:
        log.warning("stripe unreachable while trying to %s: %s", action, error.__class__.__name__)
        raise PaymentGatewayError(f"Stripe could not be reached to {action}; try again shortly.") from error
    except stripe.StripeError as error:
        log.warning("stripe refused to %s: %s %s", action, error.__class__.__name__, error.http_status)
        raise PaymentGatewayError(f"Stripe refused to {action}: {error.user_message or 'see the logs'}.") from error


def create_intent(*, amount: int, currency: str, order_id: int, payment_id: int) -> dict[str, Any]:
    """A PaymentIntent for a payment; the same payment id always gets the same intent."""
    params = {
        "amount": amount,
        "currency": currency,
        "payment_method_types": ["card"],
        "metadata": {"order_id": str(order_id), "payment_id": str(payment_id)},
    }
    options = {"idempotency_key": f"nexus-payment-{payment_id}"}
    return _call("start the payment", lambda: _stripe().v1.payment_intents.create(params, options))


def retrieve_intent(intent_id: str) -> dict[str, Any]:
    return _call("read the payment", lambda: _stripe().v1.payment_intents.retrieve(intent_id))


def cancel_intent(intent_id: str) -> dict[str, Any]:
    options = {"idempotency_key": f"nexus-cancel-{intent_id}"}
    return _call("cancel the payment", lambda: _stripe().v1.payment_intents.cancel(intent_id, None, options))


def refund(*, intent_id: str, amount: int, refunded_before: int) -> dict[str, Any]:
    """Refund `amount` of an intent. The key names the refund by what was refunded before it,
    so a retry of this refund is recognised and a later, separate refund is not mistaken for it."""
    params = {"payment_intent": intent_id, "amount": amount}
    options = {"idempotency_key": f"nexus-refund-{intent_id}-{refunded_before}-{amount}"}
    return _call("refund the payment", lambda: _stripe().v1.refunds.create(params, options))


def verify_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, if Stripe signed this exact body within the last 5 minutes; else a 400."""
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        raise ServiceUnavailable("The Stripe webhook is not configured: set STRIPE_WEBHOOK_SECRET.")
    if not signature:
        raise BadRequest("The Stripe-Signature header is missing.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise BadRequest("The Stripe signature does not match this body, or it is too old.") from error
    except ValueError as error:
        raise BadRequest("The body is not a Stripe event.") from error
    return event.to_dict()
