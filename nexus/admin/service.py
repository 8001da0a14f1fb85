"""The admin console: find and change users, follow payments and their webhook trail, refund,
see the numbers. Every write an admin makes here is recorded in `admin_audit_log`."""

import logging
from functools import cache
from typing import Any

from sqlalchemy import Select, func, or_, select

from nexus.audit import AdminAuditEntry, record, snapshot
from nexus.auth import tokens
from nexus.database import contains, matches, read
from nexus.errors import Invalid, NotFound
from nexus.extensions import db
from nexus.jobs.outbox import OutboxJob
from nexus.orders.models import Order
from nexus.pagination import newest_first, page_of_rows, paginate, rows_where
from nexus.payments import gateway, webhooks
from nexus.payments import service as payments
from nexus.payments.models import Payment, PaymentEventAudit, PaymentStatus
from nexus.stores.models import Product, Store
from nexus.users.models import Role, User

log = logging.getLogger(__name__)
users = User.__table__


# --- users ----------------------------------------------------------------------------------


@cache
def _users_query(*, search: bool, filters: frozenset[str]) -> Select:
    statement = rows_where(users, filters)
    return statement.where(or_(matches(users.c.email, "q"), matches(users.c.full_name, "q"))) if search else statement


def list_users(*, q: str | None = None, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    """Users newest first; `q` is part of an email or a name, the rest must equal."""
    given = {name: value for name, value in filters.items() if value is not None}
    params = {**given, **({"q": contains(q)} if q else {})}
    base = _users_query(search=bool(q), filters=frozenset(given))
    return paginate(base, newest_first(users), limit=limit, cursor=cursor, params=params)


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def update_user(actor: User, user_id: int, changes: dict[str, Any]) -> User:
    """Change a user's role or whether they may sign in. Deactivating locks them out at once
    (every request reads the user) and revokes every token they hold, for good: reactivated,
    they sign in again; nobody demotes or
    deactivates themself (there must stay an admin to undo it)."""
    user = get_user(user_id)
    if user.id == actor.id and (changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False):
        field = "role" if "role" in changes else "is_active"
        message = "You cannot demote or deactivate yourself; ask another admin."
        raise Invalid(message, errors={"json": {field: [message]}})
    before = snapshot(user, ("role", "is_active"))
    for field, value in changes.items():
        setattr(user, field, value)
    if before["is_active"] and not user.is_active:
        tokens.revoke_all_tokens(user)
    record(actor, "user.update", user, before, snapshot(user, ("role", "is_active")))
    db.session.commit()
    return user


# --- payments and their trail -------------------------------------------------------------


def list_payments(*, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    return page_of_rows(Payment.__table__, limit=limit, cursor=cursor, **filters)


def get_payment(payment_id: int) -> dict[str, Any]:
    """The payment and its events, oldest first."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    events = db.session.scalars(
        select(PaymentEventAudit).where(PaymentEventAudit.payment_id == payment_id).order_by(PaymentEventAudit.id)
    ).all()
    return {**{column.key: getattr(payment, column.key) for column in Payment.__table__.c}, "events": events}


def list_payment_events(*, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    return page_of_rows(PaymentEventAudit.__table__, limit=limit, cursor=cursor, **filters)


def refund(actor: User, payment_id: int, amount: int | None) -> Payment:
    """Refund through Stripe; the refund and its audit entry commit together. If Stripe refuses
    (it holds another state than ours: refunded elsewhere, never paid), the payment is read back
    from Stripe so ours catches up, and the refusal is the answer."""

    def audited(payment: Payment, before: dict) -> None:
        record(actor, "payment.refund", payment, before, snapshot(payment, payments.REFUND_AUDITED))

    try:
        return payments.refund(payment_id, amount, also=audited)
    except gateway.StripeRefused:
        _read_back(payment_id)
        raise


def _read_back(payment_id: int) -> None:
    """Catch up with Stripe's state of a payment, if Stripe can be read now (else the reconcile cron will)."""
    try:
        webhooks.reconcile(payment_id)
    except gateway.PaymentGatewayError as error:
        log.warning("payment %s not read back from Stripe: %s", payment_id, error.message)


def replay(actor: User, event_id: int) -> PaymentEventAudit:
    """Apply a recorded event again; the replay and its audit entry commit together."""
    audit = webhooks.locked_event(event_id)
    before = snapshot(audit, ("outcome", "detail", "replays"))

    def audited() -> None:
        record(actor, "payment_event.replay", audit, before, snapshot(audit, ("outcome", "detail", "replays")))

    return webhooks.replay(audit, also=audited)


# --- the numbers and the audit log --------------------------------------------------------

COUNTS = select(
    select(func.count()).select_from(User).scalar_subquery().label("users"),
    select(func.count()).select_from(Store).scalar_subquery().label("stores"),
    select(func.count()).select_from(Product).scalar_subquery().label("products"),
)
ORDERS_BY_STATUS = select(Order.status, func.count()).group_by(Order.status)
# Money kept: what was taken, less what was given back.
REVENUE = (
    select(Payment.currency, func.sum(Payment.amount - Payment.amount_refunded))
    .where(Payment.status.in_([PaymentStatus.SUCCEEDED.value, PaymentStatus.PARTIALLY_REFUNDED.value]))
    .group_by(Payment.currency)
)


def stats() -> dict[str, Any]:
    """The marketplace's numbers, in three queries whatever its size."""
    counts = read(COUNTS)[0]
    return {
        **counts._mapping,
        "orders_by_status": {status: int(count) for status, count in read(ORDERS_BY_STATUS)},
        "revenue": {currency: int(total) for currency, total in read(REVENUE)},
    }


def list_jobs(*, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    """Background jobs newest first, without their payloads (a sign-in job's holds an address)."""
    return page_of_rows(OutboxJob.__table__, limit=limit, cursor=cursor, **filters)


def list_audit_log(*, limit: int, cursor: str | None = None) -> dict:
    return page_of_rows(AdminAuditEntry.__table__, limit=limit, cursor=cursor)
