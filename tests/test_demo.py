"""`flask --app wsgi demo seed`: realistic demo data, repeatable with --reset. The orders are
looked at through the API, as the frontend sees them: the demo owner's, admin's and buyer's."""

from collections import Counter

import pytest
from sqlalchemy import func, select

from nexus import create_app
from nexus.jobs.outbox import OutboxJob
from nexus.orders.models import Order, OrderItem, OrderStatus
from nexus.payments.models import Payment
from nexus.payouts.models import PayoutAccount, Transfer
from nexus.reports.models import UserReportHistory
from nexus.stores.models import Product, Store
from nexus.users.models import User
from tests.conftest import PRODUCTION
from tests.factories import ProductFactory

ORDERS = ("--stores", "3", "--products", "60", "--orders", "40")
EVERY_STATUS = {status.value for status in OrderStatus}


def seed(app, *args: str):
    result = app.test_cli_runner().invoke(args=["demo", "seed", *args])
    assert result.exit_code == 0, result.output
    return result


def counts(session) -> tuple[int, int]:
    return session.scalar(select(func.count()).select_from(Store)), session.scalar(
        select(func.count()).select_from(Product)
    )


def every(client, path: str, headers: dict, **query) -> list[dict]:
    """Every item of a paginated list, page after page."""
    items, cursor = [], None
    while True:
        paging = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, headers=headers, query_string={**query, **paging})
        assert page.status_code == 200, page.get_json()
        items += page.get_json()["items"]
        if not (cursor := page.get_json()["next_cursor"]):
            return items


def owners_view(client, owner) -> tuple[list[dict], list[dict]]:
    """The demo owner's stores' orders and products (inactive ones included), through the API."""
    stores = every(client, "/api/v1/profile/me/stores", owner.headers)
    orders = [
        order for store in stores for order in every(client, f"/api/v1/stores/{store['id']}/orders", owner.headers)
    ]
    products = [
        product
        for store in stores
        for product in every(client, f"/api/v1/stores/{store['id']}/products", owner.headers, include_inactive="true")
    ]
    return orders, products


def test_seed_fills_the_catalog_and_the_demo_accounts_can_sign_in(app, client, session, sign_in):
    result = seed(app, "--stores", "3", "--products", "60")

    assert "seeded 3 stores and 60 products" in result.output
    assert counts(session) == (3, 60)
    page = client.get("/api/v1/products", query_string={"limit": 100}).get_json()["items"]
    assert 40 <= len(page) < 60  # a few products and stores are inactive, as in life
    assert all(item["price"] > 0 and item["name"] and item["description"] for item in page)
    assert len({item["store_id"] for item in page}) >= 2
    assert sign_in("demo-buyer@example.com").user["is_verified"] is True
    assert sign_in("demo-owner@example.com").user["id"] == session.scalar(select(Store.owner_id).limit(1))


def test_seed_adds_and_reset_replaces_only_the_demo_catalog(app, session):
    someone_elses = ProductFactory()
    seed(app, "--stores", "2", "--products", "10")
    seed(app, "--stores", "2", "--products", "10")
    assert counts(session) == (5, 21)

    result = seed(app, "--stores", "2", "--products", "10", "--reset")

    assert "removed 4 demo stores" in result.output
    assert counts(session) == (3, 11)
    assert session.get(Product, someone_elses.id) is not None


def test_a_seed_without_reset_adds_orders_and_says_what_the_demo_data_now_holds(app):
    seed(app, *ORDERS)

    result = seed(app, *ORDERS)

    assert "40 orders (" in result.output
    assert "the demo data now holds 6 stores and 80 orders (--reset replaces it)" in result.output


def test_the_demo_owner_sees_orders_of_every_status_with_addresses_and_payments(app, client, sign_in):
    seed(app, *ORDERS)

    orders, _ = owners_view(client, sign_in("demo-owner@example.com"))

    assert len(orders) == 40
    assert {order["status"] for order in orders} == EVERY_STATUS
    assert {"succeeded", "partially_refunded", "refunded", "canceled", None} <= {o["payment_status"] for o in orders}
    assert all(order["shipping_address"]["country"] and order["buyer_email"] for order in orders)
    assert all(order["total"] == sum(item["line_total"] for item in order["items"]) for order in orders)


def test_unpaid_and_paid_demo_orders_hold_exactly_the_units_reserved(app, client, sign_in):
    seed(app, *ORDERS)
    seed(app, *ORDERS)  # the second adds to what the first reserved

    orders, products = owners_view(client, sign_in("demo-owner@example.com"))

    held = Counter()
    for order in orders:
        if order["status"] in ("pending_payment", "paid"):
            held.update({item["product_id"]: item["quantity"] for item in order["items"]})
    assert held.total() > 0
    assert {p["id"]: p["reserved"] for p in products if p["reserved"]} == dict(held)
    assert all(p["available"] == p["stock"] - p["reserved"] >= 0 for p in products)


def test_the_demo_admin_signs_in_and_the_stats_count_the_orders(app, client, sign_in):
    seed(app, *ORDERS)

    admin = sign_in("demo-admin@example.com")
    stats = client.get("/api/v1/admin/stats", headers=admin.headers).get_json()

    assert admin.user["role"] == "admin"
    assert set(stats["orders_by_status"]) == EVERY_STATUS
    assert sum(stats["orders_by_status"].values()) == 40
    assert stats["revenue"] and all(amount > 0 for amount in stats["revenue"].values())


def test_the_demo_owner_has_a_ready_sales_report_to_download(app, client, sign_in):
    seed(app, *ORDERS)
    owner = sign_in("demo-owner@example.com")

    [report] = every(client, "/api/v1/profile/me/reports", owner.headers)
    download = client.get(report["download_url"], headers=owner.headers)

    assert report["status"] == "ready" and report["row_count"] > 0
    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    assert len(download.get_data(as_text=True).splitlines()) == report["row_count"] + 1  # and the header


def test_the_demo_buyer_can_still_place_an_order(app, client, sign_in):
    seed(app, *ORDERS)
    buyer = sign_in("demo-buyer@example.com")
    mine = every(client, "/api/v1/orders", buyer.headers)
    on_sale = every(client, "/api/v1/products", {}, in_stock="true")

    placed = client.post(
        "/api/v1/orders",
        headers=buyer.headers,
        json={
            "items": [{"product_id": on_sale[0]["id"], "quantity": 1}],
            "shipping_address": mine[0]["shipping_address"],
        },
    )

    assert len(mine) >= 13  # a story of each kind is the main demo buyer's
    assert placed.status_code == 201, placed.get_json()


def test_the_reconcilers_leave_demo_payments_and_transfers_alone(app):
    seed(app, *ORDERS)
    runner = app.test_cli_runner()

    payments = runner.invoke(args=["payments", "reconcile", "--older-than-minutes", "0"])
    payouts = runner.invoke(args=["payouts", "reconcile"])

    assert payments.exit_code == 0 and "checked 0 payments" in payments.output, payments.output
    assert payouts.exit_code == 0 and "checked 0 transfers" in payouts.output, payouts.output


def test_demo_money_never_reaches_stripe_even_once_a_demo_store_is_onboarded(
    app, client, sign_in, session, stripe_connect
):
    seed(app, *ORDERS)
    for store_id in session.scalars(select(Store.id)).all():  # as if each had finished Stripe's onboarding
        session.add(PayoutAccount(store_id=store_id, stripe_account_id=f"acct_demo_{store_id}", payouts_enabled=True))
    session.commit()
    owner, admin = sign_in("demo-owner@example.com"), sign_in("demo-admin@example.com")
    orders, _ = owners_view(client, owner)
    shipped = next(order for order in orders if order["status"] == "shipped")
    asked_before = sum(stripe_connect.calls.values())

    delivered = client.post(
        f"/api/v1/orders/{shipped['id']}/status", headers=owner.headers, json={"status": "delivered"}
    )
    payouts = app.test_cli_runner().invoke(args=["payouts", "reconcile"])
    paid = session.scalar(select(Payment.id).where(Payment.order_id == shipped["id"]))
    refunded = client.post(f"/api/v1/admin/payments/{paid}/refund", headers=admin.headers, json={})

    assert delivered.status_code == 200
    transfer = session.scalar(select(Transfer).where(Transfer.order_id == shipped["id"]))
    assert (transfer.demo, transfer.status, transfer.stripe_transfer_id) == (True, "pending", None)
    assert payouts.exit_code == 0 and "checked 0 transfers" in payouts.output, payouts.output
    assert refunded.status_code == 409 and "demo" in refunded.get_json()["message"]
    assert sum(stripe_connect.calls.values()) == asked_before
    assert not session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.job.like("payouts.%")))


def table_counts(session) -> dict[str, int]:
    models = (User, Store, Product, Order, OrderItem, Payment, Transfer, UserReportHistory, OutboxJob)
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in models}


def test_reset_twice_leaves_the_same_counts(app, session):
    seed(app, *ORDERS, "--reset")
    first = table_counts(session)

    seed(app, *ORDERS, "--reset")

    assert table_counts(session) == first
    assert first["orders"] == 40 and first["payments"] > 0 and first["transfers"] > 0


def test_reset_removes_the_jobs_queued_about_demo_orders(app, client, sign_in, outbox):
    seed(app, *ORDERS)
    owner = sign_in("demo-owner@example.com")
    orders, _ = owners_view(client, owner)
    fulfilled = next(order for order in orders if order["status"] == "fulfilled")
    moved = client.post(f"/api/v1/orders/{fulfilled['id']}/status", headers=owner.headers, json={"status": "shipped"})
    assert moved.status_code == 200
    admin = sign_in("demo-admin@example.com")
    assert "notifications.order_shipped" in {job["job"] for job in every(client, "/api/v1/admin/jobs", admin.headers)}

    seed(app, *ORDERS, "--reset")

    assert "notifications.order_shipped" not in {
        job["job"] for job in every(client, "/api/v1/admin/jobs", admin.headers)
    }


@pytest.mark.postgres
def test_a_postgres_seed_leaves_the_schema_as_the_migrations_made_it(app):
    seed(app, "--stores", "2", "--products", "500")

    check = app.test_cli_runner().invoke(args=["db", "check"])

    assert check.exit_code == 0, check.output


@pytest.mark.postgres
def test_seed_refuses_a_production_database(database_url):
    production = create_app({**PRODUCTION, "DATABASE_URL": database_url})

    result = production.test_cli_runner().invoke(args=["demo", "seed"])

    assert result.exit_code == 1
    assert "not for production" in result.output
