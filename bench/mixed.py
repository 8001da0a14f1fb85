"""Mixed traffic for 60 s at 32 connections: browsing, sign-ins, orders and Stripe webhooks at once,
then the same again with the mail server hung for the middle 20 s of it.

Run by `make bench` on the harness's Postgres (seeded with the catalog; or --database-url). The
project is served as deployed: gunicorn's gthread workers (gunicorn.conf.py; WEB_CONCURRENCY 2
processes of WEB_THREADS 4 threads), its jobs on the Redis queue (BROKER_URL, a namespace of the
run's own) and run by the job worker (`flask --app wsgi worker`, the same environment), which
emails the sign-in codes through an SMTP stand-in running in this process (aiosmtpd, no TLS,
MAIL_TIMEOUT 2 s). One wrk per endpoint loads it at the same time, so every endpoint has its own
latency figures while all share the machine:

| endpoint                          | connections | what each request is                               |
|-----------------------------------|-------------|----------------------------------------------------|
| GET  /api/v1/products             | 12          | a catalog page: first pages, filters, sorts        |
| GET  /api/v1/products/{id}        | 4           | a product                                          |
| POST /api/v1/auth/otp/request     | 2           | a sign-in code for a known user (emailed by a job) |
| POST /api/v1/auth/otp/verify      | 4           | a sign-in with a code issued for the run, each once|
| POST /api/v1/orders               | 6           | 1-3 hot products of one store                      |
| POST /api/v1/webhooks/stripe      | 4           | payment_intent.succeeded, signed, 20% sent twice   |

The codes the verifies use are written to the database by the bench (as sending them stores
them), not read from the emails. Besides the wrks, a probe asks for one catalog page
(`GET /api/v1/products?limit=20`) 10 times a second on a connection of its own and times each
answer, for the catalog's latency in windows of the run. The second run is the first's load
with, in its middle 20 s, the SMTP port taken over by a listener that accepts and never answers
(a hung mail server): the catalog's p99 in the 20 s before the hang is shown beside its p99
during the hang. After each run the worker is given up to 90 s to empty the queue, then the
stand-in's count of sign-in emails is shown beside the codes asked for and the jobs' outcomes.

All the load comes from one address, so the server runs with sign-in rate limits raised
(OTP_RATE_LIMIT_PER_IP/PER_EMAIL); the limits themselves are tested, not benchmarked. The
workers' memory (RSS) is read after a 5 s warm-up and again at the end. Afterwards: the stock
invariant of bench/orders.py for the ordered products, and every webhook'd payment applied once.

usage: python -m bench.mixed [--harness DIR] [--database-url URL] [--seconds S] [--hang S]
"""

import email
import http.client
import json
import math
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import redis
from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select, text

from bench import harness, orders
from nexus.auth import emails
from nexus.auth import service as auth
from nexus.auth.models import OtpCode
from nexus.database import utcnow
from nexus.extensions import db
from nexus.jobs.outbox import OutboxJob
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.stores.models import Product, Store
from nexus.users.models import User

PORT = 18007
CONNECTIONS = {"catalog": 12, "product": 4, "otp_request": 2, "otp_verify": 4, "orders": 6, "webhooks": 4}
SIGN_INS, CODE_REQUESTERS, PAYMENTS, STOCK = 20_000, 2_000, 12_000, 1_000_000
WARM_UP = 5  # seconds of catalog, product and order traffic before memory is first read
RAISED_LIMITS = {"OTP_RATE_LIMIT_PER_IP": "1000000 per hour", "OTP_RATE_LIMIT_PER_EMAIL": "1000 per hour"}
THREADS = 4  # WEB_THREADS as deployed (render.yaml), in WEB_CONCURRENCY 2 processes
BROKER_URL = "redis://127.0.0.1:6379/14"
MAIL = {
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_USE_TLS": "false",
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_TIMEOUT": "2",
}
PROBE = "/api/v1/products?limit=20"
PROBES_PER_SECOND = 10
DRAIN = 90  # seconds the worker has after the load to send what is still queued


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
    INSERT INTO orders (buyer_id, store_id, status, subtotal, total, currency, note, shipping_address, expires_at,
                        created_at, updated_at)
    SELECT :buyer, :store, 'pending_payment', 1000, 1000, :currency, :note, CAST(:address AS JSON),
           now() + interval '1 day', now(), now()
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
        params["address"] = json.dumps(harness.SHIPPING_ADDRESS)
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


class Inbox:
    """The SMTP stand-in's handler: counts the sign-in emails it is given (and any other mail)."""

    def __init__(self) -> None:
        self.sign_ins = 0
        self.other = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        if email.message_from_bytes(envelope.content)["Subject"] == emails.SUBJECT:
            self.sign_ins += 1
        else:
            self.other += 1
        return "250 Message accepted for delivery"


class Silent:
    """A listener that accepts connections and never says a word (a hung mail server); closed,
    it hangs up on all of them. It stops accepting when closed, and holds at most 10,000."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: the port just freed
        self.listener.settimeout(0.2)
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set() and len(self.held) < 10_000:
            try:
                self.held.append(self.listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in [*self.held, self.listener]:
            connection.close()


class MailServer:
    """The SMTP stand-in on one port of 127.0.0.1: aiosmtpd taking mail (`answer`), or, while
    `hang`s, a Silent listener on the same port; one Inbox counts across both."""

    def __init__(self) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            self.port: int = free.getsockname()[1]
        self.inbox = Inbox()
        self.controller: Controller | None = None
        self.silent: Silent | None = None
        self.hung = 0  # connections the silent listener took
        self.answer()

    def answer(self) -> None:
        if self.silent:
            self.hung += len(self.silent.held)
            self.silent.close()
            self.silent = None
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def hang(self) -> None:
        self.controller.stop()
        self.controller = None
        self.silent = Silent(self.port)

    def close(self) -> None:
        if self.silent:
            self.hung += len(self.silent.held)
            self.silent.close()
        if self.controller:
            self.controller.stop()


def start_worker(environ: dict[str, str]) -> subprocess.Popen:
    """The job worker as Render runs it (`flask --app wsgi worker`), its output in a log file."""
    command = [str(harness.PROJECT / ".venv/bin/flask"), "--app", "wsgi", "worker"]
    with tempfile.NamedTemporaryFile("w", prefix="nexus-bench-worker-", suffix=".log", delete=False) as log:
        worker = subprocess.Popen(command, cwd=harness.PROJECT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    worker.log = log.name
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM (it lets running jobs finish for up to 25 s), then SIGKILL."""
    worker.terminate()
    try:
        worker.wait(timeout=35)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def probe(seconds: int, samples: list[tuple[float, float, int]]) -> None:
    """PROBES_PER_SECOND catalog pages a second for `seconds`, each on a connection of its own:
    (seconds since the start, milliseconds, status or 0 for no answer) appended to `samples`."""
    start = time.monotonic()
    for n in range(seconds * PROBES_PER_SECOND):
        time.sleep(max(0.0, start + n / PROBES_PER_SECOND - time.monotonic()))
        sent = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        try:
            connection.request("GET", PROBE)
            answer = connection.getresponse()
            answer.read()
            status = answer.status
        except OSError:
            status = 0
        finally:
            connection.close()
        samples.append((sent - start, (time.monotonic() - sent) * 1000, status))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)] if ordered else 0.0


def window(samples: list[tuple[float, float, int]], start: float, end: float) -> str:
    """The probe's p50/p99 for the requests sent from `start` to `end` s into the run."""
    times = [ms for at, ms, _ in samples if start <= at < end]
    return f"p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms ({len(times)} pages)"


def jobs_of_run(database_url: str, since: int) -> dict[str, int]:
    """The sign-in email jobs queued since outbox row `since`, by status."""
    with harness.app_for(database_url).app_context():
        query = select(OutboxJob.status, func.count()).where(OutboxJob.id > since, OutboxJob.job == auth.SEND_CODE)
        return dict(db.session.execute(query.group_by(OutboxJob.status)).all())


def last_job_id(database_url: str) -> int:
    with harness.app_for(database_url).app_context():
        return db.session.scalar(select(func.coalesce(func.max(OutboxJob.id), 0)))


def drain(database_url: str, since: int) -> tuple[dict[str, int], float]:
    """Wait (at most DRAIN s) until none of the run's jobs is pending: their statuses, and how long."""
    start = time.monotonic()
    statuses = jobs_of_run(database_url, since)
    while statuses.get("pending") and time.monotonic() - start < DRAIN:
        time.sleep(1)
        statuses = jobs_of_run(database_url, since)
    return statuses, time.monotonic() - start


def forget_queue(namespace: str) -> None:
    """Delete the run's queue keys from Redis."""
    queue = redis.Redis.from_url(BROKER_URL, socket_timeout=5)
    keys = list(queue.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        queue.delete(*keys)
    queue.close()


def one_run(database_url: str, browse: tuple[list[str], list[str]], seconds: int, hang: int | None) -> None:
    """Prepare a run's sign-ins, orders and webhooks, serve the project with its worker, load it for
    `seconds` (the mail server hung for the middle `hang` s, if given), and print what it did."""
    run, rng = f"{time.time_ns() // 1000}", random.Random(7)
    catalog, products = browse
    code_requests, verifies = sign_ins(database_url, run)
    placed, initial, since = ordering(database_url, rng)
    deliveries, note = webhook_deliveries(database_url, run, rng)
    load = {"catalog": catalog, "product": products, "otp_request": code_requests, "otp_verify": verifies,
            "orders": placed, "webhooks": deliveries}  # fmt: skip
    since_job, namespace = last_job_id(database_url), f"nexus-bench-mixed-{run}"

    mail = MailServer()
    settings = {**RAISED_LIMITS, **harness.STRIPE, **MAIL, "MAIL_PORT": str(mail.port), "BROKER_URL": BROKER_URL,
                "BROKER_NAMESPACE": namespace}  # fmt: skip
    worker = start_worker(harness.environ(database_url, settings))
    samples: list[tuple[float, float, int]] = []
    hang_from = (seconds - hang) / 2 if hang else None
    try:
        server = harness.serve(PORT, database_url, env=settings, threads=THREADS)
        try:
            for warm_up in [wrk(name, load[name], WARM_UP) for name in ("catalog", "product", "orders")]:
                harness.result(warm_up, WARM_UP)
            before = worker_rss_mib(server.pid)
            start = time.monotonic()
            running = {name: wrk(name, requests, seconds) for name, requests in load.items()}
            prober = threading.Thread(target=probe, args=(seconds, samples), daemon=True)
            prober.start()
            if hang:
                time.sleep(max(0.0, start + hang_from - time.monotonic()))
                mail.hang()
                time.sleep(max(0.0, start + hang_from + hang - time.monotonic()))
                mail.answer()
            results = {name: harness.result(process, seconds) for name, process in running.items()}
            prober.join(timeout=30)
            after = worker_rss_mib(server.pid)
        finally:
            harness.stop(server)
        received_in_load = mail.inbox.sign_ins
        jobs, waited = drain(database_url, since_job)
        worker_alive = worker.poll() is None
    finally:
        stop_worker(worker)
        mail.close()
        forget_queue(namespace)

    if hang:
        title = (
            f"the same, the mail server hung from {hang_from:g} s to {hang_from + hang:g} s (accepts, never answers)"
        )
    else:
        title = f"{sum(CONNECTIONS.values())} connections for {seconds} s"
    print(f"\n== mixed traffic: {title}; gunicorn 2 gthread workers x {THREADS} threads, emails by the job worker")
    print(f"{'endpoint':14}{'conns':>6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  answers")
    for name, fields in results.items():
        count = sum(fields["statuses"].values())
        print(
            f"{name:14}{CONNECTIONS[name]:>6}{count:>10}{count / float(fields['seconds']):>9.1f}{fields['p50_ms']:>9}"
            f"{fields['p99_ms']:>9}{fields['max_ms']:>9}  {dict(sorted(fields['statuses'].items()))}"
        )
    probe_statuses: dict[int, int] = {}
    for _, _, status in samples:
        probe_statuses[status] = probe_statuses.get(status, 0) + 1
    server_errors = sum(c for fields in results.values() for s, c in fields["statuses"].items() if s >= 500)
    server_errors += sum(c for s, c in probe_statuses.items() if s >= 500)
    socket_errors = sum(int(fields["errors"]) for fields in results.values()) + probe_statuses.get(0, 0)
    print(f"5xx             {server_errors}   socket errors {socket_errors}   (wrk and the probe)")
    print(f"catalog probe   GET {PROBE}, {PROBES_PER_SECOND}/s: {dict(sorted(probe_statuses.items()))}")
    third = hang if hang else seconds / 3
    edges = [hang_from - third, hang_from, hang_from + hang] if hang else [0, third, 2 * third]
    names = (
        ["before the hang", "during the hang", "after the hang"]
        if hang
        else ["first third", "second third", "last third"]
    )
    for name, start_at, end_at in zip(names, edges, [*edges[1:], seconds], strict=True):
        print(f"  {name:16}{max(0, start_at):>4g}-{end_at:<4g}s  {window(samples, max(0, start_at), end_at)}")
    asked = results["otp_request"]["statuses"].get(202, 0)
    pending = jobs.get("pending", 0)
    print(
        f"sign-in emails  {asked} codes asked (202); the SMTP stand-in received {received_in_load} during the load,"
        f" {mail.inbox.sign_ins} in all ({waited:.0f} s after it; jobs {dict(sorted(jobs.items()))})"
        + (f"; the silent listener held {mail.hung} connections" if hang else "")
        + ("" if worker_alive else f"; the WORKER EXITED, see {worker.log}")
        + (f"; {pending} still pending after {DRAIN} s" if pending else "")
    )
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
    print(f"webhooks        {'each applied once' if once else 'BROKEN'}: {counts}", flush=True)


def main() -> None:
    parser = harness.parser(__doc__)
    seconds_help = (
        "how long each run's load lasts; its webhooks are signed before it starts and Stripe's tolerance is 5 min"
    )
    parser.add_argument("--seconds", type=int, default=60, help=seconds_help)
    parser.add_argument(
        "--hang", type=int, default=20, help="seconds the mail server hangs in the middle of the second run"
    )
    args = parser.parse_args()
    if not 0 < args.hang <= args.seconds / 3:
        sys.exit("bench: --hang must be positive and at most a third of --seconds (a window before it to compare)")
    database_url = harness.database_url(args)

    browse = browsing(database_url, random.Random(7))
    one_run(database_url, browse, args.seconds, hang=None)
    one_run(database_url, browse, args.seconds, hang=args.hang)


if __name__ == "__main__":
    main()
