"""2,000 signed Stripe events, 30% of them sent twice, in shuffled order, by 8 senders at once.

Run by `make bench` on the harness's Postgres (or --database-url): places orders for ~900
payments, gives each payment a story (paid; processing then paid; failed; paid then refunded in
full; paid then refunded in part), turns the stories into 1,400 events (1,401 when the last
story would be cut short), duplicates 600 of them, shuffles them all and posts them to the
webhook served by gunicorn (2 sync workers). Then it checks that every payment and order ended
where its story says, whatever order the events came in, and that no event was applied twice
(one audit row per event, every delivery counted, refunds and restocking done once). Prints
events/s and latency.

usage: webhooks.py [--harness DIR] [--database-url URL]
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "bench")]

from server import serve, stop  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from nexus import create_app  # noqa: E402
from nexus.extensions import db  # noqa: E402
from nexus.orders import service as orders  # noqa: E402
from nexus.orders.models import Order  # noqa: E402
from nexus.payments.models import Payment, PaymentEventAudit  # noqa: E402
from nexus.stores.models import Product, Store  # noqa: E402
from nexus.users.service import get_or_create_user  # noqa: E402

PORT, SENDERS, UNIQUE_EVENTS, DUPLICATES = 18006, 8, 1_400, 600
SECRET = "whsec_nexus_bench"
# A story: the events Stripe sends for a payment, and where the payment and its order end.
STORIES = [
    (["succeeded"], "succeeded", "paid"),
    (["processing", "succeeded"], "succeeded", "paid"),
    (["payment_failed"], "failed", "pending_payment"),
    (["succeeded", "refund_full"], "refunded", "refunded"),
    (["succeeded", "refund_part"], "partially_refunded", "paid"),
]


def app_for(database_url: str):
    return create_app({**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})


def prepare(database_url: str, run: str) -> tuple[list[dict], dict[int, tuple[str, str]]]:
    """Orders and their open payments, the events of their stories, and each payment's ending."""
    rng = random.Random(run)
    events: list[dict] = []
    endings: dict[int, tuple[str, str]] = {}
    with app_for(database_url).app_context():
        buyer = get_or_create_user(email="bench-webhook-buyer@example.com")
        buyer.is_verified = True
        db.session.commit()
        shop = select(Product.id).join(Store).where(Store.is_active, Product.is_active, Product.stock > 1000)
        product_ids = db.session.scalars(shop.order_by(Product.id).limit(50)).all()
        if len(product_ids) < 50:  # the demo catalog's stock is 1..500: give a few products plenty
            any_shop = select(Product.id).join(Store).where(Store.is_active, Product.is_active)
            product_ids = db.session.scalars(any_shop.limit(50)).all()
            db.session.execute(Product.__table__.update().where(Product.id.in_(product_ids)).values(stock=1_000_000))
            db.session.commit()
        while len(events) < UNIQUE_EVENTS:
            order, _ = orders.place_order(buyer, items=[{"product_id": rng.choice(product_ids), "quantity": 1}])
            payment = Payment(
                order_id=order.id,
                user_id=buyer.id,
                amount=order.total,
                currency=order.currency,
                provider_payment_id=f"pi_bench_{run}_{order.id}",
            )
            db.session.add(payment)
            db.session.commit()
            story, payment_status, order_status = rng.choice(STORIES)
            endings[payment.id] = (payment_status, order_status)
            events += [stripe_event(payment, step, n, run) for n, step in enumerate(story)]
    return events, endings  # whole stories: one event over UNIQUE_EVENTS at most


def stripe_event(payment: Payment, step: str, n: int, run: str) -> dict:
    if step.startswith("refund"):
        refunded = payment.amount if step == "refund_full" else max(1, payment.amount // 3)
        obj = {
            "id": f"ch_{payment.id}",
            "object": "charge",
            "payment_intent": payment.provider_payment_id,
            "amount": payment.amount,
            "amount_refunded": refunded,
            "currency": payment.currency,
        }
        kind = "charge.refunded"
    else:
        status = "requires_payment_method" if step == "payment_failed" else step
        obj = {
            "id": payment.provider_payment_id,
            "object": "payment_intent",
            "amount": payment.amount,
            "currency": payment.currency,
            "status": status,
        }
        kind = f"payment_intent.{step}"
    return {"id": f"evt_bench_{run}_{payment.id}_{n}", "object": "event", "type": kind, "data": {"object": obj}}


def signed(event: dict) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    signature = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"


def send_all(deliveries: list[dict]) -> tuple[float, list[float], Counter]:
    """Post every delivery, `SENDERS` at a time; (seconds, latencies in ms, answers by status)."""
    queue, lock = list(reversed(deliveries)), threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                event = queue.pop()
            payload, signature = signed(event)
            started = time.perf_counter()
            headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
            connection.request("POST", "/api/v1/webhooks/stripe", payload, headers)
            response = connection.getresponse()
            response.read()
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, statuses


def check(database_url: str, events: list[dict], endings: dict[int, tuple[str, str]], posted: int) -> list[str]:
    """Everything that is not as the stories say (empty when all is well)."""
    problems = []
    with app_for(database_url).app_context():
        ids = [event["id"] for event in events]
        audit = PaymentEventAudit
        audits = db.session.execute(
            select(audit.stripe_event_id, audit.deliveries, audit.outcome).where(audit.stripe_event_id.in_(ids))
        ).all()
        if len(audits) != len(ids):
            problems.append(f"{len(audits)} audit rows for {len(ids)} events")
        if sum(row.deliveries for row in audits) != posted:
            problems.append(f"{sum(row.deliveries for row in audits)} deliveries recorded for {posted} posted")
        if errors := [row for row in audits if row.outcome == "error"]:
            problems.append(f"{len(errors)} events ended in error")
        rows = db.session.execute(
            select(Payment.id, Payment.status, Payment.amount, Payment.amount_refunded, Order.status)
            .join(Order, Order.id == Payment.order_id)
            .where(Payment.id.in_(endings))
        ).all()
        for payment_id, status, amount, refunded, order_status in rows:
            if (status, order_status) != endings[payment_id]:
                problems.append(f"payment {payment_id}: {status}/{order_status}, expected {endings[payment_id]}")
            if refunded > amount:
                problems.append(f"payment {payment_id}: refunded {refunded} of {amount}")
    return problems


def outcome_counts(database_url: str, events: list[dict]) -> Counter:
    with app_for(database_url).app_context():
        ids = [event["id"] for event in events]
        audit = PaymentEventAudit
        rows = db.session.execute(
            select(audit.outcome, func.count()).where(audit.stripe_event_id.in_(ids)).group_by(audit.outcome)
        ).all()
        return Counter(dict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harness", type=Path, default=PROJECT.parent / "shared/bench")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    database_url = (
        args.database_url
        or subprocess.run(
            [str(args.harness / "pg.sh"), "url"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )

    run = str(int(time.time()))
    events, endings = prepare(database_url, run)
    rng = random.Random(run)
    deliveries = events + rng.sample(events, DUPLICATES)
    rng.shuffle(deliveries)
    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
    server = serve(PORT, database_url)
    try:
        seconds, latencies, statuses = send_all(deliveries)
    finally:
        stop(server)

    problems = check(database_url, events, endings, posted=len(deliveries))
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"\n== webhooks: {len(deliveries)} signed events ({DUPLICATES} sent twice), shuffled, {SENDERS} senders")
    print(f"payments        {len(endings)}  ({dict(Counter(ending for ending in endings.values()))})")
    print(f"throughput      {len(deliveries) / seconds:.1f} events/s  ({seconds:.1f} s)")
    print(f"latency ms      p50 {quantiles[49]:.2f}  p90 {quantiles[89]:.2f}  p99 {quantiles[98]:.2f}")
    print(f"answers         {dict(sorted(statuses.items()))}")
    print(f"outcomes        {dict(outcome_counts(database_url, events))}")
    verdict = "BROKEN" if problems else "every payment and order ended as its story says; no event applied twice"
    print(f"correctness     {verdict}")
    for problem in problems:
        print(f"  - {problem}")


if __name__ == "__main__":
    main()
