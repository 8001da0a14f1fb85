"""Stripe Connect's webhook (`POST /api/v1/webhooks/stripe-connect`): events of the stores'
connected accounts, signed with STRIPE_CONNECT_WEBHOOK_SECRET, through the payments webhook's
own machinery (stored once in `payment_event_audits`, applied, outcome recorded).

- `account.updated`: the account's flags and what Stripe still needs; when payouts become
  enabled, the store's waiting transfers are handed to jobs.
- `transfer.reversed`: Stripe's total reversed of a transfer (a reversal made in its dashboard,
  or one of ours), applied once. Transfers are the platform's own objects, so Stripe sends
  this to the platform's webhook: it is handled there too.
- `payout.paid`, `payout.failed`: the account's latest payout to its bank, on the store's payouts.

Each event is applied under its row's lock and compared with what is recorded, so news that
comes twice, late or out of order changes things once.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from nexus.database import utcnow
from nexus.extensions import db
from nexus.payments import gateway
from nexus.payments import webhooks as payment_webhooks
from nexus.payments.models import EventOutcome, PaymentEventAudit
from nexus.payments.service import Applied
from nexus.payouts import service
from nexus.payouts.models import PayoutAccount, Transfer


def _when(timestamp: Any) -> datetime:
    """A Stripe timestamp (seconds since the epoch) as an aware datetime; now if it has none."""
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp is not None else utcnow()


def _locked_account(stripe_account_id: str | None) -> PayoutAccount | None:
    if not stripe_account_id:
        return None
    statement = select(PayoutAccount).where(PayoutAccount.stripe_account_id == stripe_account_id).with_for_update()
    return db.session.scalar(statement.execution_options(populate_existing=True))


FLAGS = ("charges_enabled", "payouts_enabled", "details_submitted")


def apply_account_updated(event: dict[str, Any]) -> Applied:
    """Stripe says what a connected account can do now, and what it still needs."""
    data = event["data"]["object"]
    account = _locked_account(data.get("id"))
    if account is None:
        return Applied(EventOutcome.IGNORED, f"No store has the connected account {data.get('id')}.")
    said_at = _when(event.get("created"))
    if account.known_at is not None and said_at < account.known_at:
        return Applied(EventOutcome.IGNORED, "Stale news: a later state of the account is recorded.")
    now = {flag: bool(data.get(flag)) for flag in FLAGS}
    due = list((data.get("requirements") or {}).get("currently_due") or [])
    was_paying = account.payouts_enabled
    account.known_at = said_at
    if now == {flag: getattr(account, flag) for flag in FLAGS} and due == account.requirements_due:
        return Applied(EventOutcome.DUPLICATE, "The account is already recorded so.")
    for flag, value in now.items():
        setattr(account, flag, value)
    account.requirements_due = due
    detail = f"Payouts {'enabled' if account.payouts_enabled else 'disabled'}; {len(due)} requirements due."
    if account.payouts_enabled and not was_paying:
        detail += f" {service.enqueue_waiting(account.store_id)} waiting transfers handed to jobs."
    return Applied(EventOutcome.APPLIED, detail)


def apply_transfer_reversed(event: dict[str, Any]) -> Applied:
    """Stripe says how much of a transfer is reversed in all."""
    data = event["data"]["object"]
    statement = select(Transfer).where(Transfer.stripe_transfer_id == data.get("id")).with_for_update()
    transfer = db.session.scalar(statement.execution_options(populate_existing=True))
    if transfer is None:
        return Applied(EventOutcome.IGNORED, f"No transfer of ours is {data.get('id')}.")
    if not service.catch_up(transfer, int(data.get("amount_reversed") or 0)):
        return Applied(EventOutcome.DUPLICATE, f"{transfer.amount_reversed} of it is already recorded as reversed.")
    return Applied(EventOutcome.APPLIED, f"{transfer.amount_reversed} of {transfer.amount} reversed.")


def apply_payout(event: dict[str, Any]) -> Applied:
    """A connected account's payout to its bank was paid, or failed (a paid one may fail later;
    a failed one is never paid): the store's latest payout."""
    payout, status = event["data"]["object"], event["type"].removeprefix("payout.")
    account = _locked_account(event.get("account"))
    if account is None:
        return Applied(EventOutcome.IGNORED, f"No store has the connected account {event.get('account')}.")
    created = _when(payout.get("created"))
    same = account.last_payout_id == payout["id"]
    if not same and account.last_payout_created is not None and created < account.last_payout_created:
        return Applied(EventOutcome.IGNORED, "A payout older than the latest one recorded.")
    if same and account.last_payout_status in (status, "failed"):
        return Applied(EventOutcome.DUPLICATE, f"The payout is already recorded as {account.last_payout_status}.")
    account.last_payout_id, account.last_payout_status = payout["id"], status
    account.last_payout_amount, account.last_payout_currency = int(payout["amount"]), payout["currency"]
    account.last_payout_created = created
    account.last_payout_arrival = _when(payout["arrival_date"]) if payout.get("arrival_date") else None
    account.last_payout_failure = payout.get("failure_message") if status == "failed" else None
    return Applied(EventOutcome.APPLIED, f"Payout {payout['id']} of {payout['amount']} {payout['currency']} {status}.")


HANDLERS = {
    "account.updated": apply_account_updated,
    "transfer.reversed": apply_transfer_reversed,
    "payout.paid": apply_payout,
    "payout.failed": apply_payout,
}
payment_webhooks.handle_events(HANDLERS, connect=True)
payment_webhooks.handle_events({"transfer.reversed": apply_transfer_reversed}, connect=False)


def receive(payload: bytes, signature: str | None) -> tuple[PaymentEventAudit, bool]:
    """Verify and process one delivery to the Connect webhook: `(its audit row, whether it was
    a duplicate)`."""
    secret = "STRIPE_CONNECT_WEBHOOK_SECRET"  # noqa: S105 (the setting's name)
    event = gateway.verify_event(payload, signature, secret_setting=secret, endpoint="Connect webhook")
    return payment_webhooks.process(event, source="webhook", handlers=payment_webhooks.CONNECT_HANDLERS)


def reconcile_account(stripe_account_id: str) -> PaymentEventAudit | None:
    """Apply what Stripe says of a connected account now, through the same path as its
    `account.updated` (recorded with source `reconcile`): the audit row if it was news. The
    event's id names the state read and the state recorded, so reading the same twice records
    it once."""
    data = gateway.retrieve_account(stripe_account_id)
    state = [data.get(flag) for flag in FLAGS] + [(data.get("requirements") or {}).get("currently_due")]
    account = db.session.scalar(select(PayoutAccount).where(PayoutAccount.stripe_account_id == stripe_account_id))
    recorded = int(account.known_at.timestamp()) if account is not None and account.known_at else 0
    digest = hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]
    event = {
        "id": f"reconcile_{stripe_account_id}_{digest}_{recorded}",
        "type": "account.updated",
        "account": stripe_account_id,
        "created": int(utcnow().timestamp()),
        "data": {"object": data},
    }
    audit, duplicate = payment_webhooks.process(event, source="reconcile", handlers=payment_webhooks.CONNECT_HANDLERS)
    return None if duplicate or audit.outcome == EventOutcome.DUPLICATE else audit
