"""Stripe's webhooks: verify the signature, store the event once, apply it, record the outcome.

The event's Stripe id is unique in `payment_event_audits`: of two deliveries of one event (a
retry, or the same event sent to two instances at once) the database lets one in, and the
other answers "duplicate". A delivery whose applying failed is recorded as an error and
answered 500, so Stripe retries; the retry finds the error and applies the event then.

Each endpoint applies its events through a table of handlers (type -> handler of the event):
`HANDLERS` for the platform's own account (`/webhooks/stripe`), `CONNECT_HANDLERS` for events
of connected accounts (Stripe Connect, a top-level `account`). Domains built on payments add
theirs with `handle_events` (payouts: the Connect webhook's events, and `transfer.reversed`,
which Stripe sends the platform); payments import none of them.
"""

import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from nexus.database import utcnow
from nexus.errors import DomainError, NotFound, retryable
from nexus.extensions import db
from nexus.payments import gateway, service
from nexus.payments.models import EventOutcome, PaymentEventAudit, PaymentStatus

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], service.Applied]  # applies one event, in the caller's transaction


def _intent(to: PaymentStatus) -> Handler:
    return lambda event: service.apply_intent(event["data"]["object"], to)


HANDLERS: dict[str, Handler] = {
    "payment_intent.processing": _intent(PaymentStatus.PROCESSING),
    "payment_intent.succeeded": _intent(PaymentStatus.SUCCEEDED),
    "payment_intent.payment_failed": _intent(PaymentStatus.FAILED),
    "payment_intent.canceled": _intent(PaymentStatus.CANCELED),
    "charge.refunded": lambda event: service.apply_charge_refunded(event["data"]["object"]),
}
CONNECT_HANDLERS: dict[str, Handler] = {}


def handle_events(table: dict[str, Handler], *, connect: bool) -> None:
    """Apply more event types: of connected accounts (`connect`, the Connect webhook's), or of
    the platform's own account. Registered when the app is built (the domain's routes import it)."""
    (CONNECT_HANDLERS if connect else HANDLERS).update(table)


def handlers_for(event: dict[str, Any]) -> dict[str, Handler]:
    """The table of the endpoint an event came to: connected accounts' events carry `account`."""
    return CONNECT_HANDLERS if event.get("account") else HANDLERS


LOCK_TIMEOUT = "2s"  # wait this long for a payment row another request holds; then fail, Stripe retries


class EventNotApplied(DomainError):
    status_code = HTTPStatus.INTERNAL_SERVER_ERROR


def receive(payload: bytes, signature: str | None) -> tuple[PaymentEventAudit, bool]:
    """Verify and process one delivery: `(its audit row, whether it was a duplicate)`."""
    return process(gateway.verify_event(payload, signature), source="webhook")


def process(
    event: dict[str, Any], *, source: str, handlers: dict[str, Handler] = HANDLERS
) -> tuple[PaymentEventAudit, bool]:
    """Store the event once (scrubbed of secrets), apply it through `handlers`, record the
    outcome, in one transaction: `(its audit row, whether it was a duplicate)`. A delivery of an
    event whose earlier delivery failed applies it now."""
    started = time.perf_counter()
    event = gateway.scrubbed(event)
    _limit_lock_waits()
    audit = _stored_once(event, source)
    if audit is None:  # stored by an earlier delivery
        audit = _locked_audit(select(PaymentEventAudit).filter_by(stripe_event_id=event["id"]))
        audit.deliveries += 1
        if audit.outcome != EventOutcome.ERROR:
            db.session.commit()
            return audit, True
    apply_event(audit, event, started=started, handlers=handlers)
    return audit, False


def _stored_once(event: dict[str, Any], source: str) -> PaymentEventAudit | None:
    """The event's new audit row, or None if its Stripe id is stored already (the unique id
    decides between simultaneous deliveries)."""
    try:
        with db.session.begin_nested():
            audit = PaymentEventAudit(
                stripe_event_id=event["id"],
                type=event["type"],
                source=source,
                payload=event,
                outcome=EventOutcome.ERROR,
            )
            db.session.add(audit)
    except IntegrityError:
        return None
    return audit


def reconcile(payment_id: int) -> list[PaymentEventAudit]:
    """Apply what Stripe says of a payment now through the same path (recorded with source
    `reconcile`): the audit rows of what was news to us."""
    return read_back(payment_id)[0]


def read_back(payment_id: int) -> tuple[list[PaymentEventAudit], dict[str, Any] | None]:
    """`reconcile`, and the payment's charge as Stripe holds it now (None before there is one):
    what a seller's transfer is checked against before it is made."""
    events, charge = service.from_stripe(payment_id)
    news = []
    for event in events:
        audit, duplicate = process(event, source="reconcile")
        if not duplicate and audit.outcome != EventOutcome.DUPLICATE:
            news.append(audit)
    return news, charge


def locked_event(audit_id: int) -> PaymentEventAudit:
    """A recorded event, its row locked until the transaction ends (for `replay`)."""
    _limit_lock_waits()
    audit = _locked_audit(select(PaymentEventAudit).filter_by(id=audit_id))
    if audit is None:
        raise NotFound("No such payment event.")
    return audit


def replay(audit: PaymentEventAudit, *, also: Callable[[], None] = lambda: None) -> PaymentEventAudit:
    """Apply a recorded event (from `locked_event`) again through the same path, after a fix
    say: a state already reached is not applied twice, so a replay is safe to repeat. `also`
    adds to the same transaction (the admin's audit entry)."""
    audit.replays += 1
    apply_event(audit, audit.payload, started=time.perf_counter(), handlers=handlers_for(audit.payload), also=also)
    return audit


def _locked_audit(statement) -> PaymentEventAudit | None:
    return db.session.scalar(statement.with_for_update().execution_options(populate_existing=True))


def apply_event(
    audit: PaymentEventAudit,
    event: dict[str, Any],
    *,
    started: float,
    handlers: dict[str, Handler] = HANDLERS,
    also: Callable[[], None] = lambda: None,
) -> None:
    """The unit of work that ends every delivery, reconciliation and replay: apply the stored
    event, record the outcome and commit. If applying fails, nothing of it stays: the failure is
    recorded in a transaction of its own and the answer is a 500 (a 503 when the database was
    only busy: a lock waited on too long, a deadlock), so that Stripe retries."""
    try:
        handler = handlers.get(event["type"])
        applied = handler(event) if handler else service.Applied(EventOutcome.IGNORED, "Not an event Nexus acts on.")
        _record(audit, applied.outcome, applied.detail, started, payment_id=applied.payment_id)
        also()
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        log.log(
            logging.WARNING if retryable(error) else logging.ERROR,
            "applying stripe event %s (%s) failed",
            event.get("id"),
            event.get("type"),
            exc_info=not retryable(error),
        )
        try:
            _record_failure(audit.stripe_event_id, event, audit.source, error, started)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("recording the failure of stripe event %s failed too", event.get("id"))
        if retryable(error):
            raise
        raise EventNotApplied("Applying the event failed; it is recorded, and Stripe's retry will apply it.") from error


def _record(audit: PaymentEventAudit, outcome: EventOutcome, detail: str | None, started: float, **fields) -> None:
    audit.outcome, audit.detail = outcome.value, detail
    audit.processed_at = utcnow()
    audit.processing_ms = round((time.perf_counter() - started) * 1000, 3)
    for name, value in fields.items():
        if value is not None:
            setattr(audit, name, value)


def _record_failure(event_id: str, event: dict[str, Any], source: str, error: Exception, started: float) -> None:
    """Record, in the session's new transaction, that applying the event failed."""
    detail = f"{error.__class__.__name__}: {error}"[:1000]
    audit = db.session.scalar(select(PaymentEventAudit).filter_by(stripe_event_id=event_id))
    if audit is None:
        audit = PaymentEventAudit(stripe_event_id=event_id, type=event["type"], source=source, payload=event)
        db.session.add(audit)
    if audit.outcome in (None, EventOutcome.ERROR):  # another delivery may have applied it meanwhile
        _record(audit, EventOutcome.ERROR, detail, started)


def _limit_lock_waits() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
