"""Sales reports: exactly the store's orders paid in the range, as CSV or JSON, kept in the
owner's report history and downloadable only by them (and admins)."""

import csv
import io
import uuid
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import text

from nexus import create_app
from nexus.reports import service as reports
from nexus.users.models import User
from tests.conftest import app_environ, eventually
from tests.factories import PaymentFactory, ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import deliver, intent_event, refund_event
from tests.test_catalog import plan_nodes

COLUMNS = [
    "order_id", "created_at", "paid_at", "status", "item_count", "subtotal", "total", "refunded", "net", "currency",
    "buyer_email", "ship_name", "ship_line1", "ship_line2", "ship_city", "ship_region", "ship_postal_code",
    "ship_country", "ship_phone",
]  # fmt: skip
# The address every order of these tests is placed with, as orders answer it.
ADDRESS = {
    "name": "Ada Lovelace", "line1": "Marina Walk 12", "line2": None, "city": "Dubai", "region": None,
    "postal_code": None, "country": "AE", "phone": None,
}  # fmt: skip
MARCH = {"date_from": "2026-03-01", "date_to": "2026-03-31"}


@pytest.fixture
def teapots(owner, session):
    """The owner's store's product, at 12.00, enough for every order a report needs."""
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    return ProductFactory(store=store, price=1200, stock=1000)


@pytest.fixture
def place(client, buyer):
    """Place an order for `quantity` of `product`, as the buyer, over HTTP (to `address` if given)."""

    def place(product, quantity: int = 1, address: dict | None = None) -> dict:
        items = [{"product_id": product.id, "quantity": quantity}]
        body = {"items": items, "shipping_address": address or shipping_address()}
        response = client.post("/api/v1/orders", headers=buyer.headers, json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return place


@pytest.fixture
def paid(client, buyer, place, session):
    """An order placed now and paid at `at`, through a signed Stripe webhook sent at that time."""

    def paid(product, at: datetime, quantity: int = 1, address: dict | None = None) -> dict:
        order = place(product, quantity, address)
        payment = PaymentFactory(
            order_id=order["id"], user_id=order["buyer_id"], amount=order["total"], currency=order["currency"]
        )
        with time_machine.travel(at, tick=False):
            response = deliver(client, intent_event(payment, "succeeded"))
        assert response.get_json()["outcome"] == "applied"
        return {**client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers).get_json(), "payment": payment}

    return paid


def create_report(client, who, store_id: int, **body):
    return client.post(f"/api/v1/stores/{store_id}/reports", headers=who.headers, json={"type": "sales", **body})


def built_report(client, who, store_id: int, **body) -> dict:
    """Ask for a report, see it answered 202 `pending`, and wait until its job has built it."""
    asked = create_report(client, who, store_id, **body)
    assert (asked.status_code, asked.get_json()["status"]) == (202, "pending"), asked.get_json()
    url = f"/api/v1/reports/{asked.get_json()['id']}"
    return eventually(
        lambda: (report := client.get(url, headers=who.headers).get_json())["status"] != "pending" and report
    )


def download(client, who, report: dict):
    return client.get(report["download_url"], headers=who.headers)


def march(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_a_csv_report_holds_exactly_the_orders_paid_in_the_range(client, owner, teapots, place, paid):
    first_moment = paid(teapots, datetime(2026, 3, 1, 0, 0, tzinfo=UTC), quantity=2)
    last_moment = paid(teapots, datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    mid_month = paid(teapots, march(15), quantity=3)
    paid(teapots, datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))  # the day before
    paid(teapots, datetime(2026, 4, 1, 0, 0, tzinfo=UTC))  # the day after
    place(teapots)  # never paid
    paid(ProductFactory(price=500), march(15))  # another store's

    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)

    assert (report["store_id"], report["format"], report["status"], report["row_count"]) == (
        teapots.store_id, "csv", "ready", 3,
    )  # fmt: skip
    assert report["parameters"] == MARCH
    rows = list(csv.reader(io.StringIO(download(client, owner, report).get_data(as_text=True))))
    assert rows[0] == COLUMNS
    expected = [(first_moment, 2), (mid_month, 3), (last_moment, 1)]  # by time of payment
    assert [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]] == [
        {
            "order_id": str(order["id"]),
            "created_at": order["created_at"],
            "paid_at": order["paid_at"],
            "status": "paid",
            "item_count": str(quantity),
            "subtotal": str(1200 * quantity),
            "total": str(order["total"]),
            "refunded": "0",
            "net": str(order["total"]),
            "currency": "usd",
            "buyer_email": "buyer@example.com",
            **{f"ship_{field}": value or "" for field, value in ADDRESS.items()},
        }
        for order, quantity in expected
    ]


def test_a_json_report_has_the_same_rows_typed(client, owner, teapots, paid):
    order = paid(teapots, march(2), quantity=2)

    report = built_report(client, owner, teapots.store_id, format="json", **MARCH)
    response = download(client, owner, report)

    assert response.content_type == "application/json"
    assert response.get_json() == [
        {
            "order_id": order["id"],
            "created_at": order["created_at"],
            "paid_at": order["paid_at"],
            "status": "paid",
            "item_count": 2,
            "subtotal": 2400,
            "total": order["total"],
            "refunded": 0,
            "net": order["total"],
            "currency": "usd",
            "buyer_email": "buyer@example.com",
            "shipping_address": ADDRESS,
        }
    ]


FULL_ADDRESS = {
    "name": "Grace Hopper", "line1": "Harbour Road 3", "line2": "Unit 9", "city": "Sharjah", "region": "Sharjah",
    "postal_code": "61001", "country": "AE", "phone": "+971 50 765 4321",
}  # fmt: skip


def test_a_csv_report_ends_each_row_with_the_buyers_email_and_the_address_a_column_a_field(
    client, owner, teapots, paid, session
):
    addressed = paid(teapots, march(6), address=FULL_ADDRESS)
    older = paid(teapots, march(7))
    session.execute(text("UPDATE orders SET shipping_address = NULL WHERE id = :id"), {"id": older["id"]})

    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)
    rows = list(csv.DictReader(io.StringIO(download(client, owner, report).get_data(as_text=True))))

    contact = {name: row[name] for row in rows[:1] for name in COLUMNS[10:]}
    address = {f"ship_{field}": value for field, value in FULL_ADDRESS.items()}
    assert contact == {"buyer_email": "buyer@example.com", **address, "ship_phone": "'+971 50 765 4321"}
    assert rows[0]["order_id"] == str(addressed["id"])
    assert rows[1]["order_id"] == str(older["id"])  # placed before addresses: its ship_ cells are empty
    assert {name: rows[1][name] for name in COLUMNS[11:]} == dict.fromkeys(COLUMNS[11:], "")


def test_a_json_report_nests_the_address_and_has_null_for_orders_placed_before_addresses(
    client, owner, teapots, paid, session
):
    addressed, older = paid(teapots, march(6), address=FULL_ADDRESS), paid(teapots, march(7))
    session.execute(text("UPDATE orders SET shipping_address = NULL WHERE id = :id"), {"id": older["id"]})

    report = built_report(client, owner, teapots.store_id, format="json", **MARCH)
    rows = {row["order_id"]: row for row in download(client, owner, report).get_json()}

    assert rows[addressed["id"]]["shipping_address"] == FULL_ADDRESS
    assert rows[older["id"]]["shipping_address"] is None
    assert {row["buyer_email"] for row in rows.values()} == {"buyer@example.com"}


def test_what_a_buyer_typed_never_starts_a_formula_in_the_csv(client, owner, teapots, paid):
    formula = '=HYPERLINK("http://evil.example","click")'
    paid(teapots, march(8), address=shipping_address(name=formula, line1="@SUM(A1:A9)", phone="+971 50 123 4567"))

    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)
    [row] = csv.DictReader(io.StringIO(download(client, owner, report).get_data(as_text=True)))

    assert (row["ship_name"], row["ship_line1"], row["ship_phone"]) == (
        f"'{formula}", "'@SUM(A1:A9)", "'+971 50 123 4567",
    )  # fmt: skip
    assert row["ship_city"] == "Dubai"


def test_a_partial_refund_shows_as_refunded_and_lowers_net_in_csv(client, owner, teapots, paid):
    order = paid(teapots, march(3), quantity=3)  # 3600
    assert deliver(client, refund_event(order["payment"], 1000)).get_json()["outcome"] == "applied"

    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)
    rows = list(csv.DictReader(io.StringIO(download(client, owner, report).get_data(as_text=True))))

    assert len(rows) == 1
    row = rows[0]
    assert (row["order_id"], row["status"]) == (str(order["id"]), "paid")
    assert (row["subtotal"], row["total"], row["refunded"], row["net"]) == ("3600", "3600", "1000", "2600")


def test_a_partial_refund_shows_as_refunded_and_lowers_net_in_json(client, owner, teapots, paid):
    refunded, untouched = paid(teapots, march(3), quantity=3), paid(teapots, march(4))
    assert deliver(client, refund_event(refunded["payment"], 1000)).get_json()["outcome"] == "applied"

    report = built_report(client, owner, teapots.store_id, format="json", **MARCH)
    rows = {row["order_id"]: row for row in download(client, owner, report).get_json()}

    assert {key: rows[refunded["id"]][key] for key in ("status", "total", "refunded", "net")} == {
        "status": "paid", "total": 3600, "refunded": 1000, "net": 2600,
    }  # fmt: skip
    assert {key: rows[untouched["id"]][key] for key in ("total", "refunded", "net")} == {
        "total": 1200, "refunded": 0, "net": 1200,
    }  # fmt: skip


def test_a_full_refund_leaves_a_net_of_nothing(client, owner, teapots, paid):
    order = paid(teapots, march(3), quantity=2)
    assert deliver(client, refund_event(order["payment"], 2400)).get_json()["outcome"] == "applied"

    report = built_report(client, owner, teapots.store_id, format="json", **MARCH)
    [row] = download(client, owner, report).get_json()

    assert (row["status"], row["total"], row["refunded"], row["net"]) == ("refunded", 2400, 2400, 0)


@pytest.mark.parametrize("format", ["csv", "json"])
def test_a_report_of_nothing_is_a_header_or_an_empty_list(client, owner, teapots, format):
    report = built_report(client, owner, teapots.store_id, format=format, **MARCH)

    assert report["row_count"] == 0
    assert (
        download(client, owner, report).get_data(as_text=True).strip()
        == {"csv": ",".join(COLUMNS), "json": "[]"}[format]
    )


def test_orders_paid_in_the_range_stay_in_as_they_move_on(client, owner, teapots, paid):
    fulfilled, refunded = paid(teapots, march(10)), paid(teapots, march(11))
    moved = client.post(f"/api/v1/orders/{fulfilled['id']}/status", headers=owner.headers, json={"status": "fulfilled"})
    assert moved.status_code == 200
    refund = deliver(client, refund_event(refunded["payment"], 1200))
    assert (refund.status_code, refund.get_json()["outcome"]) == (200, "applied")

    report = built_report(client, owner, teapots.store_id, format="json", **MARCH)

    statuses = {row["order_id"]: row["status"] for row in download(client, owner, report).get_json()}
    assert statuses == {fulfilled["id"]: "fulfilled", refunded["id"]: "refunded"}


def test_the_download_is_an_attachment_streamed_in_chunks(client, owner, teapots, paid):
    paid(teapots, march(5))
    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)

    response = download(client, owner, report)

    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="sales-store-{teapots.store_id}-2026-03-01_2026-03-31.csv"'
    )
    assert response.is_streamed and "Content-Length" not in response.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_to"),
        ({"date_from": "2025-01-01", "date_to": "2026-01-01"}, "date_to"),  # a year and a day
        ({"date_from": "2026-03-01"}, "date_to"),
        ({"date_from": "March", "date_to": "2026-03-01"}, "date_from"),
        ({**MARCH, "format": "xlsx"}, "format"),
        ({**MARCH, "type": "refunds"}, "type"),
    ],
)
def test_a_bad_range_or_format_is_a_422_naming_the_field(client, owner, teapots, body, field):
    response = create_report(client, owner, teapots.store_id, **body)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    ("date_from", "date_to"), [("2025-01-01", "2025-12-31"), ("2028-01-01", "2028-12-31"), ("2028-02-29", "2029-02-28")]
)
def test_a_whole_year_fits_in_one_report(client, owner, teapots, date_from, date_to):
    report = built_report(client, owner, teapots.store_id, date_from=date_from, date_to=date_to)

    assert (report["status"], report["format"]) == ("ready", "csv")  # the default


def test_only_the_owner_or_an_admin_reports_on_a_store(client, owner, admin, stranger, teapots, paid):
    paid(teapots, march(5))

    assert create_report(client, stranger, teapots.store_id, **MARCH).status_code == 403
    assert create_report(client, owner, 999999, **MARCH).status_code == 404
    assert client.post(f"/api/v1/stores/{teapots.store_id}/reports", json=MARCH).status_code == 401
    by_admin = built_report(client, admin, teapots.store_id, **MARCH)
    assert (by_admin["user_id"], by_admin["row_count"]) == (admin.user["id"], 1)


def test_others_reports_are_404_but_admins_read_them_all(client, owner, admin, stranger, teapots):
    report = built_report(client, owner, teapots.store_id, **MARCH)

    for path in (f"/api/v1/reports/{report['id']}", report["download_url"]):
        assert client.get(path, headers=stranger.headers).status_code == 404
        assert client.get(path, headers=owner.headers).status_code == 200
        assert client.get(path, headers=admin.headers).status_code == 200
    assert client.get("/api/v1/reports/999999", headers=owner.headers).status_code == 404
    assert client.get(f"/api/v1/reports/{report['id']}", headers=owner.headers).get_json() == report


def test_my_report_history_is_mine_newest_first_and_paginated(client, owner, admin, teapots):
    months = [{"date_from": f"2026-0{m}-01", "date_to": f"2026-0{m}-28"} for m in (1, 2, 3)]
    made = [built_report(client, owner, teapots.store_id, **month) for month in months]
    built_report(client, admin, teapots.store_id, **MARCH)

    first = client.get("/api/v1/profile/me/reports", headers=owner.headers, query_string={"limit": 2}).get_json()
    rest = client.get(
        "/api/v1/profile/me/reports", headers=owner.headers, query_string={"limit": 2, "cursor": first["next_cursor"]}
    ).get_json()

    assert first["items"] + rest["items"] == made[::-1]
    assert rest["next_cursor"] is None
    assert client.get("/api/v1/profile/me/reports").status_code == 401


ORDERS = text("""
    INSERT INTO orders
        (buyer_id, store_id, status, subtotal, total, currency, expires_at, paid_at, created_at, updated_at)
    SELECT :buyer, CASE WHEN n % 100 = 0 THEN :store ELSE :other END, 'paid', 1200, 1200, 'usd',
           at, at, at, at
    FROM (SELECT n, TIMESTAMPTZ '2026-01-01' + (n % 365) * INTERVAL '1 day' AS at
          FROM generate_series(1, 20000) AS n) AS generated
""")
LINES_AND_PAYMENTS = text("""
    INSERT INTO order_items (order_id, product_id, name, unit_price, quantity, line_total)
    SELECT id, :product, 'Teapot', 1200, 1, 1200 FROM orders;
    INSERT INTO payments (order_id, user_id, provider, provider_payment_id, amount, currency, status,
                          amount_refunded, created_at, updated_at)
    SELECT id, buyer_id, 'stripe', 'pi_' || id, 1200, 'usd', 'succeeded', id % 2 * 100, now(), now() FROM orders;
    ANALYZE orders; ANALYZE order_items; ANALYZE payments
""")


@pytest.mark.postgres
def test_the_sales_report_reads_orders_and_their_refunds_through_indexes(client, owner, teapots, session, test_engine):
    """On 20,000 orders of which the store has a hundredth, the one report query finds the
    store's orders and what was refunded of them through indexes, reading payments once a row
    (how it joins the lines is the planner's choice by their number, as before)."""
    buyer = session.get(User, owner.user["id"])
    session.execute(ORDERS, {"buyer": buyer.id, "store": teapots.store_id, "other": StoreFactory().id})
    session.execute(LINES_AND_PAYMENTS, {"product": teapots.id})

    report = built_report(client, owner, teapots.store_id, date_from="2026-01-01", date_to="2026-12-31")

    assert report["row_count"] == 200
    compiled = reports.SALES.compile(dialect=test_engine.dialect)  # the query the report's job ran
    parameters = {**compiled.params, **reports.sales_params(teapots.store_id, date(2026, 1, 1), date(2026, 12, 31))}
    sql = str(compiled)
    connection = test_engine.raw_connection()
    try:
        explain = connection.cursor()
        explain.execute(f"EXPLAIN (FORMAT JSON) {sql}", parameters)
        nodes = plan_nodes(explain.fetchone()[0])
    finally:
        connection.close()

    def scans_of(table: str) -> list[str]:
        return [node["Node Type"] for node in nodes if node.get("Relation Name") == table]

    [orders_scan] = scans_of("orders")
    assert orders_scan != "Seq Scan", nodes
    assert scans_of("payments") == ["Index Scan"], nodes
    assert scans_of("users") == ["Index Scan"], nodes  # the buyer's email, by primary key


def test_its_user_gets_an_email_when_the_report_is_ready(client, owner, teapots, paid, outbox):
    paid(teapots, march(5))

    report = built_report(client, owner, teapots.store_id, format="csv", **MARCH)

    [ready] = [message for message in outbox if "report" in message.subject]
    assert ready.subject == f"Your Nexus sales report #{report['id']} is ready"
    assert ready.recipients == [owner.user["email"]]
    assert report["download_url"] in ready.body and report["download_url"] in ready.html
    assert (report["status"], report["error"]) == ("ready", None) and report["finished_at"] is not None


def test_a_report_no_worker_has_built_yet_is_pending_and_its_download_a_409(database_url, owner, teapots):
    queued = {"BROKER_URL": "redis://127.0.0.1:6379/15", "BROKER_NAMESPACE": f"nexus-test-{uuid.uuid4().hex[:8]}"}
    client = create_app(app_environ(database_url, **queued)).test_client()  # its jobs wait on Redis, unrun

    asked = create_report(client, owner, teapots.store_id, **MARCH)

    assert (asked.status_code, asked.get_json()["status"], asked.get_json()["finished_at"]) == (202, "pending", None)
    early = download(client, owner, asked.get_json())
    assert early.status_code == 409
    assert "still being built" in early.get_json()["message"]
