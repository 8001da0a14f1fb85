"""Stripe Connect's webhook and the transfer jobs: 1,400 signed Connect events and 600 of them
again (2,000 deliveries), shuffled, by 8 senders at once, while every transfer job is delivered
twice.

Run by `make bench` after bench.webhooks (`python -m bench.webhooks` runs both), on the
harness's Postgres (or --database-url). It opens 350 stores, each with an Express account at
the Connect stand-in (tests/stripe_connect.py, serving in this process) that does not take
payouts yet, and 1 to 4 delivered orders per store whose transfers wait for it (a third of them
partly refunded before delivery). Each store's story is four events: an `account.updated` asking
for more (older news, as Stripe sends during onboarding), the `account.updated` of its finished
onboarding (payouts enabled), a `payout.paid`, and a later payout's `payout.failed`. 600 of the
1,400 are sent a second time, all shuffled, to the Connect webhook of the project served as
deployed (gunicorn's gthread workers), its jobs on Redis run by the job worker
(`flask --app wsgi worker`); meanwhile a thread here hands every transfer job to the queue a
second time. Then it checks that every transfer was made exactly once at the stand-in with its
share (kept - floor(kept x 1000 / 10000)), whatever order the events came in, that every account
ended enabled with the later payout failed, and that no event was applied twice. Prints events/s,
latency and how long the transfers took.

usage: python -m bench.payouts [--harness DIR] [--database-url URL]
"""

import random
import statistics
import threading
import time
from collections import Counter

from sqlalchemy import func, select, update

from bench import harness, mixed
from bench.webhooks import audit_problems, audits_of, send_all
from nexus import create_app
from nexus.extensions import db
from nexus.jobs.outbox import OutboxJob
from nexus.orders import service as orders
from nexus.orders.models import Order, OrderStatus
from nexus.payments.models import Payment
from nexus.payouts.models import PayoutAccount, Transfer
from nexus.payouts.service import MAKE
from nexus.stores.models import Product, Store
from nexus.users.service import get_or_create_user
from tests.stripe_connect import PLATFORM, StripeConnect

PORT, STORES, EVENTS_PER_STORE, DUPLICATES = 18008, 350, 4, 600
THREADS = 4  # WEB_THREADS as deployed, in 2 processes
DRAIN = 180  # seconds the worker has to make every transfer after the last delivery
FEE_BPS = 1000


def _user(email: str):
    user = get_or_create_user(email=email)
    user.is_verified = True
    return user


def _delivered(stand_in: StripeConnect, buyer, product: Product, quantity: int, refunded: int, run: str) -> Order:
    """An order placed, paid by a charge the stand-in knows (`refunded` of it given back), shipped
    and then delivered through the service, so its transfer falls due as in production."""
    order, _ = orders.place_order(
        buyer, items=[{"product_id": product.id, "quantity": quantity}], shipping_address=harness.SHIPPING_ADDRESS
    )
    intent = f"pi_bench_payouts_{run}_{order.id}"
    charge = stand_in.charge(
        f"ch_bench_payouts_{run}_{order.id}", order.total, order.currency, intent_id=intent, refunded=refunded
    )
    db.session.add(
        Payment(
            order_id=order.id,
            user_id=buyer.id,
            amount=order.total,
            currency=order.currency,
            provider_payment_id=intent,
            status="partially_refunded" if refunded else "succeeded",
            amount_refunded=refunded,
            charge_id=charge["id"],
        )
    )
    db.session.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.SHIPPED.value))
    db.session.commit()
    db.session.refresh(order)
    return orders.move(order, OrderStatus.DELIVERED, {orders.OWNER})


def prepare(database_url: str, stand_in: StripeConnect, run: str) -> tuple[list[dict], dict[int, int], dict]:
    """Stores, their accounts and waiting transfers, and the stories' events: (events, each
    transfer's expected amount by id, each account's expected latest payout by account id)."""
    rng = random.Random(run)
    events: list[dict] = []
    expected: dict[int, int] = {}
    payouts: dict[str, str] = {}
    now = int(time.time())
    with harness.app_for(database_url).app_context():
        seller = _user(f"bench-payouts-seller-{run}@example.com")
        buyer = _user(f"bench-payouts-buyer-{run}@example.com")
        db.session.commit()
        for n in range(STORES):
            store = Store(
                owner_id=seller.id, name=f"Payout bench {run} {n}", slug=f"payout-bench-{run}-{n}", currency="usd"
            )
            db.session.add(store)
            db.session.flush()
            product = Product(store_id=store.id, name="Bench lamp", price=rng.randint(500, 90_000), currency="usd",
                              stock=1_000_000)  # fmt: skip
            opened = stand_in.create_account({"type": "express", "capabilities": {"transfers": {"requested": "true"}},
                                              "metadata": {"store_id": str(store.id)}}, PLATFORM)  # fmt: skip
            db.session.add(product)
            db.session.add(PayoutAccount(store_id=store.id, stripe_account_id=opened["id"], requirements_due=[]))
            db.session.commit()
            for _ in range(rng.randint(1, 4)):
                quantity = rng.randint(1, 3)
                refunded = rng.randint(1, product.price * quantity // 2) if rng.random() < 1 / 3 else 0
                order = _delivered(stand_in, buyer, product, quantity, refunded, run)
                transfer = db.session.scalar(select(Transfer).where(Transfer.order_id == order.id))
                kept = order.total - refunded
                expected[transfer.id] = kept - kept * FEE_BPS // 10_000
            events += story(stand_in, opened["id"], now, payouts)
    return events, expected, payouts


def story(stand_in: StripeConnect, account_id: str, now: int, payouts: dict[str, str]) -> list[dict]:
    """The four events of an account's onboarding and first payouts (see the module's doc)."""
    asking = stand_in.event("account.updated", stand_in.require(account_id, "external_account"), account=account_id)
    asking["created"] = now - 120
    done = stand_in.event("account.updated", stand_in.finish_onboarding(account_id), account=account_id)
    done["created"] = now - 60
    paid = stand_in.payout_event(account_id, "paid", 10_000, "usd", created=now - 30)
    failed = stand_in.payout_event(account_id, "failed", 5_000, "usd", created=now)
    payouts[account_id] = failed["data"]["object"]["id"]
    return [asking, done, paid, failed]


def last_job(database_url: str) -> int:
    with harness.app_for(database_url).app_context():
        return db.session.scalar(select(func.coalesce(func.max(OutboxJob.id), 0)))


def redeliver(database_url: str, settings: dict[str, str], since: int, total: int, stop: threading.Event) -> list[int]:
    """Hand every transfer job written after `since` to the queue a second time, as soon as it
    appears (the worker may be running its first delivery meanwhile); the ids sent again."""
    app, sent = create_app(harness.environ(database_url, settings)), set()  # the run's Redis queue
    with app.app_context():
        jobs = select(OutboxJob.id).where(OutboxJob.id > since, OutboxJob.job == MAKE)
        while len(sent) < total and not stop.is_set():
            for job_id in db.session.scalars(jobs).all():
                if job_id not in sent:
                    app.extensions["jobs"].send(job_id)
                    sent.add(job_id)
            db.session.rollback()
            time.sleep(0.1)
    return sorted(sent)


def wait_for_transfers(database_url: str, transfer_ids: list[int]) -> float:
    """Seconds until every transfer is made (at most DRAIN)."""
    start = time.monotonic()
    with harness.app_for(database_url).app_context():
        waiting = select(func.count()).where(Transfer.id.in_(transfer_ids), Transfer.status == "pending")
        while db.session.scalar(waiting) and time.monotonic() - start < DRAIN:
            db.session.rollback()
            time.sleep(0.2)
    return time.monotonic() - start


def check(database_url, stand_in, events, expected, payouts, posted, since) -> tuple[list[str], Counter, Counter]:
    """What is not as the stories say (empty when all is well), the events' outcomes, the jobs'."""
    with harness.app_for(database_url).app_context():
        ids = [event["id"] for event in events]
        audits = audits_of(ids)
        transfers = db.session.execute(
            select(Transfer.id, Transfer.status, Transfer.amount, Transfer.stripe_transfer_id).where(
                Transfer.id.in_(expected)
            )
        ).all()
        accounts = db.session.execute(
            select(PayoutAccount.stripe_account_id, PayoutAccount.payouts_enabled, PayoutAccount.requirements_due,
                   PayoutAccount.last_payout_id, PayoutAccount.last_payout_status)
            .where(PayoutAccount.stripe_account_id.in_(payouts))
        ).all()  # fmt: skip
        jobs = db.session.execute(
            select(OutboxJob.status, func.count())
            .where(OutboxJob.id > since, OutboxJob.job == MAKE)
            .group_by(OutboxJob.status)
        ).all()
    problems = audit_problems(audits, ids, posted)
    made = Counter(t["metadata"].get("transfer_id") for t in stand_in.transfers.values())
    at_stripe = {t["metadata"].get("transfer_id"): t for t in stand_in.transfers.values()}
    for transfer_id, status, amount, stripe_id in transfers:
        if (status, amount) != ("paid", expected[transfer_id]):
            problems.append(f"transfer {transfer_id}: {status} {amount}, expected paid {expected[transfer_id]}")
        if made[str(transfer_id)] != 1:
            problems.append(f"transfer {transfer_id}: made {made[str(transfer_id)]} times at Stripe")
        elif (
            at_stripe[str(transfer_id)]["amount"] != expected[transfer_id]
            or at_stripe[str(transfer_id)]["id"] != stripe_id
        ):
            problems.append(f"transfer {transfer_id}: Stripe's is not ours")
    for account_id, enabled, due, payout_id, payout_status in accounts:
        if (enabled, due, payout_id, payout_status) != (True, [], payouts[account_id], "failed"):
            problems.append(f"account {account_id}: {enabled} {due} {payout_id} {payout_status}")
    return problems, Counter(row.outcome for row in audits), Counter(dict(jobs))


def main(args=None) -> None:
    if args is None:
        args = harness.parser(__doc__).parse_args()
    database_url = harness.database_url(args)
    run = str(time.time_ns() // 1000)
    stand_in = StripeConnect(webhook_secret=harness.WEBHOOK_SECRET)
    settings = {
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_API_BASE": stand_in.url,
        "STRIPE_CONNECT_WEBHOOK_SECRET": harness.WEBHOOK_SECRET,
        "PLATFORM_FEE_BPS": str(FEE_BPS),
        "BROKER_URL": mixed.BROKER_URL,
        "BROKER_NAMESPACE": f"nexus-bench-payouts-{run}",
    }
    started = time.monotonic()
    events, expected, payouts = prepare(database_url, stand_in, run)
    prepared = time.monotonic() - started
    rng = random.Random(run)
    deliveries = events + rng.sample(events, DUPLICATES)
    rng.shuffle(deliveries)
    since, calls_before = last_job(database_url), stand_in.calls[("POST", "transfers.create")]
    worker = mixed.start_worker(harness.environ(database_url, settings))
    stop, resent = threading.Event(), []
    try:
        server = harness.serve(PORT, database_url, env=settings, threads=THREADS)
        try:

            def again_() -> None:
                resent.extend(redeliver(database_url, settings, since, len(expected), stop))

            again = threading.Thread(target=again_, daemon=True)
            again.start()
            sent_at = time.monotonic()
            seconds, latencies, statuses = send_all(deliveries, path="/api/v1/webhooks/stripe-connect", port=PORT)
            wait_for_transfers(database_url, list(expected))
            made_in = time.monotonic() - sent_at
            again.join(timeout=30)
        finally:
            stop.set()
            harness.stop(server)
        worker_alive = worker.poll() is None
    finally:
        mixed.stop_worker(worker)
        mixed.forget_queue(settings["BROKER_NAMESPACE"])
        stand_in.close()

    problems, outcomes, jobs = check(database_url, stand_in, events, expected, payouts, len(deliveries), since)
    calls = stand_in.calls[("POST", "transfers.create")] - calls_before
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"\n== connect webhook: {len(deliveries)} signed Connect events ({DUPLICATES} sent twice), shuffled, 8 senders;"
        " every transfer job delivered twice; gunicorn 2 gthread workers x 4 threads, jobs by the worker on Redis"
    )
    print(f"prepared        {STORES} stores, {len(expected)} transfers waiting for their accounts ({prepared:.1f} s)")
    print(f"throughput      {len(deliveries) / seconds:.1f} events/s  ({seconds:.1f} s)")
    print(f"latency ms      p50 {quantiles[49]:.2f}  p90 {quantiles[89]:.2f}  p99 {quantiles[98]:.2f}")
    print(f"answers         {dict(sorted(statuses.items()))}")
    print(f"outcomes        {dict(outcomes)}")
    print(
        f"transfers       {len(expected)} made {made_in:.1f} s after the first delivery "
        f"({len(expected) / made_in:.1f}/s); jobs {dict(jobs)}, {len(resent)} delivered a second time; "
        f"{calls} transfer calls to Stripe" + ("" if worker_alive else f"; the WORKER EXITED, see {worker.log}")
    )
    verdict = (
        "BROKEN"
        if problems
        else "every transfer made exactly once with its share; every account enabled, its later payout failed; "
        "no event applied twice"
    )
    print(f"correctness     {verdict}")
    for problem in problems[:20]:
        print(f"  - {problem}")


if __name__ == "__main__":
    main()
