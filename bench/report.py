"""A year's sales report of a store with 100,000 paid orders: time and peak memory, on Postgres.

Run by `make bench` on the harness's Postgres (or --database-url). Makes a store with --orders
orders paid through 2026 (1 or 2 lines each), plus a ninth as many paid in 2025 and a tenth as
many never paid, which the report must leave out, then generates the report through
`POST /api/v1/stores/{id}/reports` (in process, through the test client; its job builds it on
a thread of the same process, as without BROKER_URL) as CSV and as JSON, and downloads it.
Each measurement runs in its own process, so its peak memory is its own:

- seconds: wall time from the request until the report is ready;
- python peak: the most memory Python objects held at once during it (tracemalloc; a second,
  untimed run, as tracing slows Python down);
- rss growth: how far the process's peak resident memory rose above where it stood before (this
  sees the database driver's C buffers too).

For contrast, "all at once" fetches the same rows with `.all()` and writes the CSV in one
string: what the report would cost without streaming.

usage: python -m bench.report [--harness DIR] [--database-url URL] [--orders N]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import date
from pathlib import Path

from flask_jwt_extended import create_access_token
from sqlalchemy import text

from bench import harness
from nexus.extensions import db
from nexus.reports import service
from nexus.stores.models import Product, Store
from nexus.users.service import get_or_create_user

YEAR = {"date_from": "2026-01-01", "date_to": "2026-12-31"}
ORDERS = text("""
    INSERT INTO orders
        (buyer_id, store_id, status, subtotal, total, currency, shipping_address, expires_at, paid_at, created_at,
         updated_at)
    SELECT :buyer, :store, status, 1200 + (g % 2) * 800, 1200 + (g % 2) * 800, 'usd', CAST(:address AS JSON),
           at, paid_at, at, at
    FROM (
        SELECT g,
               TIMESTAMPTZ '2026-01-01' + (g % 365) * INTERVAL '1 day' + (g % 86400) * INTERVAL '1 second' AS at,
               CASE WHEN g > :paid THEN 'pending_payment' ELSE 'paid' END AS status,
               CASE WHEN g > :paid THEN NULL
                    WHEN g % 10 = 0 THEN TIMESTAMPTZ '2025-06-01' + (g % 86400) * INTERVAL '1 second'
                    ELSE TIMESTAMPTZ '2026-01-01' + (g % 365) * INTERVAL '1 day' + (g % 86400) * INTERVAL '1 second'
               END AS paid_at
        FROM generate_series(1, :all) AS g
    ) AS generated
""")
ITEMS = text("""
    INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, line_total)
    SELECT id, :teapot, 'Teapot', 1200, 1, 1200 FROM orders WHERE store_id = :store
    UNION ALL
    SELECT id, :cup, 'Cup', 800, 1, 800 FROM orders WHERE store_id = :store AND subtotal = 2000
""")


def prepare(database_url: str, orders: int) -> tuple[int, str]:
    """A new store with `orders` orders paid in 2026, a ninth as many paid in 2025 (every tenth
    paid order: 11,111 for 100,000) and a tenth as many never paid: its id and its owner's token."""
    run = uuid.uuid4().hex[:8]
    with harness.app_for(database_url).app_context():
        owner = get_or_create_user(email=f"bench-report-owner-{run}@example.com")
        buyer = get_or_create_user(email=f"bench-report-buyer-{run}@example.com")
        owner.is_verified = True
        store = Store(owner_id=owner.id, name=f"Report bench {run}", slug=f"report-bench-{run}", currency="usd")
        db.session.add(store)
        db.session.flush()
        teapot, cup = (
            Product(store_id=store.id, name=name, sku=f"{name}-{run}", price=price, currency="usd", stock=0)
            for name, price in (("Teapot", 1200), ("Cup", 800))
        )
        db.session.add_all([teapot, cup])
        db.session.flush()
        # Every tenth paid order is paid in 2025 (out of range), so `paid` covers both.
        paid = orders * 10 // 9
        params = {"buyer": buyer.id, "store": store.id, "paid": paid, "all": paid + orders // 10}
        params["address"] = json.dumps(harness.SHIPPING_ADDRESS)
        db.session.execute(ORDERS, params)
        db.session.execute(ITEMS, {"store": store.id, "teapot": teapot.id, "cup": cup.id})
        db.session.commit()
        db.session.execute(text("ANALYZE orders; ANALYZE order_items"))
        db.session.commit()
        return store.id, create_access_token(identity=str(owner.id))


def rss_kib() -> int:
    """Resident memory now, in KiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def measure(database_url: str, store_id: int, token: str, what: str, traced: bool) -> dict:
    """Run one measurement in this process: a report (`csv`, `json`), a download of the last one
    (`download`), or the all-at-once contrast (`naive`)."""
    app = harness.app_for(database_url)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    client.get("/health")  # connections and imports warm before measuring
    with app.app_context():
        db.session.execute(text("SELECT 1"))
    before = rss_kib()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    if what in ("csv", "json"):
        response = client.post(f"/api/v1/stores/{store_id}/reports", headers=headers, json={**YEAR, "format": what})
        assert response.status_code == 202, response.get_json()
        url = f"/api/v1/reports/{response.get_json()['id']}"
        while (report := client.get(url, headers=headers).get_json())["status"] == "pending":
            time.sleep(0.01)  # its job builds it on a thread of this process (no BROKER_URL)
        assert report["status"] == "ready", report
        result = {"rows": report["row_count"]}
    elif what == "download":
        reports = client.get("/api/v1/profile/me/reports", headers=headers, query_string={"limit": 1}).get_json()
        response = client.get(reports["items"][0]["download_url"], headers=headers)
        result = {"bytes": sum(len(chunk) for chunk in response.response)}
    else:
        with app.app_context():
            year = {name: date.fromisoformat(day) for name, day in YEAR.items()}
            rows = db.session.execute(service.SALES, service.sales_params(store_id, **year)).all()
            result = {"rows": len(rows), "bytes": len("".join(service._csv([rows])))}
    result["seconds"] = time.perf_counter() - started
    if traced:
        result["python_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    result["rss_growth_mib"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return result


def in_child(database_url: str, store_id: int, token: str, what: str, traced: bool) -> dict:
    """`measure` in a new process of this module, so that its peak memory is its own."""
    command = [sys.executable, "-m", __spec__.name, "--database-url", database_url, "--child", what, str(store_id)]
    command += [token, *(["--traced"] if traced else [])]
    output = subprocess.run(command, cwd=harness.PROJECT, capture_output=True, text=True)
    if output.returncode:
        sys.exit(output.stderr)
    return json.loads(output.stdout.splitlines()[-1])


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--orders", type=int, default=100_000, help="orders paid in the report's year")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "STORE", "TOKEN"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, store_id, token = args.child
        print(json.dumps(measure(args.database_url, int(store_id), token, what, args.traced)))
        return
    database_url = harness.database_url(args)

    started = time.perf_counter()
    store_id, token = prepare(database_url, args.orders)
    made = time.perf_counter() - started
    print(f"\n== report: a store with {args.orders} orders paid in 2026 (made in {made:.1f} s)")
    print(f"{'':14}{'seconds':>9}{'rows':>9}{'MB':>8}{'python peak MiB':>17}{'rss growth MiB':>16}")
    for what, label in (("csv", "report csv"), ("download", "download csv"), ("json", "report json"),
                        ("naive", "all at once")):  # fmt: skip
        timed = in_child(database_url, store_id, token, what, traced=False)
        traced = in_child(database_url, store_id, token, what, traced=True)
        rows = timed.get("rows", "")
        size = f"{timed['bytes'] / 1e6:.1f}" if "bytes" in timed else ""
        print(
            f"{label:14}{timed['seconds']:9.2f}{rows:>9}{size:>8}{traced['python_peak_mib']:17.1f}"
            f"{timed['rss_growth_mib']:16.1f}"
        )


if __name__ == "__main__":
    main()
