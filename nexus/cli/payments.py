"""`flask --app wsgi payments ...`: settle payments whose webhook never came, and, in
development, pay an order with a test card at localstripe (no browser, no Stripe.js)."""

import time
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
