"""`flask --app wsgi demo seed`: realistic demo stores, products and orders (`nexus.cli.demo_orders`),
and demo accounts: an owner, buyers and an admin.

On Postgres the products stream in through COPY and the indexes are built once at the end (a
million products in about half a minute); other databases get multi-row INSERTs. Every store
belongs to the demo owner, so `--reset` takes the previous demo data away (stores, products, their
orders with their payments, transfers and reports, and the jobs about them) without touching
anyone else's; the demo accounts stay.
"""

import io
import itertools
import math
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import delete, func, insert, or_, select, text

from nexus.cli.demo_orders import seed_orders
from nexus.database import utcnow
from nexus.extensions import db
from nexus.jobs.outbox import OutboxJob
from nexus.orders.models import Order
from nexus.payouts.models import Transfer
from nexus.reports.models import UserReportHistory
from nexus.stores.models import Product, Store
from nexus.stores.service import slugify
from nexus.users.models import Role, User
from nexus.users.service import get_or_create_user

DEMO_OWNER = "demo-owner@example.com"
DEMO_BUYER = "demo-buyer@example.com"
DEMO_ADMIN = "demo-admin@example.com"
CHUNK = 50_000
PRODUCT_COLUMNS = (
    "store_id",
    "name",
    "description",
    "sku",
    "price",
    "currency",
    "stock",
    "reserved",
    "is_active",
    "created_at",
    "updated_at",
)

ADJECTIVES = """
    Handmade Organic Vintage Classic Modern Rustic Minimal Compact Deluxe Portable Woven Hand-thrown Reclaimed
    Artisan Everyday Heirloom Nordic Coastal Desert Alpine Botanical Sculpted Hammered Speckled Brushed Matte
    Glazed Frosted Quilted Folding Stackable Wireless Rechargeable Weatherproof Lightweight Oversized
""".split()
MATERIALS = """
    Walnut Oak Bamboo Ceramic Stoneware Porcelain Linen Cotton Wool Leather Copper Brass Steel Cast-iron Glass
    Marble Cork Rattan Jute Silk Cashmere Terracotta Concrete Beeswax Felt Canvas Birch Teak Slate
""".split()
NOUNS = """
    Teapot Mug Bowl Vase Lamp Candle Blanket Throw Cushion Tote Backpack Wallet Notebook Planner Pen
    Desk-organizer Cutting-board Knife Skillet Kettle Coffee-grinder French-press Plate Tumbler Carafe Planter
    Watering-can Clock Mirror Frame Rug Basket Shelf Stool Apron Scarf Beanie Gloves Socks Sweater Journal
    Speaker Headphones Charger Bottle Lunchbox Spice-rack Serving-tray Doormat Wind-chime Birdhouse Puzzle
    Chess-set Yoga-mat Water-bottle Bookend
""".split()
FEATURES = [
    "made in small batches", "finished by hand", "built to last for years", "easy to clean", "designed in Dubai",
    "sustainably sourced", "dishwasher safe", "gift-ready in a recycled box", "each one slightly different",
    "backed by a two-year warranty", "water-resistant", "ethically produced", "lead-free and food safe",
    "packed without plastic",
]  # fmt: skip
USES = [
    "Perfect for slow mornings.", "A thoughtful housewarming gift.", "Made for everyday use.",
    "Looks good on any shelf.", "Pairs well with the rest of the collection.", "Ideal for small spaces.",
    "Takes the outdoors indoors.", "Travels well.",
]  # fmt: skip
STORE_WORDS = "Atelier Workshop Trading Goods Supply Studio Market House Collective Emporium Depot".split()
PLACES = "Marina Jumeirah Deira Karama Satwa Barsha Khor Creek Oasis Dune Falcon Pearl Palm Souk Harbour".split()
CURRENCY_MIX = ("aed",) * 8 + ("usd", "eur")


class Catalog:
    """Realistic, reproducible stores and products."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)  # noqa: S311 (demo data, reproducible on purpose)
        pick = self.random.choice
        self.descriptions = [
            f"{pick(ADJECTIVES)} {pick(NOUNS).replace('-', ' ').lower()} in {pick(MATERIALS).lower()}, "
            f"{pick(FEATURES)}. {pick(USES)}"
            for _ in range(4_000)
        ]

    def store(self, n: int, owner_id: int, now: datetime) -> dict:
        name = f"{self.random.choice(PLACES)} {self.random.choice(MATERIALS)} {self.random.choice(STORE_WORDS)} {n}"
        return {
            "owner_id": owner_id,
            "name": name,
            "slug": slugify(f"demo {name}"),
            "description": f"Independent shop number {n}: {self.random.choice(self.descriptions)}",
            "currency": self.random.choice(CURRENCY_MIX),
            "is_active": n % 40 != 0,  # a few closed stores
            "created_at": now,
            "updated_at": now,
        }

    def products(self, count: int, stores: list[tuple[int, str]], now: datetime) -> Iterator[tuple]:
        """`count` products in column order, oldest first, spread over the past year."""
        rng, pick, descriptions = self.random, self.random.choice, self.descriptions
        start, step = now - timedelta(days=365), timedelta(days=365) / max(count, 1)
        low, high = math.log(300), math.log(250_000)
        for n in range(count):
            store_id, currency = stores[n % len(stores)]
            created = start + step * n
            yield (
                store_id,
                f"{pick(ADJECTIVES)} {pick(MATERIALS)} {pick(NOUNS).replace('-', ' ')}",
                pick(descriptions),
                f"D{store_id}-{n:08d}",
                int(math.exp(rng.uniform(low, high))) // 100 * 100 + 99,
                currency,
                0 if rng.random() < 0.1 else rng.randint(1, 500),  # a tenth sold out
                0,  # no order holds any yet
                rng.random() >= 0.05,  # a few taken off sale
                created,
                created,
            )


def _copy_line(row: tuple) -> str:
    """One COPY text-format line (generated text has no tabs, newlines or backslashes)."""
    *head, active, created, updated = row
    return "\t".join(map(str, head)) + f"\t{'t' if active else 'f'}\t{created.isoformat()}\t{updated.isoformat()}\n"


def _chunks(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    while chunk := list(itertools.islice(rows, CHUNK)):
        yield chunk


def _insert_products(rows: Iterator[tuple], count: int) -> None:
    with click.progressbar(length=count, label="products", show_pos=True, show_eta=True) as bar:
        for chunk in _chunks(rows):
            db.session.execute(insert(Product), [dict(zip(PRODUCT_COLUMNS, row, strict=True)) for row in chunk])
            bar.update(len(chunk))


def _copy_products(rows: Iterator[tuple], count: int) -> None:
    """COPY into Postgres, with the secondary indexes dropped and rebuilt around it: building an
    index once is many times cheaper than updating it a million times (18 s of a 1M load)."""
    connection = db.session.connection()
    indexes = list(Product.__table__.indexes)
    for index in indexes:
        index.drop(connection)
    copy = f"COPY products ({', '.join(PRODUCT_COLUMNS)}) FROM STDIN"
    with click.progressbar(length=count, label="products", show_pos=True, show_eta=True) as bar:
        for chunk in _chunks(rows):
            connection.connection.cursor().copy_expert(copy, io.StringIO("".join(map(_copy_line, chunk))))
            bar.update(len(chunk))
    connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    with click.progressbar(indexes, label="indexes ", item_show_func=lambda i: i.name if i else "") as bar:
        for index in bar:
            index.create(connection)


def _remove_demo_data(owner: User) -> str:
    """Delete the demo stores and all that hangs on them; what was removed, in words."""
    store_ids = select(Store.id).where(Store.owner_id == owner.id)
    order_ids = select(Order.id).where(Order.store_id.in_(store_ids))
    # Jobs queued since about demo rows (emails of orders moved, reports asked for, transfers to make).
    about = {
        "order_id": order_ids,
        "report_id": select(UserReportHistory.id).where(UserReportHistory.store_id.in_(store_ids)),
        "transfer_id": select(Transfer.id).where(Transfer.store_id.in_(store_ids)),
    }
    jobs = or_(*(OutboxJob.payload[key].as_integer().in_(ids) for key, ids in about.items()))
    removed_jobs = db.session.execute(delete(OutboxJob).where(jobs)).rowcount
    # Items, payments, transfers and idempotency keys go with their orders; reports, payout accounts with their stores.
    removed_orders = db.session.execute(delete(Order).where(Order.id.in_(order_ids))).rowcount
    removed_products = db.session.execute(delete(Product).where(Product.store_id.in_(store_ids))).rowcount
    removed_stores = db.session.execute(delete(Store).where(Store.owner_id == owner.id)).rowcount
    return (
        f"removed {removed_stores} demo stores and their {removed_products} products, {removed_orders} orders "
        f"(with their payments, transfers and reports) and {removed_jobs} jobs about them"
    )


def _demo_user(email: str, full_name: str, *, role: Role = Role.CUSTOMER) -> User:
    user = get_or_create_user(email=email, full_name=full_name)
    user.is_verified, user.is_active, user.role = True, True, role.value
    return user


demo = AppGroup("demo", help="Demo data for trying the API and for benchmarks.")
SEEDED_TABLES = "stores, products, orders, order_items, payments, transfers"


@demo.command("seed")
@click.option("--stores", "store_count", default=10, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--products", "product_count", default=1_000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option(
    "--orders",
    "order_count",
    default=200,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Orders of the demo stores, in every status, with their payments, refunds and transfers.",
)
@click.option("--reset", is_flag=True, help="First remove the demo data earlier seeds made (the accounts stay).")
@click.option(
    "--seed", "random_seed", default=2026, show_default=True, help="Random seed: the same seed, the same data."
)
def seed_command(store_count: int, product_count: int, order_count: int, reset: bool, random_seed: int) -> None:
    """Add STORES demo stores holding PRODUCTS products in total and ORDERS orders of them, with
    their payments, refunds and transfers and a ready sales report, plus the demo accounts: an
    owner (of every demo store), buyers and an admin. Without --reset it adds to what earlier
    seeds made; the accounts are made once.

    The demo payments and transfers are rows of this database only, not at Stripe (their
    pi_demo_... and tr_demo_... ids are made up): each is in a final state, so `payments
    reconcile` and `payouts reconcile` never ask Stripe about them, and an admin's refund of one
    is refused (Stripe does not know it). Unpaid demo orders have no payment yet: paying one is a
    real payment.
    """
    if current_app.config["ENVIRONMENT"] == "production":
        raise click.ClickException("demo data is not for production databases (ENVIRONMENT=production)")
    started = time.monotonic()
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:  # building the indexes of a million products takes longer than a request may
        db.session.execute(text("SET LOCAL statement_timeout = 0"))
    owner = _demo_user(DEMO_OWNER, "Demo Owner")
    buyer = _demo_user(DEMO_BUYER, "Demo Buyer")
    _demo_user(DEMO_ADMIN, "Demo Admin", role=Role.ADMIN)
    db.session.flush()
    if reset:
        click.echo(_remove_demo_data(owner))

    catalog, now = Catalog(random_seed), utcnow()
    first = db.session.scalar(select(func.coalesce(func.max(Store.id), 0))) + 1
    store_rows = [catalog.store(n, owner.id, now) for n in range(first, first + store_count)]
    stores = db.session.execute(insert(Store).returning(Store.id, Store.currency), store_rows).all()
    rows = catalog.products(product_count, [tuple(store) for store in stores], now)
    (_copy_products if postgres else _insert_products)(rows, product_count)
    seeded = seed_orders(owner_id=owner.id, main_buyer=buyer, count=order_count, rng=catalog.random, now=now)
    db.session.commit()
    if postgres:  # fresh statistics for the planner
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET statement_timeout = 0"))
            connection.execute(text(f"VACUUM ANALYZE {SEEDED_TABLES}"))
            connection.execute(text("RESET statement_timeout"))  # the pool's limit again

    made = str(seeded)
    if order_count and not seeded.by_status:
        made += " (no demo product is on sale)"
    elif seeded.report_id:
        made += f", and sales report {seeded.report_id} (ready)"
    click.echo(
        f"seeded {store_count} stores and {product_count} products, {made}, in {time.monotonic() - started:.1f} s"
    )
    if not reset:
        totals = db.session.execute(
            select(func.count(Store.id.distinct()), func.count(Order.id))
            .select_from(Store)
            .outerjoin(Order, Order.store_id == Store.id)
            .where(Store.owner_id == owner.id)
        ).one()
        click.echo(f"the demo data now holds {totals[0]} stores and {totals[1]} orders (--reset replaces it)")
    click.echo(
        f"sign in as {DEMO_BUYER} (a buyer), {DEMO_OWNER} (owns the demo stores) or {DEMO_ADMIN} (an admin); "
        "codes go to the log"
    )
