"""The only module that talks to Stripe: payments, and Stripe Connect for sellers' payouts.

Every write carries an idempotency key, so a retried call (ours, or stripe-python's own retry
after a timeout) never creates a second intent, refund, account, transfer or reversal. A
Stripe that cannot be reached or fails (its 5xx) becomes `PaymentGatewayError` (502); a request
Stripe refuses (its 4xx: a payment it cannot refund, an intent it cannot cancel) becomes
`StripeRefused` (409) with Stripe's reason. Nothing else of Stripe's leaks further in. Secrets
Stripe hands out are scrubbed from what we keep (`scrubbed`); an onboarding link is never kept.
`pay_with_test_card` does, for development only and only at a Stripe stand-in, what Stripe.js
does in the buyer's browser.
"""

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import stripe
from flask import current_app

from nexus.errors import BadRequest, DomainError, ServiceUnavailable

log = logging.getLogger(__name__)

# Time limits. One attempt at a call gives up within TIMEOUT_SECONDS when Stripe says nothing:
# at most CONNECT_TIMEOUT_SECONDS to connect, the rest for each wait on its answer
# (stripe-python waits 80 s by default: a whole worker thread held up).
TIMEOUT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 3
MAX_NETWORK_RETRIES = 2  # safe: every write below has an idempotency key
# stripe-python sleeps before its retry n for min(INITIAL_DELAY * 2 ** (n - 1), MAX_DELAY),
# jittered down to no less than half of it and never under INITIAL_DELAY (0.5 s, then 1 s here);
# it retries timeouts, refused connections, 409s and 5xxs, and reads no Retry-After.
_BACKOFF = stripe.HTTPClient
RETRY_SLEEPS_SECONDS = sum(
    max(_BACKOFF.INITIAL_DELAY, min(_BACKOFF.INITIAL_DELAY * 2 ** (n - 1), _BACKOFF.MAX_DELAY))
    for n in range(1, MAX_NETWORK_RETRIES + 1)
)
# The longest one call (create_intent, cancel_intent, ...) takes before it raises: every
# attempt times out, with the sleeps between them (31.5 s).
CALL_WORST_CASE_SECONDS = (MAX_NETWORK_RETRIES + 1) * TIMEOUT_SECONDS + RETRY_SLEEPS_SECONDS
# A write whose result is not recorded after this was cut short (its request, job or process died
# while Stripe was asked): it is no longer in flight, and whether Stripe made it can be looked up.
CUT_SHORT_AFTER = timedelta(minutes=1)  # over CALL_WORST_CASE_SECONDS
# The most calls one request makes: a refund asked after one whose answer was lost looks for that
# one among the intent's refunds, reads the charge's total, refunds, and on a refusal reads the
# payment back (paying again after a decline makes two: cancel the declined intent, create the
# new one). gunicorn.conf.py derives the worker timeout from this.
CALLS_PER_REQUEST = 4
REQUEST_WORST_CASE_SECONDS = CALLS_PER_REQUEST * CALL_WORST_CASE_SECONDS
WEBHOOK_TOLERANCE_SECONDS = 300
# The Stripe API version the pinned stripe-python is generated for: sent on every request (it is
# stripe-python's default), and the version Nexus's webhook endpoints render their events in.
API_VERSION = stripe.api_version
# Stripe's answers that refuse the request itself (invalid for the object's state, a card
# declined, no such object). 401/403 (our key) and 429 (slow down) are our failures, not a
# verdict on the request: they stay 502s.
REFUSALS = frozenset({400, 402, 404})


class PaymentGatewayError(DomainError):
    """Stripe did not do what we asked: it could not be reached or failed (502), or refused (409)."""

    status_code = HTTPStatus.BAD_GATEWAY


class StripeRefused(PaymentGatewayError):
    """Stripe answered, and said no (its 4xx): the request conflicts with the state Stripe holds."""

    status_code = HTTPStatus.CONFLICT


class IdempotencyConflict(StripeRefused):
    """Stripe holds the call's idempotency key for a call with other parameters: an earlier
    attempt went through (its answer was lost) before what we asked for changed."""


# Fields of Stripe objects that hand out a capability: never stored, logged or shown again.
SECRET_FIELDS = frozenset({"client_secret"})


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_SECONDS, TIMEOUT_SECONDS - CONNECT_TIMEOUT_SECONDS)),
        max_network_retries=MAX_NETWORK_RETRIES,
    )


def configured() -> bool:
    return bool(current_app.config["STRIPE_SECRET_KEY"])


def _stripe() -> stripe.StripeClient:
    config = current_app.config
    if not config["STRIPE_SECRET_KEY"]:
        raise ServiceUnavailable("Payments are not configured: set STRIPE_SECRET_KEY.")
    return _client(config["STRIPE_SECRET_KEY"], config["STRIPE_API_BASE"])


def _call(action: str, request) -> dict[str, Any]:
    """Stripe's answer to `request()`, as plain data; its failures as ours (see the module's doc)."""
    return _guarded(action, request).to_dict()


def _guarded(action: str, request) -> Any:
    try:
        return request()
    except stripe.IdempotencyError as error:
        log.warning("stripe holds the key of a different request to %s", action)
        raise IdempotencyConflict(f"Stripe refused to {action}: an earlier attempt asked otherwise.") from error
    except stripe.APIConnectionError as error:
        log.warning("stripe unreachable while trying to %s: %s", action, error.__class__.__name__)
        raise PaymentGatewayError(f"Stripe could not be reached to {action}; try again shortly.") from error
    except stripe.StripeError as error:
        refused = error.http_status in REFUSALS
        verdict = "refused" if refused else "failed"
        log.warning("stripe %s to %s: %s %s", verdict, action, type(error).__name__, error.http_status)
        if refused:
            reason = (error.user_message or "no reason given").rstrip(".")
            raise StripeRefused(f"Stripe refused to {action}: {reason}.") from error
        raise PaymentGatewayError(f"Stripe failed to {action}; try again shortly.") from error


def create_intent(*, amount: int, currency: str, order_id: int, payment_id: int) -> dict[str, Any]:
    """A PaymentIntent for a payment; the same payment id always gets the same intent. Cards only:
    an unpaid order expires on a clock (ORDER_PAYMENT_TIMEOUT_MINUTES) that a delayed method (a
    bank debit settling in days) would outlast. The pinned API refuses `payment_method_types`
    (endive, 2026-09-30); `allowed_payment_method_types` is how it is asked now."""
    params = {
        "amount": amount,
        "currency": currency,
        "allowed_payment_method_types": ["card"],
        "metadata": {"order_id": str(order_id), "payment_id": str(payment_id)},
    }
    options = {"idempotency_key": f"nexus-payment-{payment_id}"}
    return _call("start the payment", lambda: _stripe().v1.payment_intents.create(params, options))


def retrieve_intent(intent_id: str, *, expand_charge: bool = False) -> dict[str, Any]:
    """An intent; with `expand_charge`, its `latest_charge` as the charge itself (for refunds)."""
    params = {"expand": ["latest_charge"]} if expand_charge else None
    return _call("read the payment", lambda: _stripe().v1.payment_intents.retrieve(intent_id, params))


def cancel_intent(intent_id: str) -> dict[str, Any]:
    options = {"idempotency_key": f"nexus-cancel-{intent_id}"}
    return _call("cancel the payment", lambda: _stripe().v1.payment_intents.cancel(intent_id, None, options))


def refund(*, intent_id: str, amount: int, refund_id: int, payment_id: int) -> dict[str, Any]:
    """Refund `amount` of an intent: our refund `refund_id`, named in its key and its metadata,
    so a retry is recognised by Stripe for a day and found by `find_refund` after that."""
    params = {
        "payment_intent": intent_id,
        "amount": amount,
        "metadata": {"payment_id": str(payment_id), "refund_id": str(refund_id)},
    }
    options = {"idempotency_key": f"nexus-refund-{refund_id}"}
    return _call("refund the payment", lambda: _stripe().v1.refunds.create(params, options))


def find_refund(*, intent_id: str, refund_id: int) -> dict[str, Any] | None:
    """The refund Stripe made for our refund `refund_id`, if any (its answer was lost): every
    page of the intent's refunds, by their metadata."""
    params = {"payment_intent": intent_id, "limit": 100}
    return _tagged(_every("look for the refund", lambda: _stripe().v1.refunds.list(params)), refund_id=str(refund_id))


def _every(action: str, listing) -> Iterator[dict[str, Any]]:
    """Every object of the Stripe list `listing()` asks for, page after page (each a call)."""
    items = iter(_guarded(action, listing).auto_paging_iter())
    while (item := _guarded(action, lambda: next(items, None))) is not None:
        yield item.to_dict()


def _tagged(items: Iterator[dict[str, Any]], **metadata: str) -> dict[str, Any] | None:
    """The first of `items` whose metadata holds `metadata`."""
    return next((item for item in items if metadata.items() <= item.get("metadata", {}).items()), None)


def check_stand_in() -> None:
    """Refuse (503) unless Stripe is a stand-in (`STRIPE_API_BASE`): test cards are for localstripe."""
    if not current_app.config["STRIPE_API_BASE"]:
        raise ServiceUnavailable(
            "Paying with a test card needs a Stripe stand-in, and STRIPE_API_BASE is not set, so this would be "
            "real Stripe: point STRIPE_API_BASE at localstripe (make dev does)."
        )


def pay_with_test_card(intent_id: str, card_number: str) -> dict[str, Any]:
    """What Stripe.js does in the buyer's browser, with a test card number: a card payment
    method, set on the intent, then confirm; the intent. Only ever at a Stripe stand-in
    (`STRIPE_API_BASE`, localstripe in development): real Stripe takes no card numbers from a
    server, and money is never taken by a command."""
    check_stand_in()
    card = {"number": card_number, "exp_month": 12, "exp_year": datetime.now(UTC).year + 3, "cvc": "123"}
    method = _call(
        "add the test card",
        lambda: _stripe().v1.payment_methods.create(
            {"type": "card", "card": card}, {"idempotency_key": f"nexus-test-card-{intent_id}-{card_number}"}
        ),
    )
    key = f"nexus-test-payment-{intent_id}-{method['id']}"
    _call(
        "set the test card on the payment",
        lambda: _stripe().v1.payment_intents.update(
            intent_id, {"payment_method": method["id"]}, {"idempotency_key": f"{key}-method"}
        ),
    )
    return _call(
        "confirm the payment",
        lambda: _stripe().v1.payment_intents.confirm(intent_id, None, {"idempotency_key": f"{key}-confirm"}),
    )


def scrubbed(value: Any) -> Any:
    """`value` (a Stripe object or event, as plain data) without its secrets, at any depth."""
    if isinstance(value, dict):
        return {key: scrubbed(item) for key, item in value.items() if key not in SECRET_FIELDS}
    if isinstance(value, list):
        return [scrubbed(item) for item in value]
    return value


def verify_event(
    payload: bytes,
    signature: str | None,
    *,
    secret_setting: str = "STRIPE_WEBHOOK_SECRET",  # noqa: S107 (a setting's name, not a secret)
    endpoint: str = "webhook",
) -> dict[str, Any]:
    """The event, if Stripe signed this exact body within the last 5 minutes with the secret of
    `secret_setting` (each webhook endpoint has its own); else a 400."""
    secret = current_app.config[secret_setting]
    if not secret:
        raise ServiceUnavailable(f"The Stripe {endpoint} is not configured: set {secret_setting}.")
    if not signature:
        raise BadRequest("The Stripe-Signature header is missing.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise BadRequest("The Stripe signature does not match this body, or it is too old.") from error
    except ValueError as error:
        raise BadRequest("The body is not a Stripe event.") from error
    return event.to_dict()


# --- webhook endpoints ------------------------------------------------------------------------


def webhook_endpoints() -> list[dict[str, Any]]:
    """Every webhook endpoint of the account, every page."""
    return list(_every("list the webhook endpoints", lambda: _stripe().v1.webhook_endpoints.list({"limit": 100})))


def create_webhook_endpoint(*, url: str, events: list[str], connect: bool) -> dict[str, Any]:
    """A webhook endpoint at `url` for `events` in the pinned API version (of connected accounts
    with `connect`); the answer holds its signing secret, which Stripe shows only here."""
    params = {"url": url, "enabled_events": events, "api_version": API_VERSION, "connect": connect}
    options = {"idempotency_key": f"nexus-webhook-endpoint-{uuid.uuid4().hex}"}
    return _call("create the webhook endpoint", lambda: _stripe().v1.webhook_endpoints.create(params, options))


def update_webhook_endpoint(endpoint_id: str, *, events: list[str]) -> dict[str, Any]:
    """The endpoint sending exactly `events`, enabled."""
    params = {"enabled_events": events, "disabled": False}
    options = {"idempotency_key": f"nexus-webhook-endpoint-{endpoint_id}-{uuid.uuid4().hex}"}
    return _call(
        "update the webhook endpoint", lambda: _stripe().v1.webhook_endpoints.update(endpoint_id, params, options)
    )


# --- Stripe Connect: sellers' accounts, and transfers to them ------------------------------


def create_account(*, store_id: int, email: str) -> dict[str, Any]:
    """The store's Express connected account, able to receive transfers. The key is the store's,
    and the parameters never change for a store, so first onboardings retried or made at once
    get one account."""
    params = {
        "type": "express",
        "email": email,
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"store_id": str(store_id)},
    }
    options = {"idempotency_key": f"nexus-account-store-{store_id}"}
    return _call("open the store's payout account", lambda: _stripe().v1.accounts.create(params, options))


def create_account_link(*, account_id: str, refresh_url: str, return_url: str) -> dict[str, Any]:
    """A single-use onboarding link for the account: a new one each time (its key is this call's,
    for stripe-python's retries of it). The link is a credential: never stored or logged."""
    params = {"account": account_id, "type": "account_onboarding", "refresh_url": refresh_url, "return_url": return_url}
    options = {"idempotency_key": f"nexus-account-link-{account_id}-{uuid.uuid4().hex}"}
    return _call("start the seller's onboarding", lambda: _stripe().v1.account_links.create(params, options))


def disputes_of(charge_id: str) -> list[dict[str, Any]]:
    """The charge's disputes (every page): what a seller's transfer waits on."""
    params = {"charge": charge_id, "limit": 100}
    return list(_every("read the charge's disputes", lambda: _stripe().v1.disputes.list(params)))


def retrieve_account(account_id: str) -> dict[str, Any]:
    return _call("read the payout account", lambda: _stripe().v1.accounts.retrieve(account_id))


def _stamp(moment: datetime) -> int:
    """A moment as a key's part: microseconds since the epoch (what the database keeps of it)."""
    return round(moment.timestamp() * 1_000_000)


def _transfer_group(order_id: int) -> str:
    return f"order_{order_id}"


def create_transfer(
    *,
    transfer_id: int,
    order_id: int,
    store_id: int,
    amount: int,
    currency: str,
    destination: str,
    source_charge: str | None,
    attempt: datetime,
) -> dict[str, Any]:
    """Transfer a store's share of an order to its connected account (separate charges and
    transfers: the buyer paid the platform), from the buyer's charge (`source_transaction`):
    while the charge's funds are still pending Stripe makes the transfer all the same and the
    seller's funds become available when the charge's do; without it the platform's available
    balance must cover the transfer when it is made. The key is the transfer's and its `attempt`'s
    (when the caller noted it): however often one attempt is sent, Stripe makes it once, and
    an attempt Stripe refused (its refusal is replayed under its key for a day) is followed by
    another, under a key of its own."""
    params = {
        "amount": amount,
        "currency": currency,
        "destination": destination,
        "transfer_group": _transfer_group(order_id),
        "metadata": {"transfer_id": str(transfer_id), "order_id": str(order_id), "store_id": str(store_id)},
    }
    if source_charge:
        params["source_transaction"] = source_charge
    options = {"idempotency_key": f"nexus-transfer-{transfer_id}-{_stamp(attempt)}"}
    return _call("transfer the seller's share", lambda: _stripe().v1.transfers.create(params, options))


def find_transfer(*, transfer_id: int, order_id: int, destination: str) -> dict[str, Any] | None:
    """The transfer Stripe made for our transfer `transfer_id`, if any (its answer was lost):
    every page of the order's transfer group to the store's account, by their metadata (ids of a
    database restored or reset elsewhere may be met again; the account and the group narrow it)."""
    params = {"transfer_group": _transfer_group(order_id), "destination": destination, "limit": 100}
    transfers = _every("look for the seller's transfer", lambda: _stripe().v1.transfers.list(params))
    return _tagged(transfers, transfer_id=str(transfer_id))


def retrieve_transfer(stripe_transfer_id: str) -> dict[str, Any]:
    return _call("read the seller's transfer", lambda: _stripe().v1.transfers.retrieve(stripe_transfer_id))


def reverse_transfer(*, stripe_transfer_id: str, transfer_id: int, amount: int, attempt: datetime) -> dict[str, Any]:
    """Take `amount` of a transfer back from the seller (their share of a refund). The key names
    the reversal by its `attempt` (when the caller noted it), not by its amount: a retry of it
    asking for more (a refund came meanwhile) is refused as a conflict instead of reversing twice."""
    params = {"amount": amount, "metadata": {"transfer_id": str(transfer_id)}}
    options = {"idempotency_key": f"nexus-reversal-{transfer_id}-{_stamp(attempt)}"}
    return _call(
        "reverse the seller's share of a refund",
        lambda: _stripe().v1.transfers.reversals.create(stripe_transfer_id, params, options),
    )
