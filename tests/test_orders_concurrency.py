"""Orders under real concurrency on Postgres: real threads, each with its own connection.

`stock` is what the store holds and `reserved` what orders hold of it: whatever the timing,
reserved never exceeds stock and equals what the placed orders hold."""

from collections import Counter

import pytest
from sqlalchemy import func, select

from nexus.orders.models import Order, OrderItem
from nexus.stores.models import Product
from tests.conftest import all_at_once
from tests.factories import ProductFactory, StoreFactory, UserFactory, shipping_address

pytestmark = pytest.mark.postgres

ORDERS = "/api/v1/orders"


def order_lines(*lines: tuple[Product, int]) -> dict:
    return {
        "items": [{"product_id": product.id, "quantity": quantity} for product, quantity in lines],
        "shipping_address": shipping_address(),
    }


def counts(session, product: Product) -> tuple[int, int]:
    """(stock, reserved) of the product as committed."""
    return tuple(session.execute(select(Product.stock, Product.reserved).where(Product.id == product.id)).one())


def held(session, product: Product) -> int:
    """The units of the product in orders (every order of these tests waits for payment)."""
    statement = select(func.coalesce(func.sum(OrderItem.quantity), 0)).where(OrderItem.product_id == product.id)
    return session.scalar(statement)


def test_fifty_buyers_for_ten_units_get_exactly_ten_orders(app, session, bearer_for):
    teapot = ProductFactory(stock=10)
    buyers = [bearer_for(UserFactory().id) for _ in range(50)]

    answers = all_at_once(
        app, [lambda c, h=h: c.post(ORDERS, headers=h, json=order_lines((teapot, 1))) for h in buyers]
    )

    assert Counter(answer.status_code for answer in answers) == {201: 10, 409: 40}
    assert counts(session, teapot) == (10, 10)
    assert session.scalar(select(func.count()).select_from(Order)) == 10


def test_multi_line_orders_in_opposite_orders_never_deadlock(app, session, bearer_for, monkeypatch):
    monkeypatch.setitem(app.config, "ORDER_MAX_OPEN_PER_BUYER", 10)  # each buyer leaves 10 unpaid
    store = StoreFactory()
    products = [ProductFactory(store=store, stock=10_000) for _ in range(5)]
    buyers = [bearer_for(UserFactory().id) for _ in range(16)]
    forward = order_lines(*((product, 1) for product in products))
    backward = order_lines(*((product, 1) for product in reversed(products)))

    def place_ten(client, headers, body):
        return [client.post(ORDERS, headers=headers, json=body).status_code for _ in range(10)]

    answers = all_at_once(
        app, [lambda c, n=n, h=h: place_ten(c, h, forward if n % 2 else backward) for n, h in enumerate(buyers)]
    )

    assert Counter(status for statuses in answers for status in statuses) == {201: 160}
    assert [counts(session, product) for product in products] == [(10_000, 160)] * 5


def test_one_idempotency_key_sent_ten_times_at_once_places_one_order(app, session, bearer_for):
    teapot = ProductFactory(stock=100)
    headers = {**bearer_for(UserFactory().id), "Idempotency-Key": "double-click"}

    answers = all_at_once(app, [lambda c: c.post(ORDERS, headers=headers, json=order_lines((teapot, 2)))] * 10)

    assert {answer.status_code for answer in answers} <= {201, 409}
    assert len({answer.get_json()["id"] for answer in answers if answer.status_code == 201}) == 1
    assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert counts(session, teapot) == (100, 2)


def test_ten_cancels_at_once_restock_once(app, session, bearer_for):
    teapot = ProductFactory(stock=5)
    buyer = bearer_for(UserFactory().id)
    placed = app.test_client().post(ORDERS, headers=buyer, json=order_lines((teapot, 3)))
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()

    answers = all_at_once(app, [lambda c: c.post(f"{ORDERS}/{order['id']}/cancel", headers=buyer)] * 10)

    assert Counter(answer.status_code for answer in answers) == {200: 1, 409: 9}
    assert counts(session, teapot) == (5, 0)


def test_stock_never_goes_negative_under_mixed_orders(app, session, bearer_for):
    store = StoreFactory()
    products = [ProductFactory(store=store, stock=7) for _ in range(3)]
    buyers = [bearer_for(UserFactory().id) for _ in range(30)]

    answers = all_at_once(
        app,
        [
            lambda c, n=n, h=h: c.post(
                ORDERS, headers=h, json=order_lines((products[n % 3], 1), (products[(n + 1) % 3], 2))
            )
            for n, h in enumerate(buyers)
        ],
    )

    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 1  # the first order finds 7 of each: it fits whatever the timing
    assert session.scalar(select(func.count()).select_from(Order)) == statuses[201]
    for product in products:
        stock, reserved = counts(session, product)
        assert (stock, reserved) == (7, held(session, product))
        assert reserved <= stock


def test_many_buyers_racing_for_the_last_units_never_oversell(app, session, bearer_for):
    teapot = ProductFactory(stock=5)
    buyers = [bearer_for(UserFactory().id) for _ in range(30)]

    answers = all_at_once(
        app, [lambda c, h=h: c.post(ORDERS, headers=h, json=order_lines((teapot, 2))) for h in buyers]
    )

    assert Counter(answer.status_code for answer in answers) == {201: 2, 409: 28}
    assert counts(session, teapot) == (5, 4) == (5, held(session, teapot))


def test_recounting_stock_while_orders_race_never_leaves_reserved_above_stock(app, session, bearer_for):
    teapot = ProductFactory(stock=20)
    owner = bearer_for(teapot.store.owner_id)
    buyers = [bearer_for(UserFactory().id) for _ in range(20)]
    url = f"/api/v1/products/{teapot.id}"
    calls = [lambda c, h=h: c.post(ORDERS, headers=h, json=order_lines((teapot, 1))) for h in buyers]
    calls[::4] = [lambda c: c.patch(url, headers=owner, json={"stock": 10})] * 5  # the owner counts 10, 5 times

    answers = all_at_once(app, calls)

    orders = Counter(answer.status_code for answer in answers if answer.request.method == "POST")
    recounts = Counter(answer.status_code for answer in answers if answer.request.method == "PATCH")
    assert set(orders) <= {201, 409} and set(recounts) <= {200, 409}
    stock, reserved = counts(session, teapot)
    assert reserved == held(session, teapot) == orders[201] <= stock
    assert stock == (10 if recounts[200] else 20)
    if recounts[409]:  # refused only while orders held more than 10
        assert orders[201] > 10


def test_one_buyer_placing_ten_orders_at_once_gets_no_more_than_the_open_order_limit(app, session, bearer_for):
    teapot = ProductFactory(stock=100)
    buyer = bearer_for(UserFactory().id)

    answers = all_at_once(app, [lambda c: c.post(ORDERS, headers=buyer, json=order_lines((teapot, 1)))] * 10)

    assert Counter(answer.status_code for answer in answers) == {201: 5, 409: 5}
    assert counts(session, teapot) == (100, 5)
