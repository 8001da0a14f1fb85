"""Mixed traffic for 60 s at 32 connections: browsing, sign-ins, orders and Stripe webhooks at once.

Run by `make bench` on the harness's Postgres (seeded with the catalog; or --database-url). The
project is served by gunicorn (2 sync workers, as the harness runs it) and one wrk per endpoint
loads it at the same time, so every endpoint has its own latency figures while all share the
machine:

| endpoint                          | connections | what each request is                               |
|-----------------------------------|-------------|----------------------------------------------------|
| GET  /api/v1/products             | 12          | a catalog page: first pages, filters, sorts        |
| GET  /api/v1/products/{id}        | 4           | a product                                          |
| POST /api/v1/auth/otp/request     | 2           | a sign-in code for a known user (emailed)          |
| POST /api/v1/auth/otp/verify      | 4           | a sign-in with a code issued for the run, each once|
| POST /api/v1/orders               | 6           | 1-3 hot products of one store                      |
| POST /api/v1/webhooks/stripe      | 4           | payment_intent.succeeded, signed, 20% sent twice   |

All the load comes from one address, so the server runs with sign-in rate limits raised
(OTP_RATE_LIMIT_PER_IP/PER_EMAIL); the limits themselves are tested, not benchmarked. The
workers' memory (RSS) is read after a 5 s warm-up and again at the end. Afterwards: the stock
invariant of bench/orders.py for the ordered products, and every webhook'd payment applied once.

usage: python -m bench.mixed [--harness DIR] [--database-url URL] [--seconds S]
"""

import random
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

from bench import harness, orders
from nexus.auth import service as auth
from nexus.auth.models import OtpCode
from nexus.database import utcnow
from nexus.extensions import db
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product, Store
from nexus.users.models import User

PORT = 18007
CONNECTIONS = {"catalog": 12, "product": 4, "otp_request": 2, "otp_verify": 4, "orders": 6, "webhooks": 4}
SIGN_INS, CODE_REQUESTERS, PAYMENTS, STOCK = 20_000, 2_000, 12_000, 1_000_000
WARM_UP = 5  # seconds of catalog, product and order traffic before memory is first read
RAISED_LIMITS = {"OTP_RATE_LIMIT_PER_IP": "1000000 per hour", "OTP_RATE_LIMIT_PER_EMAIL": "1000 per hour"}


def browsing(database_url: str, rng: random.Random) -> tuple[list[str], list[str]]:
    """Catalog pages (first pages, words, a store, price sorts, a next page) and product reads."""
    app = harness.app_for(database_url)
    with app.app_context():
        on_sale = select(Product.id).join(Store).where(Product.is_active, Store.is_active)
        product_ids = db.session.scalars(on_sale.limit(5000)).all()
        store_ids = db.session.scalars(select(Store.id).where(Store.is_active).limit(200)).all()
        cursor = app.test_client().get("/api/v1/products?limit=20").get_json()["next_cursor"]
    words = ["tea", "pot", "cup", "green", "steel", "lamp", "wool", "oak"]
    pages = ["/api/v1/products", "/api/v1/products?limit=20", f"/api/v1/products?limit=20&cursor={cursor}"]
    pages += [f"/api/v1/products?q={rng.choice(words)}" for _ in range(40)]
    pages += [f"/api/v1/products?store_id={rng.choice(store_ids)}" for _ in range(40)]
    pages += [f"/api/v1/products?sort={sort}" for sort in ("newest", "price_asc", "price_desc")]
    catalog = [harness.raw("GET", page, port=PORT) for page in pages]
    return catalog, [harness.raw("GET", f"/api/v1/products/{p}", port=PORT) for p in product_ids]


def sign_ins(database_url: str, run: str) -> tuple[list[str], list[str]]:
    """Code requests for known users, and one verify per code issued (as the email would carry it)."""
    with harness.app_for(database_url).app_context():
        emails = [f"bench-signin-{run}-{n}@example.com" for n in range(SIGN_INS + CODE_REQUESTERS)]
        db.session.execute(insert(User), [{"email": email, "is_verified": True} for email in emails])
        ids = dict(db.session.execute(select(User.email, User.id).where(User.email.in_(emails[:SIGN_INS]))).all())
        codes = {email: f"{n * 7919 % 10**6:06d}" for n, email in enumerate(emails[:SIGN_INS])}
        expires = utcnow() + timedelta(hours=1)
        db.session.execute(
            insert(OtpCode),
            [
                # The code's keyed hash, exactly as sending it stores it.
                {"user_id": ids[email], "code_hash": auth._hash_code(ids[email], code), "expires_at": expires}
                for email, code in codes.items()
            ],
        )
        db.session.commit()
    requests = [harness.raw("POST", "/api/v1/auth/otp/request", {"email": e}, port=PORT) for e in emails[SIGN_INS:]]
    verify = "/api/v1/auth/otp/verify"
    verifies = [harness.raw("POST", verify, {"email": e, "code": c}, port=PORT) for e, c in codes.items()]
    return requests, verifies


ORDERS_TO_PAY = text("""
    INSERT INTO orders (buyer_id, store_id, status, subtotal, total, currency, note, expires_at, created_at, updated_at)
    SELECT :buyer, :store, 'pending_payment', 1000, 1000, :currency, :note, now() + interval '1 day', now(), now()
    FROM generate_series(1, :count)
""")
PAYMENTS_OF_THEM = text("""
    INSERT INTO payments (order_id, user_id, provider, provider_payment_id, amount, currency, status,
                          amount_refunded, created_at, updated_at)
    SELECT id, buyer_id, 'stripe', :prefix || id, total, currency, 'pending', 0, now(), now()
    FROM orders WHERE note = :note
""")


def webhook_deliveries(database_url: str, run: str, rng: random.Random) -> tuple[list[str], str]:
    """Signed payment_intent.succeeded events for open payments of orders made for the run, a
    fifth of them twice, shuffled; and the tag of those orders."""
    note = f"bench-mixed-{run}"
    with harness.app_for(database_url).app_context():
        store = db.session.execute(select(Store.id, Store.owner_id, Store.currency).limit(1)).one()
        buyer = db.session.scalar(select(User.id).where(User.id != store.owner_id).limit(1))
        params = {"buyer": buyer, "store": store.id, "currency": store.currency, "note": note, "count": PAYMENTS}
        db.session.execute(ORDERS_TO_PAY, params)
        db.session.execute(PAYMENTS_OF_THEM, {"prefix": f"pi_mixed_{run}_", "note": note})
        db.session.commit()
        payments = db.session.execute(
            select(Payment.id, Payment.provider_payment_id, Payment.amount, Payment.currency).where(
                Payment.provider_payment_id.like(f"pi_mixed_{run}_%")
            )
        ).all()
    events = []
    for payment in payments:
        intent = {"id": payment.provider_payment_id, "object": "payment_intent", "amount": payment.amount,
                  "currency": payment.currency, "status": "succeeded"}  # fmt: skip
        events.append({"id": f"evt_mixed_{run}_{payment.id}", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": intent}})  # fmt: skip
    deliveries = events + rng.sample(events, len(events) // 5)
    rng.shuffle(deliveries)
    signed = [harness.signed(event) for event in deliveries]  # the run starts at once: well within 5 minutes
    path = "/api/v1/webhooks/stripe"
    return [harness.raw("POST", path, body, {"Stripe-Signature": sig}, port=PORT) for body, sig in signed], note


def ordering(database_url: str, rng: random.Random) -> tuple[list[str], dict[int, tuple[int, int]], int]:
    """Orders of 1-3 hot products of one store by 16 buyers (as bench/orders.py places them),
    the hot products' (stock, reserved) before them, and the last order before them."""
    hot, tokens = orders.prepare(database_url, STOCK)
    initial = orders.snapshot(database_url, hot)
    return orders.order_requests(hot, tokens, rng, PORT), initial, orders.last_order_id(database_url)


def wrk(name: str, requests: list[str], seconds: int) -> subprocess.Popen:
    """One wrk for the endpoint `name`, at its share of the connections."""
    return harness.wrk(requests, PORT, CONNECTIONS[name], seconds)


def worker_rss_mib(master: int) -> dict[int, float]:
    """Resident memory of each gunicorn worker, by pid."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    sizes = {}
    for pid in map(int, children):
        status = Path(f"/proc/{pid}/status").read_text()
        sizes[pid] = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
    return sizes


def webhooks_applied_once(database_url: str, run: str, note: str) -> tuple[bool, dict[str, int]]:
    """(Each payment of the run applied at most once, and applied = succeeded = paid; the counts)."""
    with harness.app_for(database_url).app_context():
        audits = PaymentEventAudit.__table__
        applied = dict(
            db.session.execute(
                select(audits.c.payment_id, func.count())
                .where(audits.c.stripe_event_id.like(f"evt_mixed_{run}_%"), audits.c.outcome == "applied")
                .group_by(audits.c.payment_id)
            ).all()
        )
        succeeded = db.session.scalar(
            select(func.count()).where(
                Payment.provider_payment_id.like(f"pi_mixed_{run}_%"), Payment.status == "succeeded"
            )
        )
        paid = db.session.scalar(
            text("SELECT count(*) FROM orders WHERE note = :note AND status = 'paid'"), {"note": note}
        )
    counts = {"events applied": sum(applied.values()), "payments succeeded": succeeded, "orders paid": paid}
    once = all(count == 1 for count in applied.values()) and len(applied) == succeeded == paid
    return once, counts


def main() -> None:
    parser = harness.parser(__doc__)
    seconds_help = "how long the load lasts; the webhooks are signed before it starts and Stripe's tolerance is 5 min"
    parser.add_argument("--seconds", type=int, default=60, help=seconds_help)
    args = parser.parse_args()
    database_url = harness.database_url(args)

    run, rng = str(int(time.time())), random.Random(7)
    catalog, products = browsing(database_url, rng)
    code_requests, verifies = sign_ins(database_url, run)
    placed, initial, since = ordering(database_url, rng)
    deliveries, note = webhook_deliveries(database_url, run, rng)
    load = {"catalog": catalog, "product": products, "otp_request": code_requests, "otp_verify": verifies,
            "orders": placed, "webhooks": deliveries}  # fmt: skip

    server = harness.serve(PORT, database_url, env={**RAISED_LIMITS, **harness.STRIPE})
    try:
        for warm_up in [wrk(name, load[name], WARM_UP) for name in ("catalog", "product", "orders")]:
            harness.result(warm_up, WARM_UP)
        before = worker_rss_mib(server.pid)
        running = {name: wrk(name, requests, args.seconds) for name, requests in load.items()}
        results = {name: harness.result(process, args.seconds) for name, process in running.items()}
        after = worker_rss_mib(server.pid)
    finally:
        harness.stop(server)

    print(f"\n== mixed traffic: {sum(CONNECTIONS.values())} connections for {args.seconds} s, gunicorn 2 sync workers")
    print(f"{'endpoint':14}{'conns':>6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  answers")
    for name, fields in results.items():
        count = sum(fields["statuses"].values())
        print(
            f"{name:14}{CONNECTIONS[name]:>6}{count:>10}{count / float(fields['seconds']):>9.1f}{fields['p50_ms']:>9}"
            f"{fields['p99_ms']:>9}{fields['max_ms']:>9}  {dict(sorted(fields['statuses'].items()))}"
        )
    server_errors = sum(c for fields in results.values() for s, c in fields["statuses"].items() if s >= 500)
    socket_errors = sum(int(fields["errors"]) for fields in results.values())
    print(f"5xx             {server_errors}   socket errors {socket_errors}")
    for pid in sorted(before):
        growth = (after.get(pid, 0) - before[pid]) / before[pid] * 100
        print(
            f"worker {pid:<8} RSS {before[pid]:.1f} MiB after warm-up -> {after.get(pid, 0):.1f} MiB"
            f" at the end ({growth:+.1f}%)"
        )
    holds, _ = orders.invariant(database_url, initial, since)
    print(
        f"stock invariant {'holds' if holds else 'BROKEN'}: stock - reserved = available, reserved = what orders hold"
    )
    once, counts = webhooks_applied_once(database_url, run, note)
    print(f"webhooks        {'each applied once' if once else 'BROKEN'}: {counts}")


if __name__ == "__main__":
    main()
