"""16 buyers placing orders at once for 30 s over 100 hot products, on Postgres.

Run by `make bench` on the database the shared harness seeded (or any seeded Postgres, with
--database-url): picks 100 products of 10 active stores, gives each a known number available,
makes 16 buyers, serves the project with gunicorn (2 sync workers, as the harness does) and loads
`POST /api/v1/orders` with wrk at 16 connections, each request an order of 1 to 3 hot products
of one store, to a shipping address. Then a quarter of the orders placed are paid (through the service, as their webhook
would) and fulfilled by their store's owner over HTTP, so that goods leave the shelf. Prints
orders/s, latency percentiles, the answers by status (5xx must be 0) and the stock invariant: for
every hot product, stock - reserved = available (never negative), reserved grew by exactly what
the run's unpaid and paid orders hold, and the initial stock = stock + the units fulfilled.

usage: python -m bench.orders [--harness DIR] [--database-url URL] [--seconds S] [--stock N]
"""

import json
import logging
import random
import urllib.error
import urllib.request

from flask_jwt_extended import create_access_token
from sqlalchemy import func, select, update

from bench import harness
from nexus.extensions import db
from nexus.orders import service
from nexus.orders.models import Order, OrderItem, OrderStatus
from nexus.stores.models import Product, Store
from nexus.users.service import get_or_create_user

PORT = 18005
BUYERS = 16
REQUESTS = 2_000  # distinct request bodies wrk cycles through


def prepare(database_url: str, stock: int) -> tuple[dict[int, list[int]], list[str]]:
    """Hot products by store, each with `stock` available, and 16 buyers' tokens."""
    with harness.app_for(database_url).app_context():
        stores = db.session.scalars(select(Store.id).where(Store.is_active).order_by(Store.id).limit(10)).all()
        hot: dict[int, list[int]] = {}
        for store_id in stores:
            query = select(Product.id).where(Product.store_id == store_id, Product.is_active).order_by(Product.id)
            hot[store_id] = db.session.scalars(query.limit(10)).all()
        product_ids = [product_id for ids in hot.values() for product_id in ids]
        # On top of what orders of earlier runs still hold, so `stock` is what the run can take.
        db.session.execute(update(Product).where(Product.id.in_(product_ids)).values(stock=Product.reserved + stock))
        buyers = [get_or_create_user(email=f"bench-buyer-{n}@example.com") for n in range(BUYERS)]
        for buyer in buyers:
            buyer.is_verified = True
        db.session.commit()
        tokens = [create_access_token(identity=str(buyer.id)) for buyer in buyers]
    return hot, tokens


def snapshot(database_url: str, hot: dict[int, list[int]]) -> dict[int, tuple[int, int]]:
    """(stock, reserved) of every hot product now."""
    product_ids = [product_id for ids in hot.values() for product_id in ids]
    with harness.app_for(database_url).app_context():
        rows = db.session.execute(
            select(Product.id, Product.stock, Product.reserved).where(Product.id.in_(product_ids))
        )
        return {row.id: (row.stock, row.reserved) for row in rows}


def _units(since_order_id: int, product_ids: list[int], statuses: tuple[OrderStatus, ...]) -> dict[int, int]:
    """Units per product in the run's orders that are in one of `statuses`."""
    statement = (
        select(OrderItem.product_id, func.sum(OrderItem.quantity))
        .join(Order)
        .where(OrderItem.product_id.in_(product_ids), Order.id > since_order_id, Order.status.in_(statuses))
        .group_by(OrderItem.product_id)
    )
    return dict(db.session.execute(statement).all())


HOLDING = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)
SHIPPED = (OrderStatus.FULFILLED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def invariant(database_url: str, initial: dict[int, tuple[int, int]], since_order_id: int) -> tuple[bool, int]:
    """(stock - reserved = available >= 0, reserved grew by what the run's orders hold, initial
    stock = stock + units fulfilled, for every hot product; orders placed)."""
    product_ids = list(initial)
    with harness.app_for(database_url).app_context():
        columns = (Product.id, Product.stock, Product.reserved, Product.available)
        now = {row.id: row for row in db.session.execute(select(*columns).where(Product.id.in_(product_ids)))}
        held, shipped = _units(since_order_id, product_ids, HOLDING), _units(since_order_id, product_ids, SHIPPED)
        placed = db.session.scalar(select(func.count()).select_from(Order).where(Order.id > since_order_id))
    holds = all(
        now[p].stock - now[p].reserved == now[p].available >= 0
        and now[p].reserved == initial[p][1] + held.get(p, 0)
        and initial[p][0] == now[p].stock + shipped.get(p, 0)
        for p in product_ids
    )
    return holds, placed


def fulfil_some(database_url: str, since_order_id: int, port: int, share: int = 4) -> tuple[int, int]:
    """Every `share`-th order the run placed (500 at most): paid through the service, as its
    webhook would, then fulfilled by its store's owner over HTTP. (fulfilled, 5xx answers).
    Paying them emails their buyers and owners from this process, into its log without a
    MAIL_SERVER: the run does not read those, so they are not printed."""
    logging.getLogger("nexus.emails").setLevel(logging.ERROR)
    with harness.app_for(database_url).app_context():
        waiting = select(Order).where(Order.id > since_order_id, Order.status == OrderStatus.PENDING_PAYMENT.value)
        chosen = db.session.scalars(waiting.order_by(Order.id)).all()[::share][:500]
        owners = dict(
            db.session.execute(select(Store.id, Store.owner_id).where(Store.id.in_({o.store_id for o in chosen}))).all()
        )
        steps = []
        for order in chosen:
            service.move(order, OrderStatus.PAID, {service.SYSTEM})
            steps.append((order.id, create_access_token(identity=str(owners[order.store_id]))))
    fulfilled = errors = 0
    for order_id, token in steps:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/orders/{order_id}/status",
            data=json.dumps({"status": "fulfilled"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
            fulfilled += 1
        except urllib.error.HTTPError as error:
            errors += error.code >= 500
    return fulfilled, errors


def last_order_id(database_url: str) -> int:
    """The newest order's id: orders placed by the run are the ones after it."""
    with harness.app_for(database_url).app_context():
        return db.session.scalar(select(func.coalesce(func.max(Order.id), 0)))


def order_requests(hot: dict[int, list[int]], tokens: list[str], rng: random.Random, port: int) -> list[str]:
    """`REQUESTS` orders of 1 to 3 hot products of one store, each by one of the buyers in turn."""
    requests = []
    for n in range(REQUESTS):
        products = rng.sample(hot[rng.choice(list(hot))], rng.randint(1, 3))
        lines = [{"product_id": p, "quantity": rng.randint(1, 3)} for p in products]
        body = {"items": lines, "shipping_address": harness.SHIPPING_ADDRESS}
        headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
        requests.append(harness.raw("POST", "/api/v1/orders", body, headers, port=port))
    return requests


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--stock", type=int, default=100_000, help="units each hot product has available at the start")
    args = parser.parse_args()
    database_url = harness.database_url(args)

    hot, tokens = prepare(database_url, args.stock)
    initial, since = snapshot(database_url, hot), last_order_id(database_url)
    requests = order_requests(hot, tokens, random.Random(7), PORT)
    server = harness.serve(PORT, database_url)
    try:
        result = harness.result(harness.wrk(requests, PORT, BUYERS, args.seconds), args.seconds)
        fulfilled, fulfil_errors = fulfil_some(database_url, since, PORT)
    finally:
        harness.stop(server)

    statuses = result["statuses"]
    holds, placed = invariant(database_url, initial, since)
    seconds = float(result["seconds"])
    print(
        f"\n== orders: {BUYERS} buyers at once for {args.seconds} s over 100 hot products ({args.stock} available each)"
    )
    print(f"orders placed   {placed}  ({statuses.get(201, 0) / seconds:.1f} orders/s)")
    percentiles = "  ".join(f"{name} {result[name + '_ms']}" for name in ("p50", "p90", "p99", "max"))
    print(f"latency ms      {percentiles}")
    print(f"answers         {dict(sorted(statuses.items()))}  socket errors {result['errors']}")
    print(f"5xx             {sum(c for s, c in statuses.items() if s >= 500)}")
    print(f"fulfilled       {fulfilled} of the orders (paid first), 5xx {fulfil_errors}")
    print(
        f"stock invariant {'holds' if holds else 'BROKEN'}: for every hot product stock - reserved = available >= 0,"
        " reserved = what open orders hold, initial stock = stock + units fulfilled"
    )


if __name__ == "__main__":
    main()
