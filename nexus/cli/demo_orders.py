"""The orders of `demo seed --orders N`: orders of the demo stores by demo buyers, in every status,
each with what its status implies, and a ready sales report for the demo owner.

- Unpaid orders (`pending_payment`, placed minutes ago, at most two per buyer) and `paid` ones hold
  their units (`reserved`); fulfilled, shipped and delivered ones took theirs off the shelf before
  the seed, so a product's `stock` is what is left; cancelled, expired and refunded ones hold nothing.
- Every order that was paid has a succeeded payment, some refunded in part (`partially_refunded`),
  the `refunded` orders' in full, a few after an earlier attempt was cancelled. Every delivered order
  has the transfer it owes its store, made: lowered by a refund before delivery, or partly reversed
  by one after.

They are rows written in bulk, not orders placed through the API, and nothing of them exists at
Stripe: their `pi_demo_...` and `tr_demo_...` ids are made up, and every demo payment and transfer
is marked `demo`. Nothing marked so is ever asked of Stripe: payouts, their jobs and both reconcile
commands leave them alone (even once a demo store is onboarded), an admin's refund of one is
refused, and a paid demo order delivered later owes a demo transfer. Unpaid demo orders have no
payment yet: paying one starts a real PaymentIntent.
"""

import random
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
from flask import current_app
from sqlalchemy import bindparam, func, insert, select, update

from nexus.extensions import db
from nexus.orders.models import Order, OrderItem
from nexus.orders.models import OrderStatus as S
from nexus.payments.models import Payment
from nexus.payments.models import PaymentStatus as P
from nexus.payouts.models import Transfer
from nexus.payouts.models import TransferStatus as T
from nexus.payouts.service import fee_of, share_of
from nexus.reports.models import UserReportHistory
from nexus.reports.service import write_report
from nexus.stores.models import Product, Store
from nexus.users.models import User

orders, order_items, payments, transfers = (model.__table__ for model in (Order, OrderItem, Payment, Transfer))
products, stores, users = Product.__table__, Store.__table__, User.__table__

CHUNK = 2_000
OPEN_PER_BUYER = 2  # a demo buyer can still place orders of their own (ORDER_MAX_OPEN_PER_BUYER is 5)
# (order status, its payment's status, weight). The first orders of a seed tell each story once.
STORIES = (
    (S.DELIVERED, P.SUCCEEDED, 30),
    (S.SHIPPED, P.SUCCEEDED, 8),
    (S.FULFILLED, P.SUCCEEDED, 6),
    (S.PAID, P.SUCCEEDED, 10),
    (S.PENDING_PAYMENT, None, 4),
    (S.CANCELLED, None, 6),
    (S.CANCELLED, P.CANCELED, 4),
    (S.EXPIRED, None, 8),
    (S.EXPIRED, P.CANCELED, 4),
    (S.REFUNDED, P.REFUNDED, 6),
    (S.DELIVERED, P.PARTIALLY_REFUNDED, 6),
    (S.SHIPPED, P.PARTIALLY_REFUNDED, 2),
    (S.PAID, P.PARTIALLY_REFUNDED, 2),
)
HOLDING = (S.PENDING_PAYMENT, S.PAID)  # their units are reserved
# How long ago orders of each status were placed, in days.
AGES = {
    S.PAID: (0.1, 3),
    S.FULFILLED: (1, 7),
    S.SHIPPED: (2, 14),
    S.DELIVERED: (5, 180),
    S.REFUNDED: (2, 180),
    S.CANCELLED: (0.1, 180),
    S.EXPIRED: (0.1, 180),
}
FIRST_NAMES = """
    Aisha Omar Fatima Yusuf Layla Karim Noor Hassan Mariam Ali Sara Zayd Hana Rami Lina Tariq Maya Adam Dana
    Samir Emma Lucas Sofia Daniel Priya Arjun Mei Olga Ivan Chloe
""".split()
LAST_NAMES = """
    Al-Mansoori Haddad Khan Rahman Nasser Farouk Saleh Aziz Kapoor Smith Müller Rossi Tanaka Novak Silva Okafor
""".split()
# (city, region, country, postal code, phone prefix, streets)
CITIES = (
    ("Dubai", "Dubai", "AE", None, "+971 50", ("Marina Walk", "Al Wasl Road", "Jumeirah Beach Road", "Al Khail Road")),
    ("Dubai", "Dubai", "AE", None, "+971 55", ("Sheikh Zayed Road", "Al Safa Street", "Umm Suqeim Street")),
    ("Abu Dhabi", "Abu Dhabi", "AE", None, "+971 52", ("Corniche Road", "Hamdan Street", "Al Falah Street")),
    ("Sharjah", "Sharjah", "AE", None, "+971 56", ("Al Majaz Street", "King Faisal Street")),
    ("Riyadh", "Riyadh Province", "SA", "12211", "+966 55", ("King Fahd Road", "Olaya Street")),
    ("Doha", None, "QA", None, "+974 33", ("Al Corniche Street", "Salwa Road")),
    ("Muscat", None, "OM", "112", "+968 92", ("Sultan Qaboos Street", "Al Khuwair Street")),
    ("London", None, "GB", "NW1 6XE", "+44 7700", ("Baker Street", "Marylebone Road")),
)
NOTES = ("Please leave it with the concierge.", "It is a gift: no invoice in the box, please.", "Call before delivery.")


def buyer_name(n: int) -> str:
    """The full name of demo buyer number `n` (the same for the same number, seed after seed)."""
    return f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {LAST_NAMES[n * 7 % len(LAST_NAMES)]}"


def _address(n: int, name: str) -> dict[str, Any]:
    """Where demo buyer number `n` has their parcels sent, with every key an order's address has."""
    rng = random.Random(n)  # noqa: S311 (demo data, reproducible on purpose)
    city, region, country, postal_code, prefix, streets = rng.choice(CITIES)
    return {
        "name": name,
        "line1": f"{rng.choice(streets)} {rng.randint(1, 240)}",
        "line2": f"Apt {rng.randint(101, 2409)}" if rng.random() < 0.6 else None,
        "city": city,
        "region": region,
        "postal_code": postal_code,
        "country": country,
        "phone": f"{prefix} {rng.randint(100, 999)} {rng.randint(1000, 9999)}" if rng.random() < 0.8 else None,
    }


@dataclass
class Buyer:
    id: int
    address: dict[str, Any]
    unpaid: int = 0


@dataclass
class Draft:
    """An order before its id: its row, its lines, its payments and its transfer."""

    order: dict[str, Any]
    lines: list[dict[str, Any]]
    payments: list[dict[str, Any]] = field(default_factory=list)
    transfer: dict[str, Any] | None = None


@dataclass
class Seeded:
    by_status: Counter = field(default_factory=Counter)
    payments: int = 0
    refunds: int = 0
    transfers: int = 0
    report_id: int | None = None

    def __str__(self) -> str:
        if not self.by_status:
            return "no orders"
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.by_status.items()))
        return (
            f"{self.by_status.total()} orders ({statuses}) with {self.payments} payments "
            f"({self.refunds} refunded in full or in part) and {self.transfers} transfers"
        )


def _token(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=14))


class DemoOrders:
    """Drafts realistic orders of the products on sale in `pool` (store id -> products), then
    writes them in bulk."""

    def __init__(self, rng: random.Random, now: datetime, pool: dict[int, list[dict]], buyers: list[Buyer]) -> None:
        self.rng, self.now, self.pool, self.buyers = rng, now, pool, buyers
        self.store_ids = [store_id for store_id, on_sale in pool.items() for _ in on_sale]  # busier: more products
        self.timeout = timedelta(minutes=current_app.config["ORDER_PAYMENT_TIMEOUT_MINUTES"])
        self.fee_bps = current_app.config["PLATFORM_FEE_BPS"]
        self.held: Counter = Counter()  # product id -> units the new holding orders reserve

    def story(self, n: int) -> tuple[S, P | None]:
        status, payment, _ = STORIES[n] if n < len(STORIES) else self.rng.choices(STORIES, [s[2] for s in STORIES])[0]
        return status, payment

    def draft(self, n: int) -> Draft:
        """Order number `n` of the seed; the first ones, a story each, are the main demo buyer's."""
        status, payment = self.story(n)
        buyer = self.buyers[0] if n < len(STORIES) else self.rng.choice(self.buyers)
        if status is S.PENDING_PAYMENT and buyer.unpaid >= OPEN_PER_BUYER:
            status = S.EXPIRED  # what becomes of most orders left unpaid
        store_id = self.rng.choice(self.store_ids)
        lines = self._lines(store_id, holding=status in HOLDING)
        if not lines:  # its store has nothing left to hold: an order from before, delivered
            status, payment = S.DELIVERED, P.SUCCEEDED
            lines = self._lines(store_id, holding=False)
        if status is S.PENDING_PAYMENT:
            buyer.unpaid += 1
        total = sum(line["line_total"] for line in lines)
        order = {
            "buyer_id": buyer.id,
            "store_id": store_id,
            "status": status.value,
            "subtotal": total,
            "total": total,
            "currency": self.pool[store_id][0]["currency"],
            "note": self.rng.choice(NOTES) if self.rng.random() < 0.1 else None,
            "shipping_address": buyer.address,
            "paid_at": None,
        }
        draft = Draft(order, lines)
        self._timeline(draft, status, payment)
        return draft

    def _lines(self, store_id: int, *, holding: bool) -> list[dict[str, Any]]:
        """One to four products of the store; for an order that holds its units, only what is
        still available (and then held)."""
        on_sale = self.pool[store_id]
        count = min(len(on_sale), self.rng.choices((1, 2, 3, 4), (55, 30, 10, 5))[0])
        lines = []
        for product in self.rng.sample(on_sale, count):
            quantity = self.rng.choices((1, 2, 3), (70, 20, 10))[0]
            if holding:
                quantity = min(quantity, product["available"] - self.held[product["id"]])
                if quantity <= 0:
                    continue
                self.held[product["id"]] += quantity
            lines.append(
                {
                    "product_id": product["id"],
                    "name": product["name"],
                    "unit_price": product["price"],
                    "quantity": quantity,
                    "line_total": product["price"] * quantity,
                }
            )
        return sorted(lines, key=lambda line: line["product_id"])

    def _ago(self, status: S) -> datetime:
        low, high = AGES[status]
        return self.now - timedelta(days=self.rng.uniform(low, high))

    def _later(self, start: datetime, low: float, high: float) -> datetime:
        """A moment between `start` and now, `low` to `high` of the way."""
        return start + (self.now - start) * self.rng.uniform(low, high)

    def _minutes(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(low, high))

    def _timeline(self, draft: Draft, status: S, payment: P | None) -> None:
        """When the order was placed, paid, moved on and refunded, and its payments and transfer."""
        order, minutes = draft.order, self._minutes
        if status is S.PENDING_PAYMENT:
            created = self.now - self.timeout * self.rng.uniform(0.05, 0.8)
            order.update(created_at=created, updated_at=created, expires_at=created + self.timeout)
            return
        created = self._ago(status) - (self.timeout if status is S.EXPIRED else timedelta(0))
        order.update(created_at=created, expires_at=created + self.timeout)
        if status in (S.CANCELLED, S.EXPIRED):
            ended = order["expires_at"] + minutes(0, 5) if status is S.EXPIRED else created + minutes(2, 25)
            order["updated_at"] = ended
            if payment is P.CANCELED:  # the buyer started paying, then gave up: the intent went with the order
                self._payment(draft, P.CANCELED, created + minutes(1, 2), ended)
            return
        started = created + minutes(1, 10)
        if self.rng.random() < 0.1:  # a first card declined, its intent cancelled when the buyer tried again
            self._payment(draft, P.CANCELED, started, started + minutes(1, 3))
            started += minutes(3, 6)
        paid = started + minutes(0.5, 3)
        order["paid_at"] = paid
        moved = paid if status is S.PAID else self._later(paid, 0.2, 0.9)
        order["updated_at"] = moved
        refunded_at = moved if status is S.REFUNDED else self._later(paid, 0.1, 0.9)
        refunded = {P.REFUNDED: order["total"], P.PARTIALLY_REFUNDED: self._part(draft)}.get(payment, 0)
        self._payment(draft, payment, started, refunded_at if refunded else paid, refunded=refunded)
        if status is S.DELIVERED:
            self._transfer(draft, delivered=moved, refunded=refunded, refunded_at=refunded_at)

    def _part(self, draft: Draft) -> int:
        """A partial refund: one unit of the first line, or half of a one-unit order."""
        first = draft.lines[0]
        units = sum(line["quantity"] for line in draft.lines)
        return first["unit_price"] if units > 1 else draft.order["total"] // 2

    def _payment(self, draft: Draft, status: P, created: datetime, updated: datetime, *, refunded: int = 0) -> None:
        draft.payments.append(
            {
                "user_id": draft.order["buyer_id"],
                "provider": "stripe",
                "token": _token(self.rng),
                "amount": draft.order["total"],
                "currency": draft.order["currency"],
                "status": status.value,
                "amount_refunded": refunded,
                "demo": True,
                "created_at": created,
                "updated_at": updated,
            }
        )

    def _transfer(self, draft: Draft, *, delivered: datetime, refunded: int, refunded_at: datetime) -> None:
        """The store's share, made when the order was delivered: a refund before that lowered it, one
        after reversed the difference."""
        total = draft.order["total"]
        kept = total - refunded
        before_delivery = refunded_at < delivered
        amount = share_of(kept if before_delivery else total, self.fee_bps)
        reversed_amount = 0 if before_delivery else amount - share_of(kept, self.fee_bps)
        draft.transfer = {
            "store_id": draft.order["store_id"],
            "amount": amount,
            "fee": fee_of(kept, self.fee_bps),
            "currency": draft.order["currency"],
            "status": (T.PARTIALLY_REVERSED if reversed_amount else T.PAID).value,
            "token": _token(self.rng),
            "amount_reversed": reversed_amount,
            "kept": kept,
            "fee_bps": self.fee_bps,
            "demo": True,
            "created_at": delivered,
            "updated_at": refunded_at if reversed_amount else delivered,
        }

    def write(self, drafts: list[Draft], seeded: Seeded) -> None:
        """Insert a chunk of drafts: the orders (their ids back in order), then what hangs on them."""
        statement = insert(orders).returning(orders.c.id, sort_by_parameter_order=True)
        ids = db.session.execute(statement, [draft.order for draft in drafts]).scalars().all()
        items, paid, made = [], [], []
        for order_id, draft in zip(ids, drafts, strict=True):
            items += [{**line, "order_id": order_id} for line in draft.lines]
            for n, payment in enumerate(draft.payments, start=1):
                token = payment.pop("token")
                paid.append({**payment, "order_id": order_id, "provider_payment_id": f"pi_demo_{order_id}_{n}_{token}"})
            if draft.transfer is not None:
                token = draft.transfer.pop("token")
                made.append(
                    {**draft.transfer, "order_id": order_id, "stripe_transfer_id": f"tr_demo_{order_id}_{token}"}
                )
            seeded.by_status[draft.order["status"]] += 1
        for table, rows in ((order_items, items), (payments, paid), (transfers, made)):
            if rows:
                db.session.execute(insert(table), rows)
        seeded.payments += len(paid)
        seeded.refunds += sum(1 for payment in paid if payment["amount_refunded"])
        seeded.transfers += len(made)

    def hold(self) -> None:
        """Reserve what the new unpaid and paid orders hold."""
        if not self.held:
            return
        statement = (
            update(products)
            .where(products.c.id == bindparam("product_id"))
            .values(reserved=products.c.reserved + bindparam("units"))
        )
        rows = [{"product_id": product_id, "units": units} for product_id, units in sorted(self.held.items())]
        db.session.execute(statement, rows)


def demo_buyers(main: User, count: int) -> list[Buyer]:
    """`main` and `count - 1` more demo buyers (`demo-buyer-N@example.com`, verified, created
    once), each with their orders waiting for payment so far."""
    emails = {f"demo-buyer-{n}@example.com": n for n in range(2, count + 1)}
    known = dict(db.session.execute(select(users.c.email, users.c.id).where(users.c.email.in_(list(emails)))).all())
    new = [{"email": email, "full_name": buyer_name(n), "is_verified": True} for email, n in emails.items()]
    new = [row for row in new if row["email"] not in known]
    if new:
        known.update(db.session.execute(insert(users).returning(users.c.email, users.c.id), new).all())
    buyers = [Buyer(main.id, _address(1, main.full_name or "Demo Buyer"))]
    buyers += [Buyer(known[email], _address(n, buyer_name(n))) for email, n in emails.items()]
    unpaid = (
        select(orders.c.buyer_id, func.count())
        .where(orders.c.status == S.PENDING_PAYMENT.value, orders.c.buyer_id.in_([buyer.id for buyer in buyers]))
        .group_by(orders.c.buyer_id)
    )
    waiting = dict(db.session.execute(unpaid).all())
    for buyer in buyers:
        buyer.unpaid = waiting.get(buyer.id, 0)
    return buyers


def _pool(owner_id: int, size: int, seed: int) -> dict[int, list[dict]]:
    """Up to `size` products on sale in the owner's stores, a reproducible spread over all of them:
    a multiplicative hash of their place among the owner's products orders them (no table scan into
    Python, no random(); Postgres never reuses ids, so a place, not an id, gives a seed after
    `--reset` the same orders)."""
    owned = products.join(stores, stores.c.id == products.c.store_id)
    first = select(func.min(products.c.id)).select_from(owned).where(stores.c.owner_id == owner_id)
    first = first.correlate(None).scalar_subquery()
    spread = ((products.c.id - first) * 2654435761 + seed) % 4294967296
    statement = (
        select(
            products.c.id,
            products.c.store_id,
            products.c.name,
            products.c.price,
            products.c.currency,
            (products.c.stock - products.c.reserved).label("available"),
        )
        .select_from(owned)
        .where(stores.c.owner_id == owner_id, stores.c.is_active, products.c.is_active)
        .order_by(spread, products.c.id)
        .limit(size)
    )
    pool: dict[int, list[dict]] = {}
    for row in db.session.execute(statement).mappings():
        pool.setdefault(row["store_id"], []).append(dict(row))
    return pool


def seed_orders(*, owner_id: int, main_buyer: User, count: int, rng: random.Random, now: datetime) -> Seeded:
    """`count` demo orders of the owner's stores with their payments and transfers, and the owner's
    sales report of the busiest store, in the caller's transaction."""
    seeded = Seeded()
    pool = _pool(owner_id, min(max(20, count // 4), 5_000), rng.randrange(2**31)) if count else {}
    if not pool:
        return seeded
    buyers = demo_buyers(main_buyer, min(max(5, count // 40), 500))
    demo = DemoOrders(rng, now, pool, buyers)
    with click.progressbar(length=count, label="orders  ", show_pos=True, show_eta=True) as bar:
        for start in range(0, count, CHUNK):
            drafts = [demo.draft(n) for n in range(start, min(start + CHUNK, count))]
            demo.write(drafts, seeded)
            bar.update(len(drafts))
    demo.hold()
    seeded.report_id = _ready_report(owner_id, now)
    return seeded


def _ready_report(owner_id: int, now: datetime) -> int | None:
    """The owner's sales report of the past year of the store with the most paid orders, built now."""
    paid = (
        select(orders.c.store_id)
        .join(stores, stores.c.id == orders.c.store_id)
        .where(stores.c.owner_id == owner_id, orders.c.paid_at.is_not(None))
        .group_by(orders.c.store_id)
        .order_by(func.count().desc(), orders.c.store_id)
        .limit(1)
    )
    store_id = db.session.scalar(paid)
    if store_id is None:
        return None
    today = now.date()
    report = UserReportHistory(
        user_id=owner_id,
        store_id=store_id,
        type="sales",
        format="csv",
        parameters={"date_from": (today - timedelta(days=364)).isoformat(), "date_to": today.isoformat()},
        status="pending",
        created_at=now,
    )
    db.session.add(report)
    db.session.flush()
    write_report(report)
    return report.id
