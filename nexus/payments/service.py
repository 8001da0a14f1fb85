"""Payments: start one for an order, move it only along `PAYMENT_MOVES`, refund it, and let
what Stripe reports settle the payment and its order.

Everything Stripe reports (a webhook, a reconciliation, an admin's refund) goes through the
`apply_*` functions, which lock the payment row and compare states, so a report that arrives
twice, late, or by two paths at once changes things once.

Transactions follow the one rule written in `nexus.database`: the functions routes, jobs and
commands call commit; what they call never does.

Domains built on payments (notifications, payouts) hear of each refund through the `refunded`
signal, sent inside the transaction that records it; payments import none of them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from blinker import Namespace
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from nexus import audit
from nexus.database import read, utcnow
from nexus.errors import Conflict, Forbidden, Invalid, NotFound, ServiceUnavailable
from nexus.extensions import db
from nexus.orders import service as orders
from nexus.orders.models import Order, OrderStatus
from nexus.payments import gateway
from nexus.payments.models import OPEN, PAYABLE, EventOutcome, Payment, PaymentStatus, Refund, RefundStatus
from nexus.users.models import User

P = PaymentStatus
# The only moves a payment makes, mirroring Stripe's intent: a declined (failed) intent stays
# payable, so it may still be processed, succeed or be canceled; nothing leaves canceled or
# refunded, and nothing goes back from succeeded but a refund.
PAYMENT_MOVES: dict[P, set[P]] = {
    P.PENDING: {P.PROCESSING, P.SUCCEEDED, P.FAILED, P.CANCELED},
    P.PROCESSING: {P.SUCCEEDED, P.FAILED, P.CANCELED},
    P.FAILED: {P.PROCESSING, P.SUCCEEDED, P.CANCELED},
    P.SUCCEEDED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
    P.PARTIALLY_REFUNDED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
}
REFUNDABLE = (P.SUCCEEDED, P.PARTIALLY_REFUNDED)
PAID = (*REFUNDABLE, P.REFUNDED)  # the buyer's charge went through
# `refund_recorded.send(payment, amount=int)` each time more of a payment is refunded (`amount`
# is what this refund added; `payment.amount_refunded` the new total), in its transaction.
refund_recorded = Namespace().signal("refund-recorded")
BEING_STARTED = "This order's payment is being started; retry in a moment."


@dataclass
class Applied:
    """What applying one report from Stripe did."""

    outcome: EventOutcome
    detail: str | None = None
    payment_id: int | None = None


# --- paying ------------------------------------------------------------------------------


def _payable_payment(order_id: int) -> Payment | None:
    """The order's payment Stripe could still take money on (at most one: a new payment starts
    only after the last declined intent is canceled), its row locked."""
    statement = (
        select(Payment)
        .where(Payment.order_id == order_id, Payment.status.in_([status.value for status in PAYABLE]))
        .order_by(Payment.id.desc())
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalar(statement)


def _cancel_at_stripe(payment: Payment) -> None:
    """Cancel the payment's intent at Stripe and record it, so no page holding its secret can pay it."""
    apply_intent(gateway.cancel_intent(payment.provider_payment_id), P.CANCELED)


PAYMENT_STARTED = ("order_id", "status", "amount", "currency", "provider_payment_id")


def start_payment(buyer: User, order_id: int) -> tuple[Payment, str, bool]:
    """The order's open payment and its client secret, creating both if there is none:
    `(payment, client_secret, created)`. Never two payable intents for one order, and none for
    an order a cancel or expiry took meanwhile (both lock the order row first). The new payment
    commits (releasing the order) before Stripe is asked for its intent, so a slow Stripe holds
    no lock; meanwhile a cancel answers "being started"."""
    order, roles = orders.get_order_for(buyer, order_id)
    if orders.BUYER not in roles:
        raise Forbidden("Only the buyer pays for an order.")
    if not gateway.configured():
        raise ServiceUnavailable("Payments are not configured: set STRIPE_SECRET_KEY.")
    order = orders.lock_order(order.id)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Conflict(f"The order is {order.status}; only an unpaid order can be paid.")
    payment = _payable_payment(order.id)
    if payment is not None and P(payment.status) is P.FAILED:
        _cancel_at_stripe(payment)  # declined: a new payment replaces it
        payment = None
    new = payment is None
    if new:
        payment = Payment(order_id=order.id, user_id=order.buyer_id, amount=order.total, currency=order.currency)
        db.session.add(payment)
    elif payment.provider_payment_id is not None:
        db.session.commit()
        return payment, gateway.retrieve_intent(payment.provider_payment_id)["client_secret"], False
    elif not _abandoned(payment):
        raise Conflict(BEING_STARTED)
    try:
        db.session.commit()
    except IntegrityError:  # the partial unique index decides where row locks do not exist (SQLite)
        db.session.rollback()
        raise Conflict(BEING_STARTED) from None
    try:  # the payment id is the idempotency key: an abandoned payment gets the intent Stripe may have made
        intent = gateway.create_intent(
            amount=payment.amount, currency=payment.currency, order_id=payment.order_id, payment_id=payment.id
        )
    except gateway.PaymentGatewayError:
        db.session.rollback()
        if new:  # the order is as it was
            db.session.execute(delete(Payment).where(Payment.id == payment.id))
            db.session.commit()
        raise
    payment.provider_payment_id = intent["id"]
    audit.record(buyer, "payment.start", payment, None, audit.snapshot(payment, PAYMENT_STARTED))
    db.session.commit()
    return payment, intent["client_secret"], True


def _abandoned(payment: Payment) -> bool:
    """Left without its intent by a request that died while Stripe was creating it (the intent,
    if any, was never handed to a buyer)."""
    return payment.created_at < utcnow() - gateway.CUT_SHORT_AFTER


def cancel_order(user: User, order_id: int) -> Order:
    """Cancel an unpaid order as its buyer, its store's owner or an admin, with its payment."""
    order, roles = orders.get_order_for(user, order_id)
    return withdraw(order.id, OrderStatus.CANCELLED, roles, actor=user)


def withdraw(order_id: int, to: OrderStatus, roles: set[str], *, actor: User | None = None) -> Order:
    """Cancel or expire an unpaid order, and its payment with it: a payable intent (open or
    declined) is cancelled at Stripe first, so nothing can be paid for an order that is gone.
    While the payment is processing (money moving) or being started the order stays, a 409; if
    Stripe cannot cancel it (it was just paid: 409; Stripe is down: 502) the order stays too,
    and the payment's news settles it."""
    order = orders.lock_order(order_id)
    payment = _payable_payment(order.id) if order.status == OrderStatus.PENDING_PAYMENT else None
    if payment is not None and payment.status == P.PROCESSING:
        raise Conflict("The order's payment is processing; it can change once Stripe has settled it.")
    if payment is not None and payment.provider_payment_id is None:
        if not _abandoned(payment):
            raise Conflict(BEING_STARTED)
        payment.status = P.CANCELED.value  # abandoned before it had an intent: nobody holds a secret to pay it
    elif payment is not None:
        _cancel_at_stripe(payment)
    before = audit.snapshot(order, ["status"])
    orders.transition(order, to, roles)
    audit.record(actor, "order.cancel", order, before, audit.snapshot(order, ["status"]))
    db.session.commit()
    return order


# --- what Stripe reports -------------------------------------------------------------------


def _locked(where) -> Payment | None:
    """The payment, freshly read and locked until the caller's transaction ends, after its order."""
    order_id = db.session.scalar(select(Payment.order_id).where(where))
    if order_id is None:
        return None
    orders.lock_order(order_id)
    return db.session.scalar(select(Payment).where(where).with_for_update().execution_options(populate_existing=True))


def apply_intent(intent: dict[str, Any], to: P) -> Applied:
    """Stripe says a PaymentIntent is now `to`."""
    payment = _locked(Payment.provider_payment_id == intent["id"])
    if payment is None:
        return Applied(EventOutcome.IGNORED, f"No payment has PaymentIntent {intent['id']}.")
    current = P(payment.status)
    if current is to:
        return Applied(EventOutcome.DUPLICATE, f"The payment is already {to}.", payment.id)
    if to not in PAYMENT_MOVES.get(current, set()):
        if to is P.SUCCEEDED and current is P.CANCELED:  # money moved on a payment we gave up on
            return Applied(EventOutcome.ANOMALY, "Stripe took the money of a canceled payment; refund it.", payment.id)
        return Applied(EventOutcome.IGNORED, f"Stale news: the payment is already {current}.", payment.id)
    if to is P.SUCCEEDED and (intent["amount"], intent["currency"]) != (payment.amount, payment.currency):
        detail = (
            f"Stripe took {intent['amount']} {intent['currency']}; the order is {payment.amount} {payment.currency}."
        )
        return Applied(EventOutcome.ANOMALY, detail, payment.id)
    payment.status = to.value
    if to is P.SUCCEEDED:
        payment.charge_id = _charge_of(intent)
        return _settle_order(payment, OrderStatus.PAID)
    return Applied(EventOutcome.APPLIED, f"The payment is {to}.", payment.id)


def _charge_of(intent: dict[str, Any]) -> str | None:
    """The id of the intent's `latest_charge` (Stripe sends the id; expanded, it is the charge)."""
    charge = intent.get("latest_charge")
    return charge["id"] if isinstance(charge, dict) else charge


def payment_paying(order_id: int) -> int | None:
    """The id of the payment that paid the order (None if none did, or if it is demo data that
    was never at Stripe)."""
    statement = (
        select(Payment.id)
        .where(Payment.order_id == order_id, Payment.status.in_([status.value for status in PAID]), ~Payment.demo)
        .order_by(Payment.id.desc())
        .limit(1)
    )
    return db.session.scalar(statement)


def apply_refund_total(payment: Payment, refunded: int) -> Applied:
    """Stripe says `refunded` of the payment has been refunded so far (a total, so applying
    the same news twice, or a refund and its webhook, changes nothing the second time)."""
    if P(payment.status) not in (*REFUNDABLE, P.REFUNDED):
        return Applied(EventOutcome.ANOMALY, f"A refund of a {payment.status} payment.", payment.id)
    if refunded <= payment.amount_refunded:
        return Applied(EventOutcome.DUPLICATE, f"{payment.amount_refunded} is already refunded.", payment.id)
    added = min(refunded, payment.amount) - payment.amount_refunded
    payment.amount_refunded += added
    full = payment.amount_refunded == payment.amount
    payment.status = (P.REFUNDED if full else P.PARTIALLY_REFUNDED).value
    if added:
        refund_recorded.send(payment, amount=added)
    if not full:
        return Applied(EventOutcome.APPLIED, f"{payment.amount_refunded} of {payment.amount} refunded.", payment.id)
    return _settle_order(payment, OrderStatus.REFUNDED)


def apply_charge_refunded(charge: dict[str, Any]) -> Applied:
    """A refund of a charge. A refunded charge was a paid one: if its success has not reached
    us yet (events arrive out of order), this settles the payment first."""
    payment = (
        _locked(Payment.provider_payment_id == charge.get("payment_intent")) if charge.get("payment_intent") else None
    )
    if payment is None:
        return Applied(EventOutcome.IGNORED, "No payment has this charge's PaymentIntent.")
    if P(payment.status) in PAYABLE:
        paid_by = {
            "id": payment.provider_payment_id,
            "amount": charge["amount"],
            "currency": charge["currency"],
            "latest_charge": charge["id"],
        }
        paid = apply_intent(paid_by, P.SUCCEEDED)
        if paid.outcome is EventOutcome.ANOMALY:
            return paid
    return apply_refund_total(payment, int(charge["amount_refunded"]))


def _settle_order(payment: Payment, to: OrderStatus) -> Applied:
    """Carry a payment's news to its order, if the order can take it."""
    order = db.session.get(Order, payment.order_id)
    try:
        orders.transition(order, to, {orders.SYSTEM})
    except Conflict:
        if to is OrderStatus.PAID:  # paid for an order that expired or was cancelled meanwhile
            return Applied(EventOutcome.ANOMALY, f"Paid, but the order is {order.status}; refund it.", payment.id)
        return Applied(
            EventOutcome.APPLIED, f"The payment is {payment.status}; the order stays {order.status}.", payment.id
        )
    return Applied(EventOutcome.APPLIED, f"The payment is {payment.status}; the order is {to}.", payment.id)


# --- refunds and reconciliation -----------------------------------------------------------


def locked_payment(payment_id: int) -> Payment:
    """The payment, its row (and its order's) locked until the transaction ends, freshly read."""
    payment = _locked(Payment.id == payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def refund(payment_id: int, amount: int | None, *, also: Callable[[Payment, dict], None]) -> Payment:
    """Refund `amount` (default: all that is left) of a payment through Stripe, and apply it: the
    unit of work of an admin's refund. `also` adds to the transaction that records it (the
    admin's audit entry, given the payment and what it was before).

    Money never goes back twice, however late a retry comes. A refund is noted (a `refunds` row,
    committed) before it is sent, under an idempotency key and metadata naming that row. Refunds
    whose answer was lost are looked for at Stripe before anything else: a request for the same
    amount as one Stripe made (or for the rest, when nothing is left) was its retry, and is
    answered with it. Refunds of one payment take turns on its row, and one being sent counts as
    given back."""
    payment = locked_payment(payment_id)
    if payment.demo:
        raise Conflict("This is demo data: the payment was never at Stripe, so it cannot be refunded.")
    before = audit.snapshot(payment, REFUND_AUDITED)
    made = _settle_refunds_in_doubt(payment)
    if made and (amount in made or (amount is None and payment.amount_refunded == payment.amount)):
        also(payment, before)  # this request retries one of them: answered with what Stripe made
        db.session.commit()
        return payment
    refund = _note_refund(payment, amount)
    db.session.commit()  # noted before it is sent (and what Stripe said of earlier refunds kept)
    refund_id, sent = refund.id, None
    try:
        payment = locked_payment(payment_id)
        before = audit.snapshot(payment, REFUND_AUDITED)
        sent = gateway.refund(
            intent_id=payment.provider_payment_id, amount=refund.amount, refund_id=refund_id, payment_id=payment.id
        )
        refund.status, refund.stripe_refund_id = RefundStatus.MADE.value, sent["id"]
        # The payment's row has been locked since the refund was sent: no news of it came meanwhile.
        apply_refund_total(payment, payment.amount_refunded + int(sent["amount"]))
        also(payment, before)
        db.session.commit()
        return payment
    except Exception as error:
        db.session.rollback()
        refused = sent is None and isinstance(error, gateway.StripeRefused)  # Stripe said no: nothing went back
        ended = RefundStatus.NOT_MADE if refused else RefundStatus.IN_DOUBT  # else it may have: looked for next time
        db.session.execute(update(Refund).where(Refund.id == refund_id).values(status=ended.value, updated_at=utcnow()))
        db.session.commit()
        raise


REFUND_AUDITED = ("status", "amount_refunded")


def _note_refund(payment: Payment, amount: int | None) -> Refund:
    """A new refund of `amount` (None: all that is left), checked against what is left."""
    if P(payment.status) not in REFUNDABLE:
        raise Conflict(f"The payment is {payment.status}; only a succeeded payment can be refunded.")
    left = payment.amount - payment.amount_refunded - _being_sent(payment.id)
    amount = left if amount is None else amount
    if not 0 < amount <= left:
        message = f"At most {left} {payment.currency} is left to refund."
        raise Invalid(message, errors={"json": {"amount": [message]}})
    refund = Refund(payment_id=payment.id, amount=amount)
    db.session.add(refund)
    db.session.flush()
    return refund


def _in_doubt(payment_id: int):
    """The payment's refunds whose answer was lost, or whose request died while sending them."""
    lost = or_(
        Refund.status == RefundStatus.IN_DOUBT,
        and_(Refund.status == RefundStatus.SENDING, Refund.created_at < utcnow() - gateway.CUT_SHORT_AFTER),
    )
    return select(Refund).where(Refund.payment_id == payment_id, lost).order_by(Refund.id)


def _being_sent(payment_id: int) -> int:
    """What refunds of the payment being sent right now will give back."""
    sending = and_(Refund.payment_id == payment_id, Refund.status == RefundStatus.SENDING)
    return db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(sending))


def _settle_refunds_in_doubt(payment: Payment) -> list[int]:
    """Look for the payment's refunds in doubt at Stripe (its intent's refunds, every page, by
    their metadata) and record what became of them; if any was made, the payment takes what its
    charge has refunded in all (a total: its webhook may have come meanwhile). The amounts of
    those Stripe made."""
    made = []
    for refund in db.session.scalars(_in_doubt(payment.id)).all():
        found = gateway.find_refund(intent_id=payment.provider_payment_id, refund_id=refund.id)
        refund.status = (RefundStatus.MADE if found else RefundStatus.NOT_MADE).value
        if found:
            refund.stripe_refund_id = found["id"]
            made.append(refund.amount)
    if made:
        charge = gateway.retrieve_intent(payment.provider_payment_id, expand_charge=True)["latest_charge"]
        apply_refund_total(payment, int(charge["amount_refunded"]))
    return made


INTENT_EVENTS = {
    "processing": "payment_intent.processing",
    "succeeded": "payment_intent.succeeded",
    "canceled": "payment_intent.canceled",
}


def stale_payments(updated_before: datetime) -> list[int]:
    """Payments nothing has been heard of since `updated_before` that Stripe may still move:
    open ones, and declined ones whose order still waits for payment (the buyer may retry)."""
    waiting = select(Order.id).where(Order.status == OrderStatus.PENDING_PAYMENT.value)
    statement = select(Payment.id).where(
        or_(
            Payment.status.in_([s.value for s in OPEN]), and_(Payment.status == P.FAILED, Payment.order_id.in_(waiting))
        ),
        Payment.updated_at < updated_before,
        Payment.provider_payment_id.is_not(None),
        ~Payment.demo,
    )
    return list(db.session.scalars(statement.order_by(Payment.id)))


def from_stripe(payment_id: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """What Stripe says of a payment now: the events that would have said it (its intent's status,
    none while the buyer has not acted, and, once paid, what its charge has refunded), and that
    charge (None before there is one). Each event's id names the object and its state, so
    reading the same state twice records one event."""
    payment = db.session.get(Payment, payment_id)
    intent = gateway.retrieve_intent(payment.provider_payment_id, expand_charge=True)
    charge = intent.get("latest_charge") if isinstance(intent.get("latest_charge"), dict) else None
    intent["latest_charge"] = _charge_of(intent)  # kept in the audit as Stripe sends it: unexpanded
    status = intent["status"]
    event_type = INTENT_EVENTS.get(status)
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        event_type = "payment_intent.payment_failed"
    events = []
    if event_type is not None:
        events.append({"id": f"reconcile_{intent['id']}_{status}", "type": event_type, "data": {"object": intent}})
    if status == "succeeded" and charge is not None and charge.get("amount_refunded"):
        event_id = f"reconcile_{charge['id']}_refunded_{charge['amount_refunded']}"
        events.append({"id": event_id, "type": "charge.refunded", "data": {"object": charge}})
    return events, charge


# --- paying in development ----------------------------------------------------------------


def payment_to_pay(order_id: int) -> tuple[int, str]:
    """`(payment id, PaymentIntent id)` of the order's payment a test card may pay now
    (`payments pay-test`); a NotFound or Conflict saying what to do first when there is none.
    Read without a transaction: nothing is locked while Stripe is called."""
    order = read(select(Order.status).where(Order.id == order_id))
    if not order:
        raise NotFound(f"There is no order {order_id}.")
    if order[0].status != OrderStatus.PENDING_PAYMENT:
        raise Conflict(f"Order {order_id} is {order[0].status}; only an order waiting for payment can be paid.")
    rows = read(
        select(Payment.id, Payment.status, Payment.provider_payment_id)
        .where(Payment.order_id == order_id, Payment.status.in_([status.value for status in PAYABLE]))
        .order_by(Payment.id.desc())
        .limit(1)
    )
    start = f"POST /api/v1/orders/{order_id}/payment"
    if not rows:
        raise Conflict(f"Order {order_id} has no payment to pay yet: its buyer starts one first ({start}).")
    payment = rows[0]
    if payment.status == P.FAILED:
        raise Conflict(
            f"Order {order_id}'s payment {payment.id} was declined: its buyer asks to pay again ({start} "
            "starts a new payment), then pay that one."
        )
    if payment.status == P.PROCESSING:
        raise Conflict(f"Order {order_id}'s payment {payment.id} is processing at Stripe; its news will settle it.")
    if payment.provider_payment_id is None:
        raise Conflict(BEING_STARTED)
    return payment.id, payment.provider_payment_id


def payment_news(payment_id: int) -> tuple[str, str]:
    """`(payment status, order status)` as the database has them now (outside any transaction)."""
    row = read(
        select(Payment.status, Order.status).join(Order, Order.id == Payment.order_id).where(Payment.id == payment_id)
    )
    return row[0][0], row[0][1]
