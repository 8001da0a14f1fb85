"""16 buyers placing orders at once for 30 s over 100 hot products, on Postgres.

Run by `make bench` on the database the shared harness seeded (or any seeded Postgres, with
--database-url): picks 100 products of 10 active stores, gives each a known stock, makes 16
buyers, serves the project with gunicorn (2 sync workers, as the harness does) and loads
`POST /api/v1/orders` with wrk at 16 connections, each request an order of 1 to 3 hot products
of one store. Prints orders/s, latency percentiles, the answers by status (5xx must be 0) and
the stock invariant: for every hot product, remaining stock + quantities in orders = initial.

usage: python -m bench.orders [--harness DIR] [--database-url URL] [--seconds S] [--stock N]
"""

import random

from flask_jwt_extended import create_access_token
from sqlalchemy import func, select, update

from bench import harness
from nexus.extensions import db
from nexus.orders.models import Order, OrderItem
from nexus.stores.models import Product, Store
from nexus.users.service import get_or_create_user

PORT = 18005
BUYERS = 16
REQUESTS = 2_000  # distinct request bodies wrk cycles through


def prepare(database_url: str, stock: int) -> tuple[dict[int, list[int]], list[str]]:
    """Hot products by store, each given `stock`, and 16 buyers' tokens."""
    with harness.app_for(database_url).app_context():
        stores = db.session.scalars(select(Store.id).where(Store.is_active).order_by(Store.id).limit(10)).all()
        hot: dict[int, list[int]] = {}
        for store_id in stores:
            query = select(Product.id).where(Product.store_id == store_id, Product.is_active).order_by(Product.id)
            hot[store_id] = db.session.scalars(query.limit(10)).all()
        product_ids = [product_id for ids in hot.values() for product_id in ids]
        db.session.execute(update(Product).where(Product.id.in_(product_ids)).values(stock=stock))
        buyers = [get_or_create_user(email=f"bench-buyer-{n}@example.com") for n in range(BUYERS)]
        for buyer in buyers:
            buyer.is_verified = True
        db.session.commit()
        tokens = [create_access_token(identity=str(buyer.id)) for buyer in buyers]
    return hot, tokens


def invariant(database_url: str, hot: dict[int, list[int]], stock: int, since_order_id: int) -> tuple[bool, int]:
    """(stock + ordered quantities == initial for every hot product, orders placed)."""
    with harness.app_for(database_url).app_context():
        product_ids = [product_id for ids in hot.values() for product_id in ids]
        left = dict(db.session.execute(select(Product.id, Product.stock).where(Product.id.in_(product_ids))).all())
        ordered = dict(
            db.session.execute(
                select(OrderItem.product_id, func.sum(OrderItem.quantity))
                .join(Order)
                .where(OrderItem.product_id.in_(product_ids), Order.id > since_order_id)
                .group_by(OrderItem.product_id)
            ).all()
        )
        placed = db.session.scalar(select(func.count()).select_from(Order).where(Order.id > since_order_id))
    return all(left[p] + ordered.get(p, 0) == stock and left[p] >= 0 for p in product_ids), placed


def last_order_id(database_url: str) -> int:
    """The newest order's id: orders placed by the run are the ones after it."""
    with harness.app_for(database_url).app_context():
        return db.session.scalar(select(func.coalesce(func.max(Order.id), 0)))


def order_requests(hot: dict[int, list[int]], tokens: list[str], rng: random.Random, port: int) -> list[str]:
    """`REQUESTS` orders of 1 to 3 hot products of one store, each by one of the buyers in turn."""
    requests = []
    for n in range(REQUESTS):
        products = rng.sample(hot[rng.choice(list(hot))], rng.randint(1, 3))
        body = {"items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in products]}
        headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
        requests.append(harness.raw("POST", "/api/v1/orders", body, headers, port=port))
    return requests


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--stock", type=int, default=100_000, help="stock each hot product starts with")
    args = parser.parse_args()
    database_url = harness.database_url(args)

    hot, tokens = prepare(database_url, args.stock)
    since = last_order_id(database_url)
    requests = order_requests(hot, tokens, random.Random(7), PORT)
    server = harness.serve(PORT, database_url)
    try:
        result = harness.result(harness.wrk(requests, PORT, BUYERS, args.seconds), args.seconds)
    finally:
        harness.stop(server)

    statuses = result["statuses"]
    holds, placed = invariant(database_url, hot, args.stock, since)
    seconds = float(result["seconds"])
    print(f"\n== orders: {BUYERS} buyers at once for {args.seconds} s over 100 hot products (stock {args.stock} each)")
    print(f"orders placed   {placed}  ({statuses.get(201, 0) / seconds:.1f} orders/s)")
    percentiles = "  ".join(f"{name} {result[name + '_ms']}" for name in ("p50", "p90", "p99", "max"))
    print(f"latency ms      {percentiles}")
    print(f"answers         {dict(sorted(statuses.items()))}  socket errors {result['errors']}")
    print(f"5xx             {sum(c for s, c in statuses.items() if s >= 500)}")
    print(f"stock invariant {'holds' if holds else 'BROKEN'}: remaining + ordered = {args.stock} for every hot product")


if __name__ == "__main__":
    main()
