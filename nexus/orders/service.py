"""Orders: placed against available stock in one transaction, moved only along `MOVES`, listed.

A product's `stock` is what the store holds and has not shipped (the owner's count) and its
`reserved` what orders hold of it. Placing reserves with one conditional UPDATE per product, in
product-id order: two orders racing for the last unit cannot both get it, and two multi-line
orders lock their rows in the same order, so they never deadlock. A status move is a conditional
UPDATE on the current status, so a move that releases or ships units happens only once.

Transactions follow the one rule written in `nexus.database`: the functions routes, jobs and
commands call commit; what they call never does.

Domains built on orders (notifications, payouts) hear of each move through the `order_moved` signal,
sent inside the move's transaction, so what they write (an outbox row, a transfer due) commits
or rolls back with the move itself; orders import none of them.
"""

import hashlib
import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from blinker import Namespace
from flask import current_app
from sqlalchemy import Row, Select, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from nexus import audit
from nexus.database import read, utcnow
from nexus.errors import Conflict, Forbidden, Invalid, NotFound
from nexus.extensions import db
from nexus.money import charge_problem
from nexus.orders.models import IdempotencyKey, Order, OrderItem
from nexus.orders.models import OrderStatus as S
from nexus.pagination import newest_first, paginate, rows_where
from nexus.stores.models import Product, Store
from nexus.users.models import User

BUYER, OWNER, ADMIN, SYSTEM = "buyer", "owner", "admin", "system"

# The only moves an order can make, and who may make each. Anything else is a 409.
MOVES: dict[tuple[S, S], set[str]] = {
    (S.PENDING_PAYMENT, S.PAID): {SYSTEM},  # the payment succeeded
    (S.PENDING_PAYMENT, S.CANCELLED): {BUYER, OWNER, ADMIN},
    (S.PENDING_PAYMENT, S.EXPIRED): {SYSTEM},  # `flask orders expire-stale`
    (S.PAID, S.FULFILLED): {OWNER, ADMIN},
    (S.FULFILLED, S.SHIPPED): {OWNER, ADMIN},
    (S.SHIPPED, S.DELIVERED): {OWNER, ADMIN},
    (S.PAID, S.REFUNDED): {ADMIN, SYSTEM},  # a full refund
    (S.FULFILLED, S.REFUNDED): {ADMIN, SYSTEM},
}
# Moves after which the goods never left: what the order held goes back on sale.
RELEASING = {(S.PENDING_PAYMENT, S.CANCELLED), (S.PENDING_PAYMENT, S.EXPIRED), (S.PAID, S.REFUNDED)}
# The move at which the goods leave the store: off its stock, and no longer held.
SHIPPING = {(S.PAID, S.FULFILLED)}

# `order_moved.send(order, before=S, after=S, roles=set[str])` after every move, in its transaction;
# `roles` are those of whoever made it (`{SYSTEM}` for a payment's news or an expiry).
order_moved = Namespace().signal("order-moved")

IDEMPOTENCY_WINDOW = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=1)  # a claimed key with no order after this was abandoned
orders, order_items = Order.__table__, OrderItem.__table__
NEWEST = newest_first(orders)


# --- placing an order -----------------------------------------------------------------


def _merged(items: list[dict[str, int]]) -> dict[int, int]:
    """Quantity per product, lines of the same product added up, in product-id order."""
    quantities: dict[int, int] = {}
    for line in items:
        quantities[line["product_id"]] = quantities.get(line["product_id"], 0) + line["quantity"]
    too_many = sorted(product_id for product_id, quantity in quantities.items() if quantity > 1000)
    if too_many:
        message = f"At most 1000 of a product per order (products {_ids(too_many)})."
        raise Invalid(message, errors={"json": {"items": [message]}})
    return dict(sorted(quantities.items()))


def _ids(product_ids: list[int]) -> str:
    return ", ".join(map(str, product_ids))


def _for_sale(buyer: User, quantities: dict[int, int]) -> dict[int, Row]:
    """The products, checked: on sale, of one store, not the buyer's own; else a 422."""
    statement = (
        select(Product.id, Product.name, Product.price, Product.currency, Product.store_id, Store.owner_id)
        .join(Store)
        .join(User, User.id == Store.owner_id)
        .where(Product.id.in_(quantities), Product.is_active, Store.is_active, User.is_active)
    )
    products = {row.id: row for row in db.session.execute(statement)}
    missing = [product_id for product_id in quantities if product_id not in products]
    if missing:
        message = f"Not for sale: products {_ids(missing)}."
        raise Invalid(message, errors={"json": {"items": [message]}})
    if len({row.store_id for row in products.values()}) > 1:
        message = "An order holds products of one store; place one order per store."
        raise Invalid(message, errors={"json": {"items": [message]}})
    if next(iter(products.values())).owner_id == buyer.id:
        raise Invalid("You cannot buy from your own store.", errors={"json": {"items": ["Your own store's products."]}})
    return products


def _reserve(quantities: dict[int, int]) -> list[int]:
    """Hold the quantities of what is available, in product-id order; the products that lacked it."""
    short = []
    for product_id, quantity in quantities.items():
        taken = db.session.execute(
            update(Product)
            .where(Product.id == product_id, Product.is_active, Product.stock - Product.reserved >= quantity)
            .values(reserved=Product.reserved + quantity)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            short.append(product_id)
    return short


def _check_chargeable(total: int, currency: str) -> None:
    """A total Stripe can charge at once: within its maximum and at least its minimum; else a 422."""
    problem = charge_problem(total, currency)
    if problem:
        raise Invalid(problem, errors={"json": {"items": [problem]}})


def _check_open_orders(buyer: User) -> None:
    """Each unpaid order holds stock nobody else can buy: a buyer may leave only so many. The
    buyer's row is locked first (Postgres), so two orders placed at once are counted in turn."""
    db.session.execute(select(User.id).where(User.id == buyer.id).with_for_update(key_share=True))
    waiting = select(func.count()).where(Order.buyer_id == buyer.id, Order.status == S.PENDING_PAYMENT.value)
    limit = current_app.config["ORDER_MAX_OPEN_PER_BUYER"]
    if db.session.scalar(waiting) >= limit:
        raise Conflict(f"You have {limit} orders waiting for payment: pay or cancel one before placing another.")


def _place(
    buyer: User,
    quantities: dict[int, int],
    note: str | None,
    shipping_address: dict[str, str | None],
    claim: IdempotencyKey | None,
) -> Order:
    """The order, its stock reserved and its key (if any) pointing at it, in the caller's transaction."""
    products = _for_sale(buyer, quantities)
    lines = [
        OrderItem(
            product_id=product_id,
            name=products[product_id].name,
            unit_price=products[product_id].price,
            quantity=quantity,
            line_total=products[product_id].price * quantity,
        )
        for product_id, quantity in quantities.items()
    ]
    subtotal = sum(line.line_total for line in lines)
    first = next(iter(products.values()))
    _check_chargeable(subtotal, first.currency)
    _check_open_orders(buyer)
    short = _reserve(quantities)
    if short:
        message = f"Not enough stock for products {_ids(short)}."
        raise Conflict(message, errors={"json": {"items": [message]}})
    timeout = timedelta(minutes=current_app.config["ORDER_PAYMENT_TIMEOUT_MINUTES"])
    now = utcnow()
    order = Order(
        buyer_id=buyer.id,
        store_id=first.store_id,
        subtotal=subtotal,
        total=subtotal,  # no tax or shipping yet
        currency=first.currency,
        note=note,
        shipping_address=shipping_address,
        items=lines,
        created_at=now,
        updated_at=now,
        expires_at=now + timeout,
    )
    db.session.add(order)
    db.session.flush()
    set_committed_value(order, "payment_status", None)  # a new order has no payment to read back
    set_committed_value(order, "buyer_email", buyer.email)
    if claim is not None:  # the key and the order commit together
        held = db.session.execute(update(IdempotencyKey).where(IdempotencyKey.id == claim.id).values(order_id=order.id))
        if held.rowcount != 1:  # taken over as abandoned while this request was slow: that one places the order
            raise Conflict("An order with this Idempotency-Key is still being placed; retry in a moment.")
    return order


def _fingerprint(quantities: dict[int, int], note: str | None, shipping_address: dict[str, str | None]) -> str:
    """The body as the order sees it: the same lines in any order, or split, are the same body;
    another note or address is another body."""
    body = {"lines": sorted(quantities.items()), "note": note, "shipping_address": shipping_address}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _claim(buyer: User, key: str, fingerprint: str) -> IdempotencyKey:
    """This request's hold on `key` (the caller commits it at once, so that duplicates see it);
    or the earlier request's, whose order is then answered again. The unique key decides races."""
    for _ in range(3):
        now = utcnow()
        try:
            with db.session.begin_nested():
                claim = IdempotencyKey(user_id=buyer.id, key=key, request_hash=fingerprint, created_at=now)
                db.session.add(claim)
            return claim
        except IntegrityError:
            pass
        earlier = db.session.scalar(select(IdempotencyKey).filter_by(user_id=buyer.id, key=key))
        if earlier is None:
            continue
        abandoned = earlier.order_id is None and earlier.created_at < now - IN_FLIGHT_TIMEOUT
        if earlier.created_at < now - IDEMPOTENCY_WINDOW or abandoned:
            db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == earlier.id))
            continue
        if earlier.request_hash != fingerprint:
            message = "This Idempotency-Key was used for a different order; use a new key."
            raise Invalid(message, errors={"headers": {"Idempotency-Key": [message]}})
        if earlier.order_id is None:
            raise Conflict("An order with this Idempotency-Key is still being placed; retry in a moment.")
        return earlier
    raise Conflict("Could not claim this Idempotency-Key; retry in a moment.")


ORDER_PLACED = ("buyer_id", "store_id", "status", "total", "currency")


def place_order(
    buyer: User,
    *,
    items: list[dict[str, int]],
    shipping_address: dict[str, str | None],
    note: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Order, bool]:
    """Place an order in `pending_payment` with its stock reserved and `shipping_address` (as
    `ShippingAddressCreateSchema` loads it) kept with it: `(order, replayed)`, where `replayed`
    means the key's earlier request had placed it. With a key, the claim on it commits first; if
    the order then cannot be placed, the claim is dropped so the client may retry."""
    quantities = _merged(items)
    claim = None
    if idempotency_key is not None:
        try:
            claim = _claim(buyer, idempotency_key, _fingerprint(quantities, note, shipping_address))
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()
        if claim.order_id is not None:
            return db.session.get(Order, claim.order_id), True
    try:
        order = _place(buyer, quantities, note, shipping_address, claim)
        audit.record(buyer, "order.place", order, None, audit.snapshot(order, ORDER_PLACED))
        db.session.commit()
    except Exception:
        db.session.rollback()  # nothing stays reserved
        if claim is not None:
            db.session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.id == claim.id, IdempotencyKey.order_id.is_(None))
            )
            db.session.commit()
        raise
    return order, False


# --- the lifecycle ----------------------------------------------------------------------


def roles_of(user: User, order: Order) -> set[str]:
    """How `user` relates to `order`: its buyer, its store's owner, an admin (or several)."""
    owner_id = db.session.scalar(select(Store.owner_id).where(Store.id == order.store_id))
    roles = {BUYER} if user.id == order.buyer_id else set()
    if user.id == owner_id:
        roles.add(OWNER)
    if user.is_admin:
        roles.add(ADMIN)
    return roles


def get_order_for(user: User, order_id: int) -> tuple[Order, set[str]]:
    """The order and the user's roles in it; 404 for anyone with none (ids leak nothing)."""
    order = db.session.get(Order, order_id)
    roles = roles_of(user, order) if order is not None else set()
    if not roles:
        raise NotFound("No such order.")
    return order, roles


def lock_order(order_id: int) -> Order:
    """The order, freshly read, its row locked until the caller's transaction ends. Whatever
    changes an order and its payment locks the order first, then the payment: starting a
    payment, cancelling, expiring and Stripe's news take turns and never deadlock."""
    statement = select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    order = db.session.scalar(statement)
    if order is None:
        raise NotFound("No such order.")
    return order


def _let_go(order: Order, *, shipped: bool) -> None:
    """Stop holding the order's units; `shipped`: they left the store, so off its stock too."""
    for item in sorted(order.items, key=lambda item: item.product_id):  # the order stock is reserved in
        values = {"reserved": Product.reserved - item.quantity}
        if shipped:
            values["stock"] = Product.stock - item.quantity
        db.session.execute(
            update(Product)
            .where(Product.id == item.product_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def transition(order: Order, to: S, roles: set[str]) -> None:
    """Move `order` to `to` within the caller's transaction, if `MOVES` allows it and `roles`
    may; release or ship its units if the move does. A Conflict if the move is not allowed or another request moved
    it first; Forbidden if none of `roles` may make it."""
    current = S(order.status)
    allowed = MOVES.get((current, to))
    if allowed is None:
        raise Conflict(f"The order is {current}; it cannot become {to}.")
    if not allowed & roles:
        raise Forbidden(f"You may not make an order {to}.")
    values: dict[str, Any] = {"status": to.value, "updated_at": utcnow()}
    if to is S.PAID:
        values["paid_at"] = values["updated_at"]
    moved = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise Conflict(f"The order changed meanwhile; it cannot become {to}.")
    if (current, to) in RELEASING or (current, to) in SHIPPING:
        _let_go(order, shipped=(current, to) in SHIPPING)
    for field, value in values.items():  # what the UPDATE wrote, without writing it again
        set_committed_value(order, field, value)
    order_moved.send(order, before=current, after=to, roles=roles)


def move(order: Order, to: S, roles: set[str], *, actor: User | None = None) -> Order:
    """`transition` in a transaction of its own (audited if `actor` is an admin)."""
    before = audit.snapshot(order, ["status"])
    try:
        transition(order, to, roles)
    except Conflict:
        db.session.rollback()
        db.session.refresh(order)
        raise Conflict(f"The order is {order.status}; it cannot become {to}.") from None
    audit.record(actor, "order.move", order, before, audit.snapshot(order, ["status"]))
    db.session.commit()
    return order


def stale_order_ids(placed_before: datetime) -> list[int]:
    """Orders still waiting for payment that were placed before `placed_before`."""
    statement = select(Order.id).where(Order.status == S.PENDING_PAYMENT.value, Order.created_at < placed_before)
    return list(db.session.scalars(statement.order_by(Order.id)))


def forget_idempotency_keys(older_than: datetime) -> int:
    """Drop idempotency keys past their 24 hours."""
    forgotten = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < older_than)).rowcount
    db.session.commit()
    return forgotten


# --- lists ------------------------------------------------------------------------------


@cache
def _orders_query(filters: frozenset[str]) -> Select:
    return rows_where(orders, filters).add_columns(
        Order.payment_status.expression.label("payment_status"), Order.buyer_email.expression.label("buyer_email")
    )


def list_orders(
    *,
    buyer_id: int | None = None,
    store_id: int | None = None,
    status: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> dict:
    """Orders newest first (a buyer's, a store's, or everyone's), with their items: two queries."""
    given = {"buyer_id": buyer_id, "store_id": store_id, "status": status}
    params = {name: value for name, value in given.items() if value is not None}
    page = paginate(_orders_query(frozenset(params)), NEWEST, limit=limit, cursor=cursor, params=params)
    page["items"] = _with_items(page["items"])
    return page


ITEMS_OF_ORDERS = (
    select(*order_items.c)
    .where(order_items.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_items.c.order_id, order_items.c.product_id)
)


def _with_items(rows: list[Row]) -> list[dict[str, Any]]:
    lines: dict[int, list[Row]] = {row.id: [] for row in rows}
    if lines:
        for line in read(ITEMS_OF_ORDERS, {"ids": list(lines)}):
            lines[line.order_id].append(line)
    return [{**row._mapping, "items": lines[row.id]} for row in rows]
