"""Latency of the catalog's filters and sorts, on the database the shared harness seeded.

Run by `make bench` after `../shared/bench/run.sh --project . --keep-pg`: serves the project
with gunicorn (2 sync workers, as the harness does) on the harness's Postgres (or
--database-url), loads each URL below with the harness's `load.sh` (wrk) for a few seconds at 1
and at 16 connections, and prints one table. Goal: text search (`q`, short words such as `tv`
included) and `store_id` p50 under 20 ms.

usage: python -m bench.catalog_filters [--harness DIR] [--database-url URL] [--seconds S]
"""

import json
import re
import subprocess
import urllib.request
from pathlib import Path

from bench import harness

PORT = 18004
QUERIES = [
    ("first page (reference)", ""),
    ("q: one word", "q=teapot"),
    ("q: two words", "q=walnut+teapot"),
    ("q: three words", "q=rustic+oak+stool"),
    ("q: short word zq", "q=zq"),
    ("q: short word tv", "q=tv"),
    ("q: common short word", "q=te"),
    ("q: short + long words", "q=te+walnut"),
    ("store_id", "store_id={store}"),
    ("store_id, price_asc", "store_id={store}&sort=price_asc"),
    ("price_asc", "sort=price_asc"),
    ("price range, price_desc", "min_price=1000&max_price=5000&sort=price_desc"),
    ("in_stock", "in_stock=true"),
]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def load(harness: Path, url: str, seconds: int, connections: int) -> dict[str, str]:
    output = subprocess.run(
        [str(harness / "load.sh"), url, str(seconds), str(connections)], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=([\d.]+)", output.splitlines()[-1]))


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    server = harness.serve(PORT, harness.database_url(args))
    try:
        base = f"http://127.0.0.1:{PORT}/api/v1/products"
        stores = get(f"http://127.0.0.1:{PORT}/api/v1/stores?limit=100")["items"]
        store = stores[len(stores) // 2]["id"]
        print(f"\n== catalog filters: 2 sync gunicorn workers, {args.seconds} s per line, store_id={store}")
        columns = ("items", "c=1 p50", "c=1 p99", "c=16 req/s", "c=16 p50", "c=16 p99", "errors")
        print(f"{'query':26s} " + " ".join(f"{column:>10s}" for column in columns))
        for name, query in QUERIES:
            url = f"{base}?limit=20&{query.format(store=store)}"
            items = len(get(url)["items"])
            one, many = load(args.harness, url, args.seconds, 1), load(args.harness, url, args.seconds, 16)
            errors = int(one["non2xx"]) + int(one["sock_errors"]) + int(many["non2xx"]) + int(many["sock_errors"])
            cells = (one["p50_ms"], one["p99_ms"], many["rps"], many["p50_ms"], many["p99_ms"])
            print(f"{name:26s} {items:10d} " + " ".join(f"{float(cell):10.2f}" for cell in cells) + f" {errors:10d}")
    finally:
        harness.stop(server)


if __name__ == "__main__":
    main()
