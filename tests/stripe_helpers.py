"""Stripe for the tests (not a test module): webhook signatures, the events Stripe sends, and
localstripe driven as Stripe.js or the dashboard would drive it."""

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from nexus.payments.models import Payment
from tests.stripe_gate import API_VERSION

STRIPE_WEBHOOK_SECRET = "whsec_nexus_tests"
STRIPE_CONNECT_WEBHOOK_SECRET = "whsec_nexus_connect_tests"  # the Connect endpoint's own
WEBHOOK = "/api/v1/webhooks/stripe"
GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000341"
THREE_D_SECURE_CARD = "4000002760003184"  # always asks the buyer to authenticate


# --- signed events --------------------------------------------------------------------------


def sign_stripe_payload(payload: bytes, *, secret: str = STRIPE_WEBHOOK_SECRET, at: int | None = None) -> str:
    """The Stripe-Signature header for a body, signed the way Stripe signs webhooks."""
    timestamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def sign_stripe_event(event: dict, **signing) -> tuple[bytes, str]:
    """A body and its Stripe-Signature header (`secret`, `at` as for `sign_stripe_payload`)."""
    payload = json.dumps(event).encode()
    return payload, sign_stripe_payload(payload, **signing)


CHARGE_ID = "ch_test"  # the charge of the payments these events speak of


def _event(event_type: str, data: dict, event_id: str | None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "data": {"object": data},
    }


def _payment_fields(payment: Payment | dict) -> dict:
    """id, intent, amount and currency of a payment row or of a payment as the API shows it."""
    if isinstance(payment, dict):
        return payment
    return {
        "id": payment.id,
        "provider_payment_id": payment.provider_payment_id,
        "amount": payment.amount,
        "currency": payment.currency,
    }


def intent_event(
    payment: Payment | dict, status: str, *, event_type: str | None = None, event_id: str | None = None, **changes
) -> dict:
    """A `payment_intent.*` event as Stripe would send it (`changes` go into the intent): a
    succeeded one names its charge, `ch_test`, by id (`refund_event`'s charge)."""
    fields = _payment_fields(payment)
    intent = {
        "id": fields["provider_payment_id"],
        "object": "payment_intent",
        "amount": fields["amount"],
        "currency": fields["currency"],
        "status": status,
        "latest_charge": CHARGE_ID if status == "succeeded" else None,
        "metadata": {"payment_id": str(fields["id"])},
        **changes,
    }
    kind = event_type or {"succeeded": "succeeded", "processing": "processing", "canceled": "canceled"}.get(status)
    return _event(f"payment_intent.{kind}", intent, event_id)


def refund_event(payment: Payment | dict, refunded: int, *, event_id: str | None = None) -> dict:
    """A `charge.refunded` event: `refunded` of the payment's charge refunded so far."""
    fields = _payment_fields(payment)
    charge = {
        "id": CHARGE_ID,
        "object": "charge",
        "payment_intent": fields["provider_payment_id"],
        "amount": fields["amount"],
        "amount_refunded": refunded,
        "currency": fields["currency"],
        "refunded": refunded >= fields["amount"],
    }
    return _event("charge.refunded", charge, event_id)


def ignored_event(event_id: str | None = None) -> dict:
    """An event of a type Nexus does not act on."""
    return _event("customer.created", {"id": "cus_1", "object": "customer"}, event_id)


def deliver(client: FlaskClient, event: dict, **signing) -> TestResponse:
    """POST the event to the webhook, signed (`secret`, `at` as for `sign_stripe_payload`)."""
    payload, signature = sign_stripe_event(event, **signing)
    return client.post(
        WEBHOOK, data=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


# --- localstripe ----------------------------------------------------------------------------


# What every request to "Stripe" carries: a key, and the API version it is written for.
STRIPE_HEADERS = {"Authorization": "Bearer sk_test_nexus", "Stripe-Version": API_VERSION}


def stripe_post(localstripe: str, path: str, **form: str) -> dict:
    """A call to localstripe as Stripe.js (or the dashboard) would make it."""
    request = urllib.request.Request(
        f"{localstripe}{path}", data=urllib.parse.urlencode(form).encode(), headers=STRIPE_HEADERS
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


def pay_at_stripe(localstripe: str, intent_id: str, card: str = GOOD_CARD) -> dict:
    """What the buyer's browser does with the client secret: a card, then confirm; the intent."""
    card_details = {"card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2034", "card[cvc]": "123"}
    method = stripe_post(localstripe, "/v1/payment_methods", type="card", **card_details)
    stripe_post(localstripe, f"/v1/payment_intents/{intent_id}", payment_method=method["id"])
    return stripe_post(localstripe, f"/v1/payment_intents/{intent_id}/confirm")


def fail_authentication_at_stripe(localstripe: str, intent_id: str, client_secret: str) -> None:
    """A card that asks for 3-D Secure, and the buyer failing it: the intent is declined and
    waits for another payment method."""
    assert pay_at_stripe(localstripe, intent_id, card=THREE_D_SECURE_CARD)["status"] == "requires_action"
    stripe_post(
        localstripe, f"/v1/payment_intents/{intent_id}/_authenticate", client_secret=client_secret, success="false"
    )


def intent_at_stripe(localstripe: str, intent_id: str) -> dict:
    request = urllib.request.Request(f"{localstripe}/v1/payment_intents/{intent_id}", headers=STRIPE_HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def refunds_at_stripe(localstripe: str, intent_id: str) -> list[dict]:
    """The refunds Stripe made of the intent."""
    request = urllib.request.Request(f"{localstripe}/v1/refunds?payment_intent={intent_id}", headers=STRIPE_HEADERS)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def charge_at_stripe(localstripe: str, intent_id: str) -> str:
    """The id of the charge that paid the intent (localstripe always expands `latest_charge`)."""
    return intent_at_stripe(localstripe, intent_id)["latest_charge"]["id"]


def register_webhook(localstripe: str, url: str) -> None:
    """Where localstripe delivers its signed events from now on (one endpoint, replaced)."""
    stripe_post(localstripe, "/_config/webhooks/nexus", url=url, secret=STRIPE_WEBHOOK_SECRET)


class DownWebhook:
    """A webhook endpoint on a local port that answers every delivery 503, as an app that is
    down would, and keeps the events delivered to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/down"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, event_type: str, object_id: str) -> bool:
        """Whether a delivery of `event_type` about `object_id` came (and was refused)."""
        return any(e["type"] == event_type and e["data"]["object"]["id"] == object_id for e in list(self.events))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AnsweringStripe:
    """A Stripe API on a local port that answers every request with one status and Stripe's error
    shape, as Stripe does when it refuses a request (4xx) or fails (5xx)."""

    def __init__(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
