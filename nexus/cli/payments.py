"""`flask --app wsgi payments ...`: point Stripe's webhooks at the app, settle payments whose
webhook never came, and, in development, pay an order with a test card at localstripe (no
browser, no Stripe.js)."""

import time
import urllib.parse
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from nexus.cli.failures import failed_item, finish
from nexus.database import utcnow
from nexus.errors import DomainError
from nexus.extensions import db
from nexus.orders.models import OrderStatus
from nexus.payments import gateway, service, webhooks
from nexus.payments.models import PaymentStatus

payments = AppGroup("payments", help="Payments and Stripe.")


@payments.command("reconcile")
@click.option(
    "--older-than-minutes", default=5, show_default=True, type=click.IntRange(min=0), help="Only payments this quiet."
)
def reconcile_command(older_than_minutes: int) -> None:
    """Read from Stripe every payment it may still move (open, or declined while its order waits)
    that has been quiet for a few minutes, and apply its real state through the webhook's own
    path: a lost webhook never leaves an order unpaid. A payment that cannot be read is logged
    and the rest go on; the command then exits 1."""
    stale = service.stale_payments(utcnow() - timedelta(minutes=older_than_minutes))
    changed, failed = [], []
    with click.progressbar(stale, label="reconciling", show_pos=True) as bar:
        for payment_id in bar:
            try:
                news = webhooks.reconcile(payment_id)
            except Exception as error:
                db.session.rollback()
                reason = failed_item(f"reconciling payment {payment_id}", error)
                failed.append(f"payment {payment_id}: not read from Stripe ({reason})")
                continue
            changed += [f"payment {payment_id}: {audit.type} {audit.outcome} ({audit.detail})" for audit in news]
    finish(
        changed,
        failed,
        f"checked {len(stale)} payments Stripe may still move, quiet for over {older_than_minutes} minutes; "
        f"{len(changed)} changed, {len(failed)} could not be read",
    )


# The app's two webhooks: (path, whether it takes connected accounts' events, its secret's setting).
WEBHOOKS = (
    ("/api/v1/webhooks/stripe", False, "STRIPE_WEBHOOK_SECRET"),
    ("/api/v1/webhooks/stripe-connect", True, "STRIPE_CONNECT_WEBHOOK_SECRET"),
)


@payments.command("setup-webhooks")
@click.option(
    "--base-url", required=True, help="Where the app is served, as Stripe reaches it: https://api.example.com"
)
def setup_webhooks_command(base_url: str) -> None:
    """Create at Stripe, or update when one with the same URL exists, the app's two webhook
    endpoints (the platform's events, and connected accounts' events) with exactly the event types
    the app handles, in the API version the app speaks. A new endpoint's signing secret is printed
    once (Stripe shows it only at its creation), with the setting it belongs in."""
    base = _base_url(base_url)
    if not gateway.configured():
        raise click.ClickException("Stripe is not configured: set STRIPE_SECRET_KEY.")
    try:
        existing = gateway.webhook_endpoints()
        for path, connect, secret_setting in WEBHOOKS:
            events = sorted((webhooks.CONNECT_HANDLERS if connect else webhooks.HANDLERS).keys())
            click.echo(_set_up(base + path, events, connect, secret_setting, existing))
    except DomainError as error:
        raise click.ClickException(error.message) from None


def _base_url(value: str) -> str:
    """The base URL without a trailing slash; https, but for the machine's own loopback."""
    url = urllib.parse.urlsplit(value.strip())
    local = url.hostname in ("localhost", "127.0.0.1")
    if url.scheme not in ("https", *(("http",) if local else ())) or not url.hostname or url.query or url.fragment:
        raise click.BadParameter(
            f"{value!r} is not an https URL such as https://api.example.com", param_hint="--base-url"
        )
    return value.strip().rstrip("/")


def _set_up(url: str, events: list[str], connect: bool, secret_setting: str, existing: list[dict]) -> str:
    """Update the endpoint at `url` in the pinned version, or create one: what was done."""
    what = f"{url} ({'connected accounts' if connect else 'the platform'}: {', '.join(events)})"
    same_url = [endpoint for endpoint in existing if endpoint["url"] == url]
    current = next((e for e in same_url if e.get("api_version") == gateway.API_VERSION), None)
    if current is not None:
        gateway.update_webhook_endpoint(current["id"], events=events)
        return f"updated {current['id']} for {what}; its signing secret is unchanged ({secret_setting})"
    created = gateway.create_webhook_endpoint(url=url, events=events, connect=connect)
    said = [
        f"created {created['id']} for {what}, API version {gateway.API_VERSION}",
        f"  its signing secret, shown this once: set {secret_setting}={created['secret']}",
    ]
    for old in same_url:  # Stripe cannot change an endpoint's version: the old one stays until deleted
        said.append(
            f"  {old['id']} at the same URL sends events in API version {old.get('api_version')}: delete it in "
            f"Stripe's dashboard once {secret_setting} holds the new secret"
        )
    return "\n".join(said)


TEST_CARD = "4242424242424242"  # Stripe's test Visa, always paid


@payments.command("pay-test")
@click.argument("order_id", type=click.IntRange(min=1))
@click.option(
    "--card", default=TEST_CARD, show_default=True, help="A Stripe test card number (4000000000000341 is declined)."
)
@click.option(
    "--wait-seconds",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="How long to wait for Stripe's webhook to settle the payment.",
)
def pay_test_command(order_id: int, card: str, wait_seconds: int) -> None:
    """Development only: pay ORDER_ID's open payment (its buyer started it with POST
    /api/v1/orders/ORDER_ID/payment) at the Stripe stand-in with a test card, as the buyer's
    browser would with Stripe.js, and wait for the webhook Stripe then sends to mark the order paid."""
    environment = current_app.config["ENVIRONMENT"]
    if environment != "development":
        raise click.ClickException(
            f"payments pay-test is for development only (ENVIRONMENT is {environment}): "
            "it pays with a test card at a Stripe stand-in."
        )
    try:
        gateway.check_stand_in()
        payment_id, intent_id = service.payment_to_pay(order_id)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    try:
        intent = gateway.pay_with_test_card(intent_id, card)
    except DomainError as error:
        raise click.ClickException(f"{error.message} Order {order_id} is still waiting for payment.") from None
    click.echo(f"Stripe: PaymentIntent {intent_id} of payment {payment_id} is {intent['status']} (card {card}).")
    if intent["status"] not in ("succeeded", "processing"):
        raise click.ClickException(f"Not paid: Stripe wants more than a card ({intent['status']}); try another card.")
    payment_status, order_status = _settled(payment_id, wait_seconds)
    if payment_status == PaymentStatus.PENDING:
        raise click.ClickException(
            f"No webhook reached the app in {wait_seconds} s, so order {order_id} is still {order_status}. Is Stripe's "
            "webhook pointed at /api/v1/webhooks/stripe with the app's STRIPE_WEBHOOK_SECRET (make dev does that)? "
            "Meanwhile `flask --app wsgi payments reconcile --older-than-minutes 0` reads the payment from Stripe."
        )
    click.echo(f"Webhook applied: payment {payment_id} is {payment_status}, order {order_id} is {order_status}.")
    if order_status != OrderStatus.PAID:
        raise click.ClickException(
            f"Order {order_id} is not paid; GET /api/v1/admin/payments/{payment_id} shows the webhook's trail."
        )


def _settled(payment_id: int, seconds: float) -> tuple[str, str]:
    """The payment's and its order's status once Stripe's webhook has moved the payment on, or
    after `seconds`, whichever comes first."""
    deadline = time.monotonic() + seconds
    while True:
        payment_status, order_status = service.payment_news(payment_id)
        if payment_status != PaymentStatus.PENDING or time.monotonic() >= deadline:
            return payment_status, order_status
        time.sleep(0.2)
