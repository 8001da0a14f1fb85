"""`flask --app wsgi payments ...`: settle payments whose webhook never came."""

from datetime import timedelta

import click
from flask.cli import AppGroup

from nexus.cli.failures import failed_item
from nexus.database import utcnow
from nexus.extensions import db
from nexus.payments import service, webhooks

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
    for line in changed + failed:
        click.echo(line)
    click.echo(
        f"checked {len(stale)} payments Stripe may still move, quiet for over {older_than_minutes} minutes; "
        f"{len(changed)} changed, {len(failed)} could not be read"
    )
    if failed:
        raise SystemExit(1)
