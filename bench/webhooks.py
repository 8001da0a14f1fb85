"""1,400 signed Stripe events and 600 of them again: 2,000 deliveries, shuffled, by 8 senders at once;
then the same for Stripe Connect's webhook with every transfer job delivered twice (bench/payouts.py).

Run by `make bench` on the harness's Postgres (or --database-url): places orders for ~900
payments, gives each payment a story (paid; processing then paid; failed; paid then refunded in
full; paid then refunded in part), turns the stories into 1,400 events (1,401 when the last
story would be cut short: 2,001 deliveries then), sends 600 of them a second time, shuffles all
the deliveries and posts them to the webhook served by gunicorn (2 sync workers). Then it checks
that every payment and order ended where its story says, whatever order the events came in,
with exactly the amount its story refunds, and that no event was applied twice (one audit row
per event, every delivery counted). Prints events/s and latency.

usage: python -m bench.webhooks [--harness DIR] [--database-url URL]
"""

import http.client
import random
import statistics
import threading
import time
from collections import Counter
from typing import NamedTuple

from sqlalchemy import select

from bench import harness
from nexus.extensions import db
from nexus.orders import service as orders
from nexus.orders.models import Order
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product, Store
from nexus.users.service import get_or_create_user

PORT, SENDERS, UNIQUE_EVENTS, DUPLICATES = 18006, 8, 1_400, 600


class Story(NamedTuple):
    """The events Stripe sends for a payment, and where the payment and its order end."""

    steps: tuple[str, ...]
    payment: str
    order: str


STORIES = [
    Story(("succeeded",), "succeeded", "paid"),
    Story(("processing", "succeeded"), "succeeded", "paid"),
    Story(("payment_failed",), "failed", "pending_payment"),
    Story(("succeeded", "refund_full"), "refunded", "refunded"),
    Story(("succeeded", "refund_part"), "partially_refunded", "paid"),
]


def refunded(steps: tuple[str, ...], amount: int) -> int:
    """How much of `amount` is refunded once `steps` have happened: all, a third (at least 1) or none."""
    if "refund_full" in steps:
        return amount
    return max(1, amount // 3) if "refund_part" in steps else 0


def prepare(database_url: str, run: str) -> tuple[list[dict], dict[int, Story]]:
    """Orders and their open payments, the events of their stories, and each payment's story."""
    rng = random.Random(run)
    events: list[dict] = []
    stories: dict[int, Story] = {}
    with harness.app_for(database_url).app_context():
        buyer = get_or_create_user(email="bench-webhook-buyer@example.com")
        buyer.is_verified = True
        db.session.commit()
        shop = select(Product.id).join(Store).where(Store.is_active, Product.is_active, Product.available > 1000)
        product_ids = db.session.scalars(shop.order_by(Product.id).limit(50)).all()
        if len(product_ids) < 50:  # the demo catalog's stock is 1..500: give a few products plenty
            any_shop = select(Product.id).join(Store).where(Store.is_active, Product.is_active)
            product_ids = db.session.scalars(any_shop.limit(50)).all()
            db.session.execute(
                Product.__table__.update().where(Product.id.in_(product_ids)).values(stock=Product.reserved + 1_000_000)
            )
            db.session.commit()
        while len(events) < UNIQUE_EVENTS:
            line = {"product_id": rng.choice(product_ids), "quantity": 1}
            order, _ = orders.place_order(buyer, items=[line], shipping_address=harness.SHIPPING_ADDRESS)
            payment = Payment(
                order_id=order.id,
                user_id=buyer.id,
                amount=order.total,
                currency=order.currency,
                provider_payment_id=f"pi_bench_{run}_{order.id}",
            )
            db.session.add(payment)
            db.session.commit()
            stories[payment.id] = story = rng.choice(STORIES)
            events += [stripe_event(payment, step, n, run) for n, step in enumerate(story.steps)]
    return events, stories  # whole stories: one event over UNIQUE_EVENTS at most


def stripe_event(payment: Payment, step: str, n: int, run: str) -> dict:
    if step.startswith("refund"):
        obj = {
            "id": f"ch_{payment.id}",
            "object": "charge",
            "payment_intent": payment.provider_payment_id,
            "amount": payment.amount,
            "amount_refunded": refunded((step,), payment.amount),
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


def send_all(
    deliveries: list[dict], *, path: str = "/api/v1/webhooks/stripe", port: int = PORT
) -> tuple[float, list[float], Counter]:
    """Post every delivery to `path`, `SENDERS` at a time; (seconds, latencies in ms, answers by status)."""
    queue, lock = list(reversed(deliveries)), threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                event = queue.pop()
            payload, signature = harness.signed(event)
            started = time.perf_counter()
            headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
            connection.request("POST", path, payload, headers)
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


def audits_of(event_ids: list[str]) -> list:
    """The audit rows of these events (id, deliveries, outcome); in an app context."""
    audit = PaymentEventAudit
    return db.session.execute(
        select(audit.stripe_event_id, audit.deliveries, audit.outcome).where(audit.stripe_event_id.in_(event_ids))
    ).all()


def audit_problems(audits: list, event_ids: list[str], posted: int) -> list[str]:
    """What the audit says went wrong: an event stored other than once, a delivery not counted, an error."""
    problems = []
    if len(audits) != len(event_ids):
        problems.append(f"{len(audits)} audit rows for {len(event_ids)} events")
    if sum(row.deliveries for row in audits) != posted:
        problems.append(f"{sum(row.deliveries for row in audits)} deliveries recorded for {posted} posted")
    if errors := [row for row in audits if row.outcome == "error"]:
        problems.append(f"{len(errors)} events ended in error")
    return problems


def check(database_url: str, events: list[dict], stories: dict[int, Story], posted: int) -> tuple[list[str], Counter]:
    """Everything that is not as the stories say (empty when all is well), and the events' outcomes."""
    with harness.app_for(database_url).app_context():
        ids = [event["id"] for event in events]
        audits = audits_of(ids)
        rows = db.session.execute(
            select(Payment.id, Payment.status, Payment.amount, Payment.amount_refunded, Order.status)
            .join(Order, Order.id == Payment.order_id)
            .where(Payment.id.in_(stories))
        ).all()
    problems = audit_problems(audits, ids, posted)
    if len(rows) != len(stories):
        problems.append(f"{len(rows)} payments found of {len(stories)}")
    for payment_id, status, amount, amount_refunded, order_status in rows:
        story = stories[payment_id]
        if (status, order_status) != (story.payment, story.order):
            problems.append(f"payment {payment_id}: {status}/{order_status}, expected {story.payment}/{story.order}")
        if amount_refunded != (expected := refunded(story.steps, amount)):
            problems.append(f"payment {payment_id}: refunded {amount_refunded} of {amount}, expected {expected}")
    return problems, Counter(row.outcome for row in audits)


def main() -> None:
    args = harness.parser(__doc__).parse_args()
    database_url = harness.database_url(args)

    run = str(int(time.time()))
    events, stories = prepare(database_url, run)
    rng = random.Random(run)
    deliveries = events + rng.sample(events, DUPLICATES)
    rng.shuffle(deliveries)
    server = harness.serve(PORT, database_url, env=harness.STRIPE)
    try:
        seconds, latencies, statuses = send_all(deliveries)
    finally:
        harness.stop(server)

    problems, outcomes = check(database_url, events, stories, posted=len(deliveries))
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"\n== webhooks: {len(deliveries)} signed events ({DUPLICATES} sent twice), shuffled, {SENDERS} senders")
    endings = Counter((story.payment, story.order) for story in stories.values())
    print(f"payments        {len(stories)}  ({dict(endings)})")
    print(f"throughput      {len(deliveries) / seconds:.1f} events/s  ({seconds:.1f} s)")
    print(f"latency ms      p50 {quantiles[49]:.2f}  p90 {quantiles[89]:.2f}  p99 {quantiles[98]:.2f}")
    print(f"answers         {dict(sorted(statuses.items()))}")
    print(f"outcomes        {dict(outcomes)}")
    verdict = "BROKEN" if problems else "every payment and order ended as its story says; no event applied twice"
    print(f"correctness     {verdict}")
    for problem in problems:
        print(f"  - {problem}")

    from bench import payouts  # it builds on this module's sender

    payouts.main(args)


if __name__ == "__main__":
    main()
