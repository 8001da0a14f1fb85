"""`flask --app wsgi payouts ...`: make the transfers to sellers that are due, run by Render's cron."""

import click
from flask.cli import AppGroup

from nexus.cli.failures import failed_item, finish
from nexus.extensions import db
from nexus.payouts import service, webhooks

payouts = AppGroup("payouts", help="Sellers' payouts through Stripe Connect.")


@payouts.command("reconcile")
def reconcile_command() -> None:
    """Make every transfer to a seller that is due and can be made, and every reversal refunds
    left due, so a lost webhook or a job that gave up never leaves a seller unpaid. First the
    accounts transfers wait for are read back from Stripe (their `account.updated` may have been
    lost). An item that fails is logged and the rest go on; the command then exits 1."""
    changed, failed = [], []
    accounts = service.accounts_waiting()
    for account_id in accounts:
        try:
            news = webhooks.reconcile_account(account_id)
        except Exception as error:
            db.session.rollback()
            failed.append(f"account {account_id}: not read from Stripe ({failed_item(f'reading {account_id}', error)})")
            continue
        if news is not None:
            changed.append(f"account {account_id}: {news.outcome} ({news.detail})")
    due = service.transfers_due()
    with click.progressbar(due, label="transfers", show_pos=True) as bar:
        for transfer_id in bar:
            try:
                change = service.settle_now(transfer_id)
            except Exception as error:
                reason = failed_item(f"settling transfer {transfer_id}", error)
                failed.append(f"transfer {transfer_id}: not settled ({reason})")
                continue
            if change:
                changed.append(f"transfer {transfer_id}: {change}")
    finish(
        changed,
        failed,
        f"read {len(accounts)} accounts with transfers waiting back from Stripe, checked {len(due)} transfers due; "
        f"{len(changed)} changed, {len(failed)} could not be",
    )
