"""A database that is up but busy (a lock waited on too long, a deadlock, a statement past its
timeout, SQLite locked by another writer) answers 503 with a short `Retry-After`, says what
happened and logs a warning naming it; only a database that cannot be reached is "unavailable".
Each case is made by real Postgres (or SQLite) behaviour, with a second connection of the test
holding the rows a request needs."""

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, Engine, text

from nexus import create_app
from nexus.extensions import db
from tests.conftest import app_environ, eventually, free_port, within
from tests.factories import PaymentFactory, ProductFactory, shipping_address
from tests.stripe_helpers import deliver, intent_event

CONFLICTED = "Another request was changing the same data; retry in a moment."
TOO_SLOW = "The database took too long to answer; retry in a moment."


@pytest.fixture
def holder(test_engine: Engine) -> Iterator[Connection]:
    """A second connection, in a transaction, to hold row locks as another request would; it
    never gives up first (its deadlock check waits longer than the app's)."""
    isolation = "READ COMMITTED" if test_engine.dialect.name == "postgresql" else "SERIALIZABLE"
    with test_engine.connect().execution_options(isolation_level=isolation) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET deadlock_timeout = '30s'"))
            connection.commit()
        yield connection  # its next statement begins the transaction
        connection.rollback()


def waiting_on_a_lock(test_engine: Engine) -> bool:
    """Whether a connection of the app is waiting for a lock now."""
    with test_engine.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'nexus' AND wait_event_type = 'Lock'"
                )
            )
        )


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def errors_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.postgres
def test_a_webhook_redelivery_waiting_past_the_lock_timeout_is_a_503_to_retry(client, order, holder, caplog):
    payment = PaymentFactory(order_id=order["id"], user_id=order["buyer_id"], amount=3000, currency="usd")
    event = intent_event(payment, "succeeded")
    assert deliver(client, event).get_json()["outcome"] == "applied"
    # An admin's replay of the event holds its audit row (payments.webhooks.locked_event).
    holder.execute(text("SELECT id FROM payment_event_audits WHERE stripe_event_id = :id FOR UPDATE"), event)

    with caplog.at_level(logging.INFO):
        response = deliver(client, event)

    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json() == {"code": 503, "status": "Service Unavailable", "message": CONFLICTED}
    assert [line for line in warnings_of(caplog) if "lock timeout (SQLSTATE 55P03)" in line]
    assert not errors_of(caplog)
    holder.rollback()
    assert deliver(client, event).get_json()["duplicate"] is True


@pytest.mark.postgres
def test_a_deadlock_while_placing_an_order_is_a_503_to_retry(client, buyer, teapot, holder, test_engine, caplog):
    cup = ProductFactory(store=teapot.store, price=500, stock=4)
    first, second = sorted((teapot.id, cup.id))  # an order takes its products' stock in id order
    holder.execute(text("UPDATE products SET stock = stock WHERE id = :id"), {"id": second})
    lines = [{"product_id": teapot.id, "quantity": 1}, {"product_id": cup.id, "quantity": 1}]
    body = {"items": lines, "shipping_address": shipping_address()}

    with caplog.at_level(logging.INFO), ThreadPoolExecutor(1) as pool:
        placing = pool.submit(client.post, "/api/v1/orders", headers=buyer.headers, json=body)
        eventually(lambda: waiting_on_a_lock(test_engine))  # it holds `first` and waits for `second`
        holder.execute(text("UPDATE products SET stock = stock WHERE id = :id"), {"id": first})  # the cycle
        response = placing.result(timeout=10)

    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["message"] == CONFLICTED
    assert [line for line in warnings_of(caplog) if "deadlock (SQLSTATE 40P01)" in line]
    assert not errors_of(caplog)
    holder.rollback()
    assert client.post("/api/v1/orders", headers=buyer.headers, json=body).status_code == 201


@pytest.fixture
def app_with_statement_timeout(database_url: str) -> Iterator[object]:
    """An app whose web engines cancel any statement after 300 ms (DATABASE_STATEMENT_TIMEOUT_MS)."""
    app = create_app(app_environ(database_url, DATABASE_STATEMENT_TIMEOUT_MS="300"))
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.postgres
def test_a_statement_running_past_database_statement_timeout_ms_is_the_json_503(
    app_with_statement_timeout, owner, teapot, holder, caplog
):
    holder.execute(text("UPDATE products SET stock = stock WHERE id = :id"), {"id": teapot.id})
    client = app_with_statement_timeout.test_client()

    with caplog.at_level(logging.INFO):
        response = within(
            10, lambda: client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"stock": 9})
        )

    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json() == {"code": 503, "status": "Service Unavailable", "message": TOO_SLOW}
    assert [line for line in warnings_of(caplog) if "statement timeout (SQLSTATE 57014)" in line]
    with app_with_statement_timeout.app_context():  # lists' engine too
        for engine in db.engines.values():
            with engine.connect() as connection:
                assert connection.scalar(text("SHOW statement_timeout")) == "300ms"


def test_sqlite_locked_by_another_writer_is_a_503_to_retry(client, owner, teapot, holder, is_postgres, caplog):
    if is_postgres:
        pytest.skip("SQLite's own lock (Postgres waits on the row instead: the tests above)")
    holder.execute(text("UPDATE products SET stock = stock WHERE id = :id"), {"id": teapot.id})  # the write lock

    with caplog.at_level(logging.INFO):
        response = client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"stock": 9})

    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["message"] == CONFLICTED
    assert [line for line in warnings_of(caplog) if "database locked" in line]
    assert not errors_of(caplog)


def test_an_unreachable_database_is_still_an_outage_logged_as_an_error(caplog):
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{free_port()}/nexus"))

    with caplog.at_level(logging.INFO):
        response = app.test_client().post("/api/v1/auth/otp/request", json={"email": "ada@example.com"})

    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert response.get_json()["message"] == "The database is unavailable; try again shortly."
    [outage] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert outage.getMessage() == "database unavailable: OperationalError" and outage.exc_info
    assert not warnings_of(caplog)
