"""Seller payouts: each store's Stripe Connect account, the transfer each delivered order owes
its store, and what refunds take back of it.

Buyers pay the platform; a store's share of an order is transferred to its connected account
(separate charges and transfers). The share is `kept - fee`: `kept` is what the buyer has not
been refunded, the fee `kept * fee_bps / 10000` rounded down, all in integer minor units. It
falls due when the order is delivered (`_on_order_moved`, in the move's transaction) and is
made by a job once the store's account can take payouts; until then it waits as `pending`. A
refund (`_on_refund`, in the refund's transaction) lowers a transfer not yet made, or has a job
reverse the seller's part of it from one already made.

Jobs and `payouts reconcile` make transfers and reversals (`make`, `reverse`): each is noted
before it is sent to Stripe under one idempotency key, and looked for at Stripe if its answer
never came, so that however often, late or at once they run, a transfer is made once and a
refund reversed once. Before a seller is paid, the buyer's charge is read back from Stripe.
Demo transfers (`demo seed`'s) never reach Stripe.

Transactions follow the one rule written in `nexus.database`.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import BigInteger, and_, case, cast, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from nexus import audit
from nexus.database import utcnow
from nexus.errors import Forbidden, ServiceUnavailable
from nexus.extensions import db
from nexus.jobs import outbox
from nexus.orders.models import Order, OrderStatus
from nexus.orders.service import order_moved
from nexus.pagination import page_of_rows
from nexus.payments import gateway
from nexus.payments.models import Payment
from nexus.payments.service import payment_paying, refund_recorded
from nexus.payments.webhooks import read_back
from nexus.payouts.models import MADE, PayoutAccount, Transfer
from nexus.payouts.models import TransferStatus as T
from nexus.stores.service import get_store_for
from nexus.users.models import User

log = logging.getLogger(__name__)

BASIS_POINTS = 10_000
MAKE, REVERSE = "payouts.make_transfer", "payouts.reverse_transfer"
transfers = Transfer.__table__


# --- the arithmetic -------------------------------------------------------------------------


def fee_of(kept: int, fee_bps: int) -> int:
    """The platform's fee on what the buyer kept paid: `kept * fee_bps / 10000`, rounded down."""
    return kept * fee_bps // BASIS_POINTS


def share_of(kept: int, fee_bps: int) -> int:
    """The store's share of what the buyer kept paid."""
    return kept - fee_of(kept, fee_bps)


def new_transfer(*, store_id: int, order_id: int, currency: str, total: int, refunded: int, fee_bps: int) -> Transfer:
    """The transfer an order of `total` owes its store when it is delivered, `refunded` of it
    given back so far: due (pending), or nothing to transfer (canceled)."""
    transfer = Transfer(
        store_id=store_id,
        order_id=order_id,
        currency=currency,
        fee_bps=fee_bps,
        status=T.PENDING.value,
        amount_reversed=0,
    )
    settle(transfer, total - refunded)
    return transfer


def settle(transfer: Transfer, kept: int) -> int:
    """Bring `transfer` to what the buyer now keeps paid of its order: the fee on it and, while
    the transfer is not made, its amount (nothing left: canceled). Returns what is now to be
    reversed of a transfer already made (0 for one that is not)."""
    transfer.kept = kept
    transfer.fee = fee_of(kept, transfer.fee_bps)
    if T(transfer.status) is T.PENDING:
        transfer.amount = kept - transfer.fee
        if transfer.amount == 0:
            transfer.status = T.CANCELED.value
    return reversal_due(transfer)


def reversal_due(transfer: Transfer) -> int:
    """What is still to be taken back of a transfer made: what was transferred and not yet
    reversed, beyond the store's share now."""
    if T(transfer.status) not in MADE:
        return 0
    return max(0, transfer.amount - transfer.amount_reversed - share_of(transfer.kept, transfer.fee_bps))


def record_made(transfer: Transfer, stripe_transfer: dict[str, Any]) -> None:
    """Stripe made the transfer (`stripe_transfer`, its object): what it transferred, and any
    part of it reversed at Stripe already."""
    transfer.stripe_transfer_id = stripe_transfer["id"]
    transfer.amount = int(stripe_transfer["amount"])
    transfer.status = T.PAID.value
    catch_up(transfer, int(stripe_transfer.get("amount_reversed") or 0))


def record_reversal(transfer: Transfer, amount: int) -> None:
    transfer.amount_reversed += amount
    transfer.status = (T.REVERSED if transfer.amount_reversed == transfer.amount else T.PARTIALLY_REVERSED).value


def catch_up(transfer: Transfer, reversed_at_stripe: int) -> bool:
    """Stripe says `reversed_at_stripe` of the transfer is reversed in all (a total: news heard
    twice, or of a reversal we made ourselves, changes nothing): whether that was news."""
    news = min(reversed_at_stripe, transfer.amount) - transfer.amount_reversed
    if news <= 0 or T(transfer.status) not in MADE:
        return False
    record_reversal(transfer, news)
    return True


# --- accounts and onboarding ----------------------------------------------------------------


def account_of(store_id: int) -> PayoutAccount | None:
    return db.session.scalar(select(PayoutAccount).where(PayoutAccount.store_id == store_id))


def _check_onboarding_configured() -> None:
    if not gateway.configured():
        raise ServiceUnavailable("Payouts are not configured: set STRIPE_SECRET_KEY.")
    if not current_app.config["FRONTEND_URL"]:
        raise ServiceUnavailable("Seller onboarding is not configured: set FRONTEND_URL (where Stripe sends sellers).")


def _frontend(store_id: int, step: str) -> str:
    """Where Stripe sends the seller back: `return` when done, `refresh` for a new link (an
    expired or used one)."""
    return f"{current_app.config['FRONTEND_URL']}/stores/{store_id}/payouts?onboarding={step}"


ACCOUNT_OPENED = ("store_id", "stripe_account_id")


def start_onboarding(user: User, store_id: int) -> dict[str, Any]:
    """Onboard the store's owner with Stripe: open the store's Express account on the first
    call, and answer a fresh Account Link to its onboarding (`{url, expires_at}`). No
    transaction is open while Stripe is called."""
    store = get_store_for(user, store_id, manage=True)
    if store.owner_id != user.id:
        raise Forbidden("Only the store's owner sets up its payouts: they are paid to the owner's bank.")
    _check_onboarding_configured()
    store_id, email, account = store.id, user.email, account_of(store.id)
    account_id = account.stripe_account_id if account is not None else None
    db.session.commit()  # nothing changed: the read's transaction (SQLite: its lock) is not held over Stripe's call
    if account_id is None:
        account_id = _open_account(user, store_id, email)
    link = gateway.create_account_link(
        account_id=account_id, refresh_url=_frontend(store_id, "refresh"), return_url=_frontend(store_id, "return")
    )
    return {"url": link["url"], "expires_at": datetime.fromtimestamp(link["expires_at"], UTC)}


def _open_account(user: User, store_id: int, email: str) -> str:
    """The store's new connected account, stored (and committed). Two first calls at once get
    one account from Stripe (one key per store); the unique store id lets one of them store it."""
    opened = gateway.create_account(store_id=store_id, email=email)
    try:
        account = PayoutAccount(store_id=store_id, stripe_account_id=opened["id"], requirements_due=[])
        db.session.add(account)
        audit.record(user, "payout_account.open", account, None, audit.snapshot(account, ACCOUNT_OPENED))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    account_id = db.session.scalar(select(PayoutAccount.stripe_account_id).where(PayoutAccount.store_id == store_id))
    db.session.commit()
    return account_id


def _can_receive(store_id: int) -> bool:
    return bool(db.session.scalar(select(PayoutAccount.payouts_enabled).where(PayoutAccount.store_id == store_id)))


# --- what the store and admins see ----------------------------------------------------------

MADE_OR_REVERSED = [T.PAID.value, T.PARTIALLY_REVERSED.value, T.REVERSED.value]


def _total(amount: Any) -> Any:
    return cast(func.coalesce(func.sum(amount), 0), BigInteger)  # Postgres sums to numeric


SUMS = select(
    _total(case((Transfer.status == T.PENDING.value, Transfer.amount), else_=0)).label("pending"),
    _total(case((Transfer.status.in_(MADE_OR_REVERSED), Transfer.amount), else_=0)).label("transferred"),
    _total(Transfer.amount_reversed).label("reversed"),
)


def payouts_of(viewer: User, store_id: int) -> dict[str, Any]:
    """The store's account (or None before onboarding) and its money: pending (due, not yet
    made), transferred (made) and reversed since. Three queries, however many transfers."""
    store = get_store_for(viewer, store_id, manage=True)
    sums = db.session.execute(SUMS.where(Transfer.store_id == store.id)).one()
    return {"account": account_of(store.id), "currency": store.currency, **sums._mapping}


def list_store_transfers(
    viewer: User, store_id: int, *, status: str | None = None, limit: int, cursor: str | None = None
) -> dict:
    store = get_store_for(viewer, store_id, manage=True)
    return page_of_rows(transfers, limit=limit, cursor=cursor, store_id=store.id, status=status)


def list_transfers(*, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    """Every store's transfers, newest first, by status or store (admins)."""
    return page_of_rows(transfers, limit=limit, cursor=cursor, **filters)


# --- deliveries and refunds, in the transactions of their moves ------------------------------


def _refunded(order_id: int) -> int:
    """What the order's payments have given back so far (pending changes of the session included)."""
    return db.session.scalar(select(_total(Payment.amount_refunded)).where(Payment.order_id == order_id))


def _paid_by_demo(order_id: int) -> bool:
    """Whether the order was paid by a demo payment (`demo seed`): its transfer is never made."""
    return db.session.scalar(select(exists().where(Payment.order_id == order_id, Payment.demo)))


@order_moved.connect
def _on_order_moved(order: Order, *, after: OrderStatus, **_: Any) -> None:
    """A delivered order owes its store its share: a transfer due now, made at once by a job if
    the store's account can take payouts, else waiting for it."""
    if after is not OrderStatus.DELIVERED:
        return
    transfer = new_transfer(
        store_id=order.store_id,
        order_id=order.id,
        currency=order.currency,
        total=order.total,
        refunded=_refunded(order.id),
        fee_bps=current_app.config["PLATFORM_FEE_BPS"],
    )
    transfer.demo = _paid_by_demo(order.id)
    db.session.add(transfer)
    db.session.flush()
    if T(transfer.status) is T.PENDING and not transfer.demo and _can_receive(order.store_id):
        outbox.enqueue(MAKE, transfer_id=transfer.id)


@refund_recorded.connect
def _on_refund(payment: Payment, **_: Any) -> None:
    """A refund lowers the store's share: the transfer if it is not made yet (in full: canceled),
    or a job reverses the difference from the one made. Before delivery there is no transfer
    yet, and the one that falls due counts the refund."""
    transfer = _locked_transfer_where(Transfer.order_id == payment.order_id)
    if transfer is None:
        return
    total = db.session.scalar(select(Order.total).where(Order.id == payment.order_id))
    if settle(transfer, total - _refunded(payment.order_id)):
        outbox.enqueue(REVERSE, transfer_id=transfer.id)


def enqueue_waiting(store_id: int) -> int:
    """A job for each of the store's transfers waiting for its account; how many."""
    waiting = select(Transfer.id).where(
        Transfer.store_id == store_id, Transfer.status == T.PENDING.value, Transfer.amount > 0, ~Transfer.demo
    )
    ids = db.session.scalars(waiting.order_by(Transfer.id)).all()
    for transfer_id in ids:
        outbox.enqueue(MAKE, transfer_id=transfer_id)
    return len(ids)


# --- making transfers and reversals ---------------------------------------------------------
#
# Money never moves twice, however late a retry comes (Stripe forgets an idempotency key after a
# day; a job or the cron may retry days later). Each move is noted on the transfer's row
# (`attempted_at`, `reversal_attempted_at`) and committed before it is sent to Stripe, then
# recorded with Stripe's answer. One noted and not recorded may have been made: before anything
# else it is looked for at Stripe. Two workers at once send the same move under the same key, so
# Stripe makes it once; each unit takes the transfer's row afresh for each step.


def _locked_transfer(transfer_id: int) -> Transfer | None:
    return _locked_transfer_where(Transfer.id == transfer_id)


def _locked_transfer_where(where) -> Transfer | None:
    """The transfer, freshly read, its row locked until the transaction ends (None if there is none)."""
    statement = select(Transfer).where(where).with_for_update()
    return db.session.scalar(statement.execution_options(populate_existing=True))


def _can_make(transfer: Transfer) -> bool:
    return T(transfer.status) is T.PENDING and transfer.amount > 0 and _can_receive(transfer.store_id)


def make(transfer_id: int) -> str | None:
    """The unit of work that makes a transfer due (a job, the cron), committing each step; what
    changed, or None. A transfer sent before and never recorded is looked for first (even if a
    refund has since canceled it here); one made has what refunds took of it reversed. Before a
    seller is paid, the buyer's charge is read back from Stripe: a refund Stripe knows of and we
    do not is applied first (lowering the share), and while the charge is disputed nobody is paid."""
    transfer = _locked_transfer(transfer_id)
    if transfer is None or transfer.demo:
        db.session.commit()
        return None
    found = None
    if transfer.stripe_transfer_id is None and transfer.attempted_at is not None:
        account = account_of(transfer.store_id)  # an attempt was made to it
        found = gateway.find_transfer(
            transfer_id=transfer.id, order_id=transfer.order_id, destination=account.stripe_account_id
        )
        if found is not None:
            record_made(transfer, found)
        elif _cut_short(transfer.attempted_at):  # never made: the next attempt is a new one, its own key
            transfer.attempted_at = None
    if transfer.stripe_transfer_id is not None:  # made: what refunds took since is reversed
        db.session.commit()
        return _and_reversed(transfer_id, found and _made(found))
    if not _can_make(transfer):
        db.session.commit()
        return None
    order_id = transfer.order_id
    db.session.commit()  # no lock held while Stripe is read: a refund found locks its payment first
    charge = _charge_read_back(order_id)
    if charge is not None and _disputed(charge):
        log.warning("transfer %s waits: the buyer's charge %s is disputed", transfer_id, charge["id"])
        return f"waits: the buyer's charge {charge['id']} is disputed"
    transfer = _locked_transfer(transfer_id)
    if not _can_make(transfer):  # a refund read back canceled it, or the account stopped taking payouts
        db.session.commit()
        return None
    transfer.attempted_at = transfer.attempted_at or utcnow()  # one in flight is joined, under its key
    db.session.commit()  # noted before it is sent
    transfer = _locked_transfer(transfer_id)
    made = _sent(transfer, charge["id"] if charge else None)
    db.session.commit()
    return _and_reversed(transfer_id, made)


def _charge_read_back(order_id: int) -> dict[str, Any] | None:
    """The charge that paid the order, as Stripe holds it now, its news applied (its own units)."""
    payment_id = payment_paying(order_id)
    return None if payment_id is None else read_back(payment_id)[1]


def _disputed(charge: dict[str, Any]) -> bool:
    """Whether a dispute of the charge is open, or was lost (Stripe's `disputed` stays true once a
    charge was ever disputed, a dispute won included, so its disputes are read)."""
    return bool(charge.get("disputed")) and any(
        dispute["status"] not in SETTLED_FOR_THE_SELLER for dispute in gateway.disputes_of(charge["id"])
    )


SETTLED_FOR_THE_SELLER = ("won", "warning_closed")  # the disputes that leave the seller's share whole


def _sent(transfer: Transfer, source_charge: str | None) -> str | None:
    """Send the noted transfer to Stripe and record it, if it is still to be made: what changed.
    A conflict on its key means an earlier attempt went through before a refund lowered it: that
    one is found and recorded (the difference is then reversed)."""
    if not _can_make(transfer):
        return None
    account = account_of(transfer.store_id)
    details = {"transfer_id": transfer.id, "order_id": transfer.order_id, "store_id": transfer.store_id}
    try:
        made = gateway.create_transfer(
            amount=transfer.amount,
            currency=transfer.currency,
            destination=account.stripe_account_id,
            source_charge=source_charge,
            attempt=transfer.attempted_at,
            **details,
        )
    except gateway.IdempotencyConflict:
        made = gateway.find_transfer(
            transfer_id=transfer.id, order_id=transfer.order_id, destination=account.stripe_account_id
        )
        if made is None:
            raise
    record_made(transfer, made)
    return _made(made)


def _made(made: dict[str, Any]) -> str:
    """What a transfer Stripe made (`made`, its object) did."""
    return f"{made['amount']} {made['currency']} transferred to {made['destination']} ({made['id']})"


def _and_reversed(transfer_id: int, change: str | None) -> str | None:
    """`change`, and what `reverse` then took back of the transfer (refunds that came meanwhile)."""
    reversed_now = reverse(transfer_id)
    return "; ".join(part for part in (change, reversed_now) if part) or None


def reverse(transfer_id: int) -> str | None:
    """The unit of work that reverses at Stripe what refunds took of a transfer made (a job, the
    cron), committing each step; what changed, or None. A reversal sent and never recorded is
    read back first: what the transfer has reversed in all at Stripe (a total, which also counts
    reversals made in Stripe's dashboard). If Stripe refuses (it holds reversals we did not know
    of), the transfer is read back and what is still due reversed; if nothing was missing, the
    refusal stands (the job is retried)."""
    transfer = _locked_transfer(transfer_id)
    if transfer is None or transfer.demo or transfer.stripe_transfer_id is None:
        db.session.commit()
        return None
    caught_up = _cut_short(transfer.reversal_attempted_at) and _caught_up(transfer)
    due = reversal_due(transfer)
    if not due:
        db.session.commit()
        return f"{transfer.amount_reversed} {transfer.currency} reversed at Stripe already" if caught_up else None
    transfer.reversal_attempted_at = transfer.reversal_attempted_at or utcnow()  # one in flight is joined
    db.session.commit()  # noted before it is sent
    transfer = _locked_transfer(transfer_id)
    due = reversal_due(transfer)
    if not due or transfer.reversal_attempted_at is None:  # another worker sent the one noted meanwhile
        db.session.commit()
        return reverse(transfer_id) if due else None  # what a refund since then took: a new reversal
    try:
        reversal = gateway.reverse_transfer(
            stripe_transfer_id=transfer.stripe_transfer_id,
            transfer_id=transfer.id,
            amount=due,
            attempt=transfer.reversal_attempted_at,
        )
    except gateway.StripeRefused:
        db.session.rollback()
        transfer = _locked_transfer(transfer_id)
        if not _caught_up(transfer):
            raise
        db.session.commit()
        return reverse(transfer_id) or f"{transfer.amount_reversed} {transfer.currency} reversed at Stripe already"
    record_reversal(transfer, int(reversal["amount"]))
    transfer.reversal_attempted_at = None
    db.session.commit()
    return f"{reversal['amount']} {transfer.currency} reversed ({reversal['id']})"


def _cut_short(noted: datetime | None) -> bool:
    """Whether a move noted then (if at all) can no longer be in flight: its answer was lost, or
    Stripe refused it, or its worker died. Until then another worker joins it under its key."""
    return noted is not None and noted < utcnow() - gateway.CUT_SHORT_AFTER


def _caught_up(transfer: Transfer) -> bool:
    """Read what the transfer has reversed in all at Stripe and catch up with it (the reversal
    noted is then accounted for either way); whether that was news."""
    transfer.reversal_attempted_at = None
    return catch_up(transfer, int(gateway.retrieve_transfer(transfer.stripe_transfer_id)["amount_reversed"]))


@outbox.job(MAKE)
def make_transfer(*, transfer_id: int) -> None:
    """The job: make a due transfer, once however often it is delivered."""
    make(transfer_id)


@outbox.job(REVERSE)
def reverse_transfer(*, transfer_id: int) -> None:
    """The job: reverse what refunds took of a transfer made, once however often it is delivered."""
    reverse(transfer_id)


# --- reconciling ------------------------------------------------------------------------------


def transfers_due() -> list[int]:
    """Transfers that can be made now (due, to an account taking payouts) or have a reversal due,
    and those whose sending was never answered (found at Stripe, or made, when they are)."""
    takes_payouts = select(PayoutAccount.store_id).where(PayoutAccount.payouts_enabled)
    pending = and_(Transfer.status == T.PENDING.value, Transfer.amount > 0, Transfer.store_id.in_(takes_payouts))
    reversal = and_(
        Transfer.status.in_([status.value for status in MADE]),
        Transfer.amount - Transfer.amount_reversed > Transfer.kept - Transfer.fee,
    )
    unanswered = or_(
        Transfer.attempted_at.is_not(None) & Transfer.stripe_transfer_id.is_(None),
        Transfer.reversal_attempted_at.is_not(None),
    )
    statement = select(Transfer.id).where(pending | reversal | unanswered, ~Transfer.demo)
    return list(db.session.scalars(statement.order_by(Transfer.id)))


def accounts_waiting() -> list[str]:
    """Connected accounts not taking payouts while transfers wait for them: their news may
    have been lost."""
    waiting = exists().where(
        Transfer.store_id == PayoutAccount.store_id,
        Transfer.status == T.PENDING.value,
        Transfer.amount > 0,
        ~Transfer.demo,
    )
    statement = select(PayoutAccount.stripe_account_id).where(~PayoutAccount.payouts_enabled, waiting)
    return list(db.session.scalars(statement.order_by(PayoutAccount.id)))


def settle_now(transfer_id: int) -> str | None:
    """The command's unit of work for one transfer: make it (or find it) if it is to be made,
    reverse what is due of it if it is made. What changed, or None."""
    try:
        return make(transfer_id)
    except Exception:
        db.session.rollback()
        raise
