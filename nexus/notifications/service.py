"""What Nexus emails about orders, to whom, and when.

Orders and payments know nothing of emails: they send `order_moved` after every move and
`refund_recorded` after every refund, inside the transaction of the change. The receivers here
write one outbox row per email into that same transaction, so an email exists exactly when its
cause commits; a move or refund that happens only once (each is a conditional change, however
often Stripe's news arrives) writes its emails once. Each row's job reads the order afresh,
renders the email and sends it; the outbox marks the row done with it, so a job delivered twice
sends once.

- To the buyer: paid (a receipt), shipped, delivered, each refund (how much), cancelled by the
  store or an admin (not by the buyer themself), expired unpaid.
- To the store's owner: a paid order to fulfil (its lines, the address, the buyer's email).
"""

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from nexus.emails import send_email
from nexus.extensions import db
from nexus.jobs import outbox
from nexus.notifications import emails
from nexus.orders import service as orders
from nexus.orders.models import Order
from nexus.orders.models import OrderStatus as S
from nexus.payments import service as payments
from nexus.payments.models import Payment
from nexus.stores.models import Store
from nexus.users.models import User

RECEIPT = "notifications.order_paid"
TO_FULFIL = "notifications.order_to_fulfil"
SHIPPED = "notifications.order_shipped"
DELIVERED = "notifications.order_delivered"
CANCELLED = "notifications.order_cancelled"
EXPIRED = "notifications.order_expired"
REFUNDED = "notifications.order_refunded"

# The emails each move causes (a cancellation's depends on who made it; refunds are their own news).
ON_MOVE: dict[S, tuple[str, ...]] = {
    S.PAID: (RECEIPT, TO_FULFIL),
    S.SHIPPED: (SHIPPED,),
    S.DELIVERED: (DELIVERED,),
    S.EXPIRED: (EXPIRED,),
}


def init_notifications() -> None:
    """Hear of every order move and refund (blinker keeps one connection of each receiver
    however often this is called: once per app built)."""
    orders.order_moved.connect(_on_order_moved)
    payments.refund_recorded.connect(_on_refund_recorded)


def _on_order_moved(order: Order, *, before: S, after: S, roles: set[str]) -> None:
    for job in ON_MOVE.get(after, ()):
        outbox.enqueue(job, order_id=order.id)
    if after is S.CANCELLED and orders.BUYER not in roles:  # the buyer knows: they did it
        outbox.enqueue(CANCELLED, order_id=order.id, by="store" if orders.OWNER in roles else "admin")


def _on_refund_recorded(payment: Payment, *, amount: int) -> None:
    # What this refund added and the total it reached, as of now: the email tells of this refund.
    outbox.enqueue(REFUNDED, order_id=payment.order_id, amount=amount, refunded_total=payment.amount_refunded)


# --- the jobs -------------------------------------------------------------------------------


def _order_and_store(order_id: int) -> tuple[Order, Store] | None:
    """The order as it is now, and its store (None if the order is gone)."""
    order = db.session.get(Order, order_id, populate_existing=True)
    if order is None:
        return None
    return order, db.session.get(Store, order.store_id)


def _to_buyer(render: Callable[..., emails.Email]) -> Callable[..., None]:
    """A job emailing the order's buyer what `render(order, store_name, **payload)` writes."""

    def send(*, order_id: int, **payload: Any) -> None:
        found = _order_and_store(order_id)
        if found is None:
            return
        order, store = found
        _send(order.buyer_email, render(order, store.name, **payload))

    return send


def _send(recipient: str, email: emails.Email) -> None:
    send_email(email.subject, recipient, email.text, email.html)


BUYER_EMAILS = {
    RECEIPT: emails.receipt,
    SHIPPED: emails.shipped,
    DELIVERED: emails.delivered,
    CANCELLED: emails.cancelled,
    EXPIRED: emails.expired,
    REFUNDED: emails.refunded,
}
for name, render in BUYER_EMAILS.items():
    outbox.job(name)(_to_buyer(render))


@outbox.job(TO_FULFIL)
def email_owner_to_fulfil(*, order_id: int) -> None:
    """The job: tell the store's owner a paid order waits to be sent."""
    found = _order_and_store(order_id)
    if found is None:
        return
    order, store = found
    owner_email = db.session.scalar(select(User.email).where(User.id == store.owner_id))
    _send(owner_email, emails.to_fulfil(order, store.name))
