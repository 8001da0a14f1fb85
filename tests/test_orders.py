"""Placing orders against stock, idempotently; who sees them; and listing them."""

from datetime import datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from nexus import create_app
from nexus.database import utcnow
from nexus.orders.models import IdempotencyKey, Order
from nexus.stores.models import Product, Store
from nexus.users.models import User
from tests.conftest import app_environ
from tests.factories import ProductFactory, StoreFactory, shipping_address
from tests.pages import walk

ORDERS = "/api/v1/orders"


@pytest.fixture
def shop(owner, session) -> tuple[Store, list[Product]]:
    """The owner's store, in usd, with a teapot (5 left), a cup (10 left) and a sold-out saucer."""
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    return store, [
        ProductFactory(store=store, name="Teapot", price=1000, stock=5),
        ProductFactory(store=store, name="Cup", price=250, stock=10),
        ProductFactory(store=store, name="Saucer", price=99, stock=0),
    ]


def available(session, *products: Product) -> list[int]:
    return [session.scalar(select(Product.available).where(Product.id == p.id)) for p in products]


def order_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Order))


def body(*lines, **extra) -> dict:
    """An order's body: the lines, the usual address, and `extra` fields."""
    items = [{"product_id": product.id, "quantity": quantity} for product, quantity in lines]
    return {"items": items, "shipping_address": shipping_address(), **extra}


def place(client, who, *lines, **extra):
    return client.post(ORDERS, headers=who.headers, json=body(*lines, **extra))


def test_an_order_snapshots_prices_totals_and_reserves_stock(client, buyer, shop, session):
    store, (teapot, cup, _) = shop

    response = place(client, buyer, (teapot, 2), (cup, 3), note=" Gift wrap, please ")

    assert response.status_code == 201
    order = response.get_json()
    assert (order["status"], order["buyer_id"], order["store_id"], order["currency"]) == (
        "pending_payment",
        buyer.user["id"],
        store.id,
        "usd",
    )
    assert order["items"] == [
        {"product_id": teapot.id, "name": "Teapot", "unit_price": 1000, "quantity": 2, "line_total": 2000},
        {"product_id": cup.id, "name": "Cup", "unit_price": 250, "quantity": 3, "line_total": 750},
    ]
    assert (order["subtotal"], order["total"], order["note"], order["paid_at"]) == (
        2750,
        2750,
        "Gift wrap, please",
        None,
    )
    created, expires = (datetime.fromisoformat(order[key]) for key in ("created_at", "expires_at"))
    assert expires - created == timedelta(minutes=30)
    assert available(session, teapot, cup) == [3, 7]


def test_lines_of_the_same_product_are_merged(client, buyer, shop, session):
    _, (teapot, cup, _) = shop

    order = place(client, buyer, (cup, 1), (teapot, 1), (cup, 2)).get_json()

    assert [(item["product_id"], item["quantity"]) for item in order["items"]] == [(teapot.id, 1), (cup.id, 3)]
    assert available(session, cup) == [7]


def test_the_order_keeps_its_snapshot_when_the_product_changes(client, buyer, owner, shop):
    _, (teapot, _, _) = shop
    order = place(client, buyer, (teapot, 1)).get_json()

    client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"name": "Big Teapot", "price": 5000})

    assert client.get(f"{ORDERS}/{order['id']}", headers=buyer.headers).get_json()["items"] == order["items"]


def test_not_enough_stock_is_a_409_naming_every_short_product_and_reserves_nothing(client, buyer, shop, session):
    _, (teapot, cup, saucer) = shop

    response = place(client, buyer, (teapot, 6), (cup, 10), (saucer, 1))

    assert response.status_code == 409
    assert f"products {teapot.id}, {saucer.id}" in response.get_json()["message"]
    assert available(session, teapot, cup, saucer) == [5, 10, 0]
    assert order_count(session) == 0


def test_unavailable_products_are_a_422_and_reserve_nothing(client, buyer, shop, session):
    _, (teapot, cup, _) = shop
    hidden = ProductFactory(store=teapot.store, is_active=False)
    closed = ProductFactory(store=StoreFactory(is_active=False))

    for lines in [((teapot, 1), (hidden, 1)), ((closed, 1),), ((cup, 1), (ProductFactory(), 1))]:
        response = place(client, buyer, *lines)
        assert response.status_code == 422, lines
        assert "items" in response.get_json()["errors"]["json"]
    unknown = {"items": [{"product_id": 999_999, "quantity": 1}], "shipping_address": shipping_address()}
    missing = client.post(ORDERS, headers=buyer.headers, json=unknown)
    assert missing.status_code == 422
    assert available(session, teapot, cup) == [5, 10]
    assert order_count(session) == 0


def test_nobody_buys_from_their_own_store(client, owner, shop, session):
    _, (teapot, _, _) = shop

    response = place(client, owner, (teapot, 1))

    assert response.status_code == 422
    assert "own store" in response.get_json()["message"]
    assert available(session, teapot) == [5]


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": 1001}]},
        {"items": [{"product_id": 1, "quantity": 1.5}]},
        {"items": [{"product_id": 1}]},
        {"items": [{"product_id": n, "quantity": 1} for n in range(1, 102)]},
        {"items": [{"product_id": 1, "quantity": 1}], "total": 1},
        {"items": [{"product_id": 1, "quantity": 1}], "note": "x" * 501},
    ],
)
def test_malformed_orders_are_a_422(client, buyer, body):
    response = client.post(ORDERS, headers=buyer.headers, json={**body, "shipping_address": shipping_address()})

    assert response.status_code == 422
    assert "shipping_address" not in response.get_json()["errors"]["json"]


def test_merged_lines_over_1000_are_a_422(client, buyer, shop):
    _, (_, cup, _) = shop

    assert place(client, buyer, (cup, 600), (cup, 600)).status_code == 422


def test_an_order_total_above_99_999_999_is_a_422_and_reserves_nothing(client, buyer, shop, session):
    store, _ = shop
    dear = ProductFactory(store=store, price=50_000_000, stock=5)

    response = place(client, buyer, (dear, 2))

    assert response.status_code == 422
    assert "99999999" in response.get_json()["errors"]["json"]["items"][0]
    assert available(session, dear) == [5]
    assert order_count(session) == 0


def test_an_order_total_below_stripes_minimum_charge_is_a_422(client, buyer, shop, session):
    _, (_, _, saucer) = shop
    cheap = ProductFactory(store=saucer.store, price=49, stock=5)  # usd: Stripe charges 0.50 at least

    refused = place(client, buyer, (cheap, 1))
    placed = place(client, buyer, (cheap, 2))

    assert refused.status_code == 422
    assert "at least 50 usd" in refused.get_json()["message"]
    assert placed.status_code == 201
    assert available(session, cheap) == [3]


def test_the_minimum_charge_is_the_currencys(client, buyer, owner, session):
    yen = StoreFactory(owner=session.get(User, owner.user["id"]), currency="jpy")
    sweet = ProductFactory(store=yen, price=49, stock=5)  # jpy is zero-decimal: 49 yen, under Stripe's 50

    assert place(client, buyer, (sweet, 1)).status_code == 422
    assert place(client, buyer, (sweet, 2)).status_code == 201


def test_a_buyer_with_5_unpaid_orders_must_pay_or_cancel_one_first(client, buyer, stranger, shop, session):
    _, (_, cup, _) = shop
    placed = [place(client, buyer, (cup, 1)).get_json() for _ in range(5)]

    refused = place(client, buyer, (cup, 1))
    other_buyer = place(client, stranger, (cup, 1))
    client.post(f"{ORDERS}/{placed[0]['id']}/cancel", headers=buyer.headers)
    after_cancel = place(client, buyer, (cup, 1))

    assert refused.status_code == 409
    assert "pay or cancel one" in refused.get_json()["message"]
    assert other_buyer.status_code == 201
    assert after_cancel.status_code == 201
    assert available(session, cup) == [10 - 4 - 1 - 1]


def test_placing_orders_is_rate_limited_per_user(database_url, buyer, stranger, shop, bearer_for):
    _, (_, cup, _) = shop
    limited = create_app(app_environ(database_url, ORDER_RATE_LIMIT_PER_USER="2 per hour")).test_client()

    answers = [limited.post(ORDERS, headers=buyer.headers, json=body((cup, 1))) for _ in range(3)]
    someone_else = limited.post(ORDERS, headers=stranger.headers, json=body((cup, 1)))

    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert answers[2].get_json()["code"] == 429
    assert someone_else.status_code == 201


def test_placing_an_order_needs_a_verified_user(client, buyer, shop, session):
    _, (teapot, _, _) = shop
    session.execute(update(User).where(User.id == buyer.user["id"]).values(is_verified=False))

    assert place(client, buyer, (teapot, 1)).status_code == 403
    assert client.post(ORDERS, json=body((teapot, 1))).status_code == 401


# --- Idempotency-Key --------------------------------------------------------------------


def test_the_same_key_and_body_answer_the_original_order(client, buyer, shop, session):
    _, (teapot, _, _) = shop
    key = {"Idempotency-Key": "order-7f3a"}

    first = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 2)))
    again = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 2)))

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert order_count(session) == 1
    assert available(session, teapot) == [3]


def test_the_same_key_with_another_body_is_a_422(client, buyer, shop, session):
    _, (teapot, _, _) = shop
    key = {"Idempotency-Key": "order-7f3a"}
    client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 2)))

    response = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 1)))

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]["headers"]
    assert order_count(session) == 1


def test_the_same_lines_in_another_order_or_split_are_the_same_body(client, buyer, shop, session):
    _, (teapot, cup, _) = shop
    key = {"Idempotency-Key": "cart-1"}
    first = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 1), (cup, 3)))

    reordered = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((cup, 3), (teapot, 1)))
    split = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((cup, 1), (teapot, 1), (cup, 2)))

    assert first.status_code == 201
    for again in (reordered, split):
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert again.get_json()["id"] == first.get_json()["id"]
    assert order_count(session) == 1


def test_keys_belong_to_one_user(client, buyer, sign_in, shop, session):
    _, (teapot, _, _) = shop
    other = sign_in("other@example.com")
    key = {"Idempotency-Key": "same"}

    mine = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 1))).get_json()
    theirs = client.post(ORDERS, headers={**other.headers, **key}, json=body((teapot, 1))).get_json()

    assert mine["id"] != theirs["id"]
    assert order_count(session) == 2


def test_a_key_is_kept_for_24_hours(client, buyer, shop, bearer_for):
    _, (_, cup, _) = shop
    key = {"Idempotency-Key": "daily"}
    first = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((cup, 1))).get_json()

    with time_machine.travel(utcnow() + timedelta(hours=23)):
        headers = {**bearer_for(buyer.user["id"]), **key}
        assert client.post(ORDERS, headers=headers, json=body((cup, 1))).get_json()["id"] == first["id"]
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        later = client.post(ORDERS, headers={**bearer_for(buyer.user["id"]), **key}, json=body((cup, 1)))

    assert later.status_code == 201
    assert later.get_json()["id"] != first["id"]


def test_a_failed_attempt_does_not_use_up_its_key(client, buyer, owner, shop, session):
    _, (teapot, _, _) = shop
    key = {"Idempotency-Key": "retry-me"}
    assert client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 6))).status_code == 409

    client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"stock": 6})

    retry = client.post(ORDERS, headers={**buyer.headers, **key}, json=body((teapot, 6)))
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


def test_a_key_whose_first_request_is_still_in_flight_is_a_409(client, buyer, shop, session):
    _, (teapot, _, _) = shop
    client.post(ORDERS, headers={**buyer.headers, "Idempotency-Key": "warm-up"}, json=body((teapot, 1)))
    session.execute(update(IdempotencyKey).values(key="busy", order_id=None))  # as if its order were being placed

    response = client.post(ORDERS, headers={**buyer.headers, "Idempotency-Key": "busy"}, json=body((teapot, 1)))

    assert response.status_code == 409
    assert "still being placed" in response.get_json()["message"]


def test_a_key_in_flight_for_over_a_minute_was_abandoned_and_the_retry_places_the_order(client, buyer, shop, session):
    _, (teapot, _, _) = shop
    warm_up = client.post(ORDERS, headers={**buyer.headers, "Idempotency-Key": "warm-up"}, json=body((teapot, 1)))
    two_minutes_ago = utcnow() - timedelta(minutes=2)  # as if its request had died before placing the order
    session.execute(update(IdempotencyKey).values(key="stuck", order_id=None, created_at=two_minutes_ago))
    headers = {**buyer.headers, "Idempotency-Key": "stuck"}

    retry = client.post(ORDERS, headers=headers, json=body((teapot, 1)))

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.get_json()["id"] != warm_up.get_json()["id"]
    again = client.post(ORDERS, headers=headers, json=body((teapot, 1)))
    assert (again.headers["Idempotent-Replayed"], again.get_json()["id"]) == ("true", retry.get_json()["id"])
    assert order_count(session) == 2
    assert available(session, teapot) == [3]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
def test_a_malformed_key_is_a_422(client, buyer, shop, key):
    _, (teapot, _, _) = shop

    response = client.post(
        ORDERS,
        headers={**buyer.headers, "Idempotency-Key": key},
        json=body((teapot, 1)),
    )

    assert response.status_code == 422


# --- who sees an order, and lists -------------------------------------------------------


def test_an_order_is_seen_by_its_buyer_its_stores_owner_and_admins_only(client, buyer, owner, admin, stranger, shop):
    _, (teapot, _, _) = shop
    order = place(client, buyer, (teapot, 1)).get_json()
    url = f"{ORDERS}/{order['id']}"

    for who in (buyer, owner, admin):
        assert client.get(url, headers=who.headers).get_json() == order
    assert client.get(url, headers=stranger.headers).status_code == 404
    assert client.get(f"{ORDERS}/999999", headers=admin.headers).status_code == 404
    assert client.get(url).status_code == 401


def test_my_orders_are_mine_newest_first_and_filter_by_status(client, buyer, stranger, shop):
    _, (teapot, cup, _) = shop
    first = place(client, buyer, (teapot, 1)).get_json()
    second = place(client, buyer, (cup, 1)).get_json()
    place(client, stranger, (cup, 1))
    client.post(f"{ORDERS}/{first['id']}/cancel", headers=buyer.headers)

    mine = client.get(ORDERS, headers=buyer.headers).get_json()
    cancelled = client.get(ORDERS, headers=buyer.headers, query_string={"status": "cancelled"}).get_json()

    assert [order["id"] for order in mine["items"]] == [second["id"], first["id"]]
    assert mine["items"][0] == client.get(f"{ORDERS}/{second['id']}", headers=buyer.headers).get_json()
    assert [order["id"] for order in cancelled["items"]] == [first["id"]]
    assert client.get(ORDERS, headers=buyer.headers, query_string={"status": "lost"}).status_code == 422


def test_a_stores_orders_are_for_its_owner_and_admins(client, buyer, owner, admin, stranger, shop, sign_in):
    store, (teapot, cup, _) = shop
    ids = [
        place(client, buyer, (teapot, 1)).get_json()["id"],
        place(client, sign_in("b2@example.com"), (cup, 2)).get_json()["id"],
    ]
    url = f"/api/v1/stores/{store.id}/orders"

    for who in (owner, admin):
        assert [order["id"] for order in client.get(url, headers=who.headers).get_json()["items"]] == ids[::-1]
    assert client.get(url, headers=stranger.headers).status_code == 403
    assert client.get(url, headers=buyer.headers).status_code == 403


def test_order_lists_page_through_every_order_once(client, buyer, shop):
    _, (_, cup, _) = shop
    placed = [place(client, buyer, (cup, 1)).get_json()["id"] for _ in range(5)]

    seen = [order["id"] for order in walk(client, ORDERS, limit=2, headers=buyer.headers)]

    assert seen == placed[::-1]


def test_an_order_list_costs_the_same_statements_for_1_or_100_orders(client, buyer, shop, statements):
    _, (_, cup, _) = shop
    for _ in range(3):
        place(client, buyer, (cup, 1))
    counts = []
    for limit in (1, 100):
        statements.clear()
        client.get(ORDERS, headers=buyer.headers, query_string={"limit": limit})
        counts.append(len(statements))

    assert counts[0] == counts[1] <= 4  # token check, user, the page, its items
