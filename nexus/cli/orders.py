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
    """Expire orders left unpaid past ORDER_PAYMENT_TIMEOUT_MINUTES (as set now), cancelling
    their Stripe payment first and restoring their stock, and forget idempotency keys older
    than 24 hours. An order whose payment is processing is left to its webhook."""
    minutes = current_app.config["ORDER_PAYMENT_TIMEOUT_MINUTES"]
    now = utcnow()
    stale = service.stale_order_ids(now - timedelta(minutes=minutes))
    with click.progressbar(stale, label="expiring") as bar:
        expired = sum(payments.expire_unpaid(order_id) for order_id in bar)
    forgotten = service.forget_idempotency_keys(now - service.IDEMPOTENCY_WINDOW)
    click.echo(f"expired {expired} orders unpaid for over {minutes} minutes; forgot {forgotten} idempotency keys")
