"""Migrations that move data: run on a scratch database of the test run's kind, from the
revision before them, over rows written as the older code wrote them."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import flask_migrate
import pytest
from sqlalchemy import MetaData, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from nexus import create_app
from nexus.extensions import db
from tests.conftest import app_environ

BEFORE_RESERVED = "76351bd5580c"  # the revision before `products.reserved`
BEFORE_SCRUBBING = "749fa1e5dd0d"  # the revision before client secrets are scrubbed from payment events


@pytest.fixture
def scratch_url(database_url: str, tmp_path) -> Iterator[str]:
    """An empty database beside the test run's own (a SQLite file, or a Postgres database)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"{url.database}_{uuid.uuid4().hex[:6]}"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _old_rows(tables: dict, now: datetime) -> None:
    """A product with 3 left on today's `stock` after its orders took theirs off: 2 waiting for
    payment, 1 paid, 4 fulfilled (gone), 5 cancelled (given back); and an untouched product."""
    stamps = {"created_at": now, "updated_at": now}
    users = tables["users"]
    for n, email in enumerate(("owner@example.com", "buyer@example.com"), start=1):
        db.session.execute(
            insert(users).values(
                id=n,
                email=email,
                role="customer",
                is_active=True,
                is_verified=True,
                refresh_token_generation=0,
                **stamps,
            )
        )
    db.session.execute(
        insert(tables["stores"]).values(
            id=1, owner_id=1, name="Shop", slug="shop", description="", currency="usd", is_active=True, **stamps
        )
    )
    for product_id, stock in ((1, 3), (2, 7)):
        db.session.execute(
            insert(tables["products"]).values(
                id=product_id, store_id=1, name="Teapot", description="", price=1000, currency="usd", stock=stock,
                is_active=True, **stamps,
            )
        )  # fmt: skip
    for order_id, (status, quantity) in enumerate(
        [("pending_payment", 2), ("paid", 1), ("fulfilled", 4), ("cancelled", 5)], start=1
    ):
        total = 1000 * quantity
        db.session.execute(
            insert(tables["orders"]).values(
                id=order_id, buyer_id=2, store_id=1, status=status, subtotal=total, total=total, currency="usd",
                expires_at=now, **stamps,
            )
        )  # fmt: skip
        db.session.execute(
            insert(tables["order_items"]).values(
                order_id=order_id, product_id=1, name="Teapot", unit_price=1000, quantity=quantity, line_total=total
            )
        )
    db.session.commit()


def test_the_reserved_migration_puts_what_orders_hold_back_on_stock_and_into_reserved(scratch_url):
    app = create_app(app_environ(scratch_url))
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_RESERVED)
        old = MetaData()
        old.reflect(db.engine, only=["users", "stores", "products", "orders", "order_items"])
        _old_rows(old.tables, datetime.now(UTC))

        flask_migrate.upgrade()

        products = MetaData()
        products.reflect(db.engine, only=["products"])
        table = products.tables["products"]
        rows = db.session.execute(select(table.c.id, table.c.stock, table.c.reserved).order_by(table.c.id)).all()
        db.session.remove()
        db.engine.dispose()

    assert [tuple(row) for row in rows] == [(1, 6, 3), (2, 7, 0)]


def test_client_secrets_stored_before_are_scrubbed_from_payment_events(scratch_url):
    intent = {"id": "pi_1", "object": "payment_intent", "client_secret": "pi_1_secret_abc", "amount": 3000}
    event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    plain = {"id": "evt_2", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    app = create_app(app_environ(scratch_url))
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_SCRUBBING)
        for stored in (event, plain):
            db.session.execute(
                text(
                    "INSERT INTO payment_event_audits (stripe_event_id, type, source, payload, outcome, deliveries,"
                    " replays, processing_ms, received_at, processed_at) VALUES (:id, :type, 'webhook', :payload,"
                    " 'applied', 1, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": stored["id"], "type": stored["type"], "payload": json.dumps(stored)},
            )
        db.session.commit()

        flask_migrate.upgrade()

        rows = db.session.execute(text("SELECT stripe_event_id, payload FROM payment_event_audits")).all()
        db.session.remove()
        db.engine.dispose()

    loaded = {key: value if isinstance(value, dict) else json.loads(value) for key, value in rows}
    without_secret = {key: value for key, value in intent.items() if key != "client_secret"}
    assert loaded == {"evt_1": {**event, "data": {"object": without_secret}}, "evt_2": plain}


BEFORE_DEMO_MARKED = "81faf2d4d102"  # the revision before demo payments and transfers are marked


def test_demo_payments_and_transfers_seeded_before_are_marked_demo_and_no_others(scratch_url):
    app = create_app(app_environ(scratch_url))
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_DEMO_MARKED)
        old = MetaData()
        old.reflect(db.engine, only=["users", "stores", "products", "orders", "order_items", "payments", "transfers"])
        now = datetime.now(UTC)
        _old_rows(old.tables, now)
        stamps = {"created_at": now, "updated_at": now, "currency": "usd", "amount": 1000}
        for payment_id, (order_id, intent) in enumerate([(2, "pi_demo_2_1_ab12"), (3, "pi_3demoX2")], start=1):
            db.session.execute(
                insert(old.tables["payments"]).values(
                    id=payment_id, order_id=order_id, user_id=2, provider="stripe", provider_payment_id=intent,
                    status="succeeded", amount_refunded=0, **stamps,
                )
            )  # fmt: skip
        for order_id, made in ((2, "tr_demo_2_ab12"), (3, "tr_1demoXab")):
            db.session.execute(
                insert(old.tables["transfers"]).values(
                    store_id=1, order_id=order_id, fee=100, status="paid", stripe_transfer_id=made, amount_reversed=0,
                    kept=1000, fee_bps=1000, **stamps,
                )
            )  # fmt: skip
        db.session.commit()

        flask_migrate.upgrade()

        payments = db.session.execute(text("SELECT provider_payment_id, demo FROM payments ORDER BY id")).all()
        transfers = db.session.execute(text("SELECT stripe_transfer_id, demo FROM transfers ORDER BY id")).all()
        db.session.remove()
        db.engine.dispose()

    assert [(intent, bool(demo)) for intent, demo in payments] == [("pi_demo_2_1_ab12", True), ("pi_3demoX2", False)]
    assert [(made, bool(demo)) for made, demo in transfers] == [("tr_demo_2_ab12", True), ("tr_1demoXab", False)]
