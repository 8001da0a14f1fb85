"""`flask --app wsgi payments ...`: settle payments whose webhook never came."""

from datetime import timedelta

import click
from flask.cli import AppGroup

from nexus.database import utcnow
from nexus.payments import gateway, service, webhooks
from nexus.payments.models import EventOutcome

payments = AppGroup("payments", help="Payments and Stripe.")


@payments.command("reconcile")
@click.option(
    "--older-than-minutes", default=5, show_default=True, type=click.IntRange(min=0), help="Only payments this quiet."
)
def reconcile_command(older_than_minutes: int) -> None:
    """Read from Stripe every payment still open after a few minutes and apply its real status,
    through the webhook's own path (recorded in the event audit): a lost webhook never leaves
    an order unpaid."""
    stale = service.stale_open_payments(utcnow() - timedelta(minutes=older_than_minutes))
    changed = []
    with click.progressbar(stale, label="reconciling", show_pos=True) as bar:
        for payment_id in bar:
            try:
                event = service.event_from_stripe(payment_id)
            except gateway.PaymentGatewayError as error:
                changed.append(f"payment {payment_id}: not read from Stripe ({error.message})")
                continue
            if event is not None:
                audit, duplicate = webhooks.process(event, source="reconcile")
                if not duplicate and audit.outcome != EventOutcome.DUPLICATE:
                    changed.append(f"payment {payment_id}: {event['type']} {audit.outcome} ({audit.detail})")
    for line in changed:
        click.echo(line)
    click.echo(
        f"checked {len(stale)} open payments quiet for over {older_than_minutes} minutes; {len(changed)} changed"
    )
