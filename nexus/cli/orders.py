"""`flask --app wsgi orders ...`: order housekeeping, run by Render's cron every 5 minutes."""

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from nexus.cli.failures import failed_item
from nexus.database import utcnow
from nexus.errors import Conflict
from nexus.extensions import db
from nexus.orders import service
from nexus.orders.models import OrderStatus
from nexus.payments import service as payments

orders = AppGroup("orders", help="Order housekeeping.")


@orders.command("expire-stale")
def expire_stale_command() -> None:
    """Expire orders left unpaid past ORDER_PAYMENT_TIMEOUT_MINUTES (as set now), cancelling
    their Stripe payment first and releasing their stock, and forget idempotency keys older
    than 24 hours. An order whose payment is processing or being started is left to its
    payment's news. One that cannot be expired (Stripe down or refusing) is logged and the
    rest go on; the command then exits 1."""
    minutes = current_app.config["ORDER_PAYMENT_TIMEOUT_MINUTES"]
    now = utcnow()
    stale = service.stale_order_ids(now - timedelta(minutes=minutes))
    expired, waiting, failed = 0, 0, 0
    with click.progressbar(stale, label="expiring") as bar:
        for order_id in bar:
            try:
                payments.withdraw(order_id, OrderStatus.EXPIRED, {service.SYSTEM})
                expired += 1
            except Conflict:  # being paid at this moment: the payment's news settles the order
                db.session.rollback()
                waiting += 1
            except Exception as error:  # Stripe down or refusing to cancel, or a bug
                db.session.rollback()
                failed_item(f"expiring order {order_id}", error)
                failed += 1
    forgotten = service.forget_idempotency_keys(now - service.IDEMPOTENCY_WINDOW)
    click.echo(
        f"expired {expired} orders unpaid for over {minutes} minutes; {waiting} left to their payment, "
        f"{failed} could not be expired; forgot {forgotten} idempotency keys"
    )
    if failed:
        raise SystemExit(1)
