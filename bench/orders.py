"""16 buyers placing orders at once for 30 s over 100 hot products, on Postgres.

Run by `make bench` on the database the shared harness seeded (or any seeded Postgres, with
--database-url): picks 100 products of 10 active stores, gives each a known stock, makes 16
buyers, serves the project with gunicorn (2 sync workers, as the harness does) and loads
`POST /api/v1/orders` with wrk at 16 connections, each request an order of 1 to 3 hot products
of one store. Prints orders/s, latency percentiles, the answers by status (5xx must be 0) and
the stock invariant: for every hot product, remaining stock + quantities in orders = initial.

usage: orders.py [--harness DIR] [--database-url URL] [--seconds S] [--stock N]
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "bench")]

from flask_jwt_extended import create_access_token  # noqa: E402
from server import serve, stop  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from nexus import create_app  # noqa: E402
from nexus.extensions import db  # noqa: E402
from nexus.orders.models import Order, OrderItem  # noqa: E402
from nexus.stores.models import Product, Store  # noqa: E402
from nexus.users.service import get_or_create_user  # noqa: E402

PORT = 18005
BUYERS = 16
REQUESTS = 2_000  # distinct request bodies wrk cycles through

LUA = r"""
local requests = {%(requests)s}
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
n, counts = 0, {}
request = function()
  n = n %% #requests + 1
  return requests[n]
end
response = function(status)
  counts[status] = (counts[status] or 0) + 1
end
done = function(summary, latency)
  local totals, parts = {}, {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do totals[status] = (totals[status] or 0) + count end
  end
  for status, count in pairs(totals) do parts[#parts + 1] = status .. ":" .. count end
  io.write(string.format(
    "RESULT seconds=%%.2f p50_ms=%%.2f p90_ms=%%.2f p99_ms=%%.2f max_ms=%%.2f errors=%%d statuses=%%s\n",
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ",")))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here (ASCII only)


def prepare(database_url: str, stock: int) -> tuple[dict[int, list[int]], list[str]]:
    """Hot products by store, each given `stock`, and 16 buyers' tokens."""
    app = create_app({**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
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
    app = create_app({**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
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
    app = create_app({**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        return db.session.scalar(select(func.coalesce(func.max(Order.id), 0)))


def write_script(hot: dict[int, list[int]], tokens: list[str]) -> Path:
    rng = random.Random(7)
    requests = []
    for n in range(REQUESTS):
        products = rng.sample(hot[rng.choice(list(hot))], rng.randint(1, 3))
        body = json.dumps({"items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in products]})
        headers = [
            "POST /api/v1/orders HTTP/1.1",
            f"Host: 127.0.0.1:{PORT}",
            f"Authorization: Bearer {tokens[n % len(tokens)]}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        raw = "\r\n".join(headers) + "\r\n\r\n" + body
        requests.append(lua_string(raw))
    script = Path(tempfile.mkdtemp()) / "orders.lua"
    script.write_text(LUA % {"requests": ",\n".join(requests)})
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harness", type=Path, default=PROJECT.parent / "shared/bench")
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--stock", type=int, default=100_000, help="stock each hot product starts with")
    args = parser.parse_args()
    database_url = (
        args.database_url
        or subprocess.run(
            [str(args.harness / "pg.sh"), "url"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )

    hot, tokens = prepare(database_url, args.stock)
    since = last_order_id(database_url)
    script = write_script(hot, tokens)
    server = serve(PORT, database_url)
    try:
        wrk = [
            "wrk",
            "-t1",
            f"-c{BUYERS}",
            f"-d{args.seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{PORT}",
        ]
        output = subprocess.run(wrk, capture_output=True, text=True, check=True, timeout=args.seconds + 60).stdout
    finally:
        stop(server)

    result = dict(re.findall(r"(\w+)=([^\s]+)", output.splitlines()[-1]))
    statuses = {int(s): int(c) for s, c in (pair.split(":") for pair in result["statuses"].split(",") if pair)}
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
