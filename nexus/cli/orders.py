"""`flask --app wsgi orders ...`: order housekeeping, run by Render's cron every 5 minutes."""

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from nexus.database import utcnow
from nexus.orders import service
from nexus.payments import service as payments

orders = AppGroup("orders", help="Order housekeeping.")


@orders.command("expire-stale")
def expire_stale_command() -> None:
    """Expire orders left unpaid past ORDER_PAYMENT_TIMEOUT_MINUTES (as set now), restoring
    their stock and cancelling their unconfirmed Stripe payment, and forget idempotency keys
    older than 24 hours. An order whose payment is processing is left to its webhook."""
    minutes = current_app.config["ORDER_PAYMENT_TIMEOUT_MINUTES"]
    now = utcnow()
    stale = service.stale_order_ids(now - timedelta(minutes=minutes))
    paying = payments.payments_in_flight(stale)
    expired = 0
    with click.progressbar([order_id for order_id in stale if order_id not in paying], label="expiring") as bar:
        for order_id in bar:
            if service.expire(order_id):
                payments.abandon_open_payment(order_id)
                expired += 1
    forgotten = service.forget_idempotency_keys(now - service.IDEMPOTENCY_WINDOW)
    click.echo(f"expired {expired} orders unpaid for over {minutes} minutes; forgot {forgotten} idempotency keys")
