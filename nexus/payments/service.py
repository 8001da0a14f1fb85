"""Payments: start one for an order, move it only along `PAYMENT_MOVES`, refund it, and let
what Stripe reports settle the payment and its order.

Everything Stripe reports (a webhook, a reconciliation, an admin's refund) goes through the
`apply_*` functions, which lock the payment row and compare states, so a report that arrives
twice, late, or by two paths at once changes things once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nexus.database import utcnow
from nexus.errors import Conflict, Forbidden, Invalid, NotFound, ServiceUnavailable
from nexus.extensions import db
from nexus.orders import service as orders
from nexus.orders.models import Order, OrderStatus
from nexus.payments import gateway
from nexus.payments.models import OPEN, EventOutcome, Payment, PaymentStatus
from nexus.users.models import User

P = PaymentStatus
# The only moves a payment makes: nothing leaves failed, canceled or refunded, and nothing
# goes back from succeeded but a refund.
PAYMENT_MOVES: dict[P, set[P]] = {
    P.PENDING: {P.PROCESSING, P.SUCCEEDED, P.FAILED, P.CANCELED},
    P.PROCESSING: {P.SUCCEEDED, P.FAILED, P.CANCELED},
    P.SUCCEEDED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
    P.PARTIALLY_REFUNDED: {P.PARTIALLY_REFUNDED, P.REFUNDED},
}
REFUNDABLE = (P.SUCCEEDED, P.PARTIALLY_REFUNDED)
# A payment still without its PaymentIntent after this was left by a request that died while
# Stripe was creating it (the intent, if any, was never handed to a buyer).
STARTING_TIMEOUT = timedelta(minutes=1)


@dataclass
class Applied:
    """What applying one report from Stripe did."""

    outcome: EventOutcome
    detail: str | None = None
    payment_id: int | None = None


# --- paying ------------------------------------------------------------------------------


def _open_payment(order_id: int) -> Payment | None:
    statuses = [status.value for status in OPEN]
    return db.session.scalar(select(Payment).where(Payment.order_id == order_id, Payment.status.in_(statuses)))


def _claim_payment(order: Order) -> Payment | None:
    """A new open payment for the order, or None if a simultaneous request made one first."""
    try:
        with db.session.begin_nested():
            payment = Payment(order_id=order.id, user_id=order.buyer_id, amount=order.total, currency=order.currency)
            db.session.add(payment)
    except IntegrityError:  # the partial unique index: one open payment per order
        db.session.rollback()
        return None
    db.session.commit()
    return payment


def start_payment(buyer: User, order_id: int) -> tuple[Payment, str, bool]:
    """The order's open payment and its client secret, creating both if there is none:
    `(payment, client_secret, created)`. Never two live intents for one order."""
    order, roles = orders.get_order_for(buyer, order_id)
    if orders.BUYER not in roles:
        raise Forbidden("Only the buyer pays for an order.")
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Conflict(f"The order is {order.status}; only an unpaid order can be paid.")
    if not gateway.configured():
        raise ServiceUnavailable("Payments are not configured: set STRIPE_SECRET_KEY.")
    payment = _open_payment(order.id)
    if payment is None:
        _close_failed_intent(order.id)
        payment = _claim_payment(order)
        if payment is not None:
            return _create_intent(payment, new=True)
        payment = _open_payment(order.id)  # a simultaneous request started it
    if payment is not None and payment.provider_payment_id is None and _abandoned(payment):
        return _create_intent(payment, new=False)
    if payment is None or payment.provider_payment_id is None:
        raise Conflict("This order's payment is being started; retry in a moment.")
    return payment, gateway.retrieve_intent(payment.provider_payment_id)["client_secret"], False


def _abandoned(payment: Payment) -> bool:
    return payment.created_at < utcnow() - STARTING_TIMEOUT


def _create_intent(payment: Payment, *, new: bool) -> tuple[Payment, str, bool]:
    """Create the payment's intent (the payment id is its idempotency key: asking again for an
    abandoned payment gets the intent Stripe may have made then). A new payment whose intent
    could not be made is dropped, so the order is as it was."""
    try:
        intent = gateway.create_intent(
            amount=payment.amount, currency=payment.currency, order_id=payment.order_id, payment_id=payment.id
        )
    except gateway.PaymentGatewayError:
        if new:
            db.session.delete(payment)
            db.session.commit()
        raise
    payment.provider_payment_id = intent["id"]
    db.session.commit()
    return payment, intent["client_secret"], True


def _close_failed_intent(order_id: int) -> None:
    """Cancel the intent of the order's last failed payment before a new one starts: Stripe
    leaves a declined intent payable, and the buyer's page may still hold its secret."""
    failed = db.session.scalar(
        select(Payment.provider_payment_id)
        .where(Payment.order_id == order_id, Payment.status == P.FAILED.value)
        .order_by(Payment.id.desc())
        .limit(1)
    )
    if failed is not None:
        gateway.cancel_intent(failed)


def withdraw(order: Order, to: OrderStatus, roles: set[str]) -> Order:
    """Cancel or expire an unpaid order, and its payment with it: the open intent is cancelled
    at Stripe first, so nothing can be paid for an order that is gone. While the payment is
    processing (money moving) the order stays, a 409; if Stripe cannot cancel it (it was just
    paid, or Stripe is down) the order stays too, a 502, and the payment's news settles it."""
    payment = _open_payment(order.id) if order.status == OrderStatus.PENDING_PAYMENT else None
    if payment is not None and payment.status == P.PROCESSING:
        raise Conflict("The order's payment is processing; it can change once Stripe has settled it.")
    if payment is not None and payment.provider_payment_id is None and not _abandoned(payment):
        raise Conflict("This order's payment is being started; retry in a moment.")
    if payment is not None and payment.provider_payment_id is not None:
        apply_intent(gateway.cancel_intent(payment.provider_payment_id), P.CANCELED)
    elif payment is not None:  # abandoned before it had an intent: nobody holds a secret to pay it
        payment.status = P.CANCELED.value
    return orders.move(order, to, roles)


def expire_unpaid(order_id: int) -> bool:
    """Expire one order left unpaid, restocking it and cancelling its payment; False if it was
    paid, is being paid, or changed meanwhile, or Stripe is out of reach (the next run tries again)."""
    try:
        withdraw(db.session.get(Order, order_id), OrderStatus.EXPIRED, {orders.SYSTEM})
    except (Conflict, gateway.PaymentGatewayError, ServiceUnavailable):
        db.session.rollback()
        return False
    return True


# --- what Stripe reports -------------------------------------------------------------------


def _locked_payment(intent_id: str | None) -> Payment | None:
    """The payment, its row locked until the caller's transaction ends, and freshly read."""
    statement = (
        select(Payment)
        .where(Payment.provider_payment_id == intent_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalar(statement) if intent_id else None


def apply_intent(intent: dict[str, Any], to: P) -> Applied:
    """Stripe says a PaymentIntent is now `to`."""
    payment = _locked_payment(intent["id"])
    if payment is None:
        return Applied(EventOutcome.IGNORED, f"No payment has PaymentIntent {intent['id']}.")
    current = P(payment.status)
    if current is to:
        return Applied(EventOutcome.DUPLICATE, f"The payment is already {to}.", payment.id)
    if to not in PAYMENT_MOVES.get(current, set()):
        if to is P.SUCCEEDED and current in (P.FAILED, P.CANCELED):  # money moved on a payment we gave up on
            return Applied(
                EventOutcome.ANOMALY, f"Stripe took the money of a {current} payment; refund it.", payment.id
            )
        return Applied(EventOutcome.IGNORED, f"Stale news: the payment is already {current}.", payment.id)
    if to is P.SUCCEEDED and (intent["amount"], intent["currency"]) != (payment.amount, payment.currency):
        detail = (
            f"Stripe took {intent['amount']} {intent['currency']}; the order is {payment.amount} {payment.currency}."
        )
        return Applied(EventOutcome.ANOMALY, detail, payment.id)
    payment.status = to.value
    if to is P.SUCCEEDED:
        return _settle_order(payment, OrderStatus.PAID)
    return Applied(EventOutcome.APPLIED, f"The payment is {to}.", payment.id)


def apply_refund_total(payment: Payment, refunded: int) -> Applied:
    """Stripe says `refunded` of the payment has been refunded so far (a total, so applying
    the same news twice, or a refund and its webhook, changes nothing the second time)."""
    if P(payment.status) not in (*REFUNDABLE, P.REFUNDED):
        return Applied(EventOutcome.ANOMALY, f"A refund of a {payment.status} payment.", payment.id)
    if refunded <= payment.amount_refunded:
        return Applied(EventOutcome.DUPLICATE, f"{payment.amount_refunded} is already refunded.", payment.id)
    payment.amount_refunded = min(refunded, payment.amount)
    if payment.amount_refunded < payment.amount:
        payment.status = P.PARTIALLY_REFUNDED.value
        return Applied(EventOutcome.APPLIED, f"{payment.amount_refunded} of {payment.amount} refunded.", payment.id)
    payment.status = P.REFUNDED.value
    return _settle_order(payment, OrderStatus.REFUNDED)


def apply_charge_refunded(charge: dict[str, Any]) -> Applied:
    """A refund of a charge. A refunded charge was a paid one: if its success has not reached
    us yet (events arrive out of order), this settles the payment first."""
    payment = _locked_payment(charge.get("payment_intent"))
    if payment is None:
        return Applied(EventOutcome.IGNORED, "No payment has this charge's PaymentIntent.")
    if P(payment.status) in OPEN:
        paid = apply_intent(
            {"id": payment.provider_payment_id, "amount": charge["amount"], "currency": charge["currency"]}, P.SUCCEEDED
        )
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
    """The payment, its row locked until the transaction ends and freshly read (for `refund`)."""
    payment = db.session.scalar(
        select(Payment).where(Payment.id == payment_id).with_for_update().execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def refund(payment: Payment, amount: int | None = None) -> Payment:
    """Refund `amount` (default: all that is left) of a payment from `locked_payment`, through
    Stripe, and apply it; the caller commits. The lock makes two refunds at once take turns,
    each refunding from what the other left."""
    if P(payment.status) not in REFUNDABLE:
        raise Conflict(f"The payment is {payment.status}; only a succeeded payment can be refunded.")
    left = payment.amount - payment.amount_refunded
    amount = left if amount is None else amount
    if amount > left:
        message = f"At most {left} {payment.currency} is left to refund."
        raise Invalid(message, errors={"json": {"amount": [message]}})
    gateway.refund(intent_id=payment.provider_payment_id, amount=amount, refunded_before=payment.amount_refunded)
    apply_refund_total(payment, payment.amount_refunded + amount)
    return payment


INTENT_EVENTS = {
    "processing": "payment_intent.processing",
    "succeeded": "payment_intent.succeeded",
    "canceled": "payment_intent.canceled",
}


def stale_open_payments(updated_before: datetime) -> list[int]:
    """Open payments nothing has been heard of since `updated_before`."""
    statement = select(Payment.id).where(
        Payment.status.in_([status.value for status in OPEN]),
        Payment.updated_at < updated_before,
        Payment.provider_payment_id.is_not(None),
    )
    return list(db.session.scalars(statement.order_by(Payment.id)))


def event_from_stripe(payment_id: int) -> dict[str, Any] | None:
    """What Stripe says of a payment now, as the event that would have said it (None while
    the buyer has not acted). Its id names the intent and its status, so reading the same
    state twice records one event."""
    payment = db.session.get(Payment, payment_id)
    intent = gateway.retrieve_intent(payment.provider_payment_id)
    status = intent["status"]
    event_type = INTENT_EVENTS.get(status)
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        event_type = "payment_intent.payment_failed"
    if event_type is None:
        return None
    return {"id": f"reconcile_{intent['id']}_{status}", "type": event_type, "data": {"object": intent}}
