"""The order status machine: every allowed and refused move, who may make it, and stock that
comes back exactly once."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from nexus import create_app
from nexus.database import utcnow
from nexus.orders.models import Order, OrderStatus
from nexus.payments.models import Payment
from nexus.stores.models import Product
from nexus.users.models import User
from tests.conftest import app_environ, expire_stale
from tests.factories import PaymentFactory, ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import deliver, intent_event, refund_event

ALL = [status.value for status in OrderStatus]
# (from, to) -> allowed, for the moves people make over HTTP: cancel, and the store's steps.
PEOPLES_MOVES = {
    ("pending_payment", "cancelled"),
    ("paid", "fulfilled"),
    ("fulfilled", "shipped"),
    ("shipped", "delivered"),
}


@pytest.fixture
def teapot(owner, session) -> Product:
    """This module's teapot (conftest's has too few for three orders): 10.00 aed, 9 in stock."""
    store = StoreFactory(owner=session.get(User, owner.user["id"]))
    return ProductFactory(store=store, name="Teapot", price=1000, stock=9)


@pytest.fixture
def order_in(client, buyer, teapot, session, bearer_for):
    """An order of 2 teapots placed over HTTP now, then put in `status` (setup, not the test)."""

    def order_in(status: str, **extra_headers: str) -> dict:
        headers = {**bearer_for(buyer.user["id"]), **extra_headers}
        body = {"items": [{"product_id": teapot.id, "quantity": 2}], "shipping_address": shipping_address()}
        order = client.post("/api/v1/orders", headers=headers, json=body)
        assert order.status_code == 201, order.get_json()
        session.execute(update(Order).where(Order.id == order.get_json()["id"]).values(status=status))
        return order.get_json()

    return order_in


def cancel(client, who, order: dict):
    return client.post(f"/api/v1/orders/{order['id']}/cancel", headers=who.headers)


def step(client, who, order: dict, status: str):
    return client.post(f"/api/v1/orders/{order['id']}/status", headers=who.headers, json={"status": status})


def payment_of(order: dict, status: str) -> Payment:
    """The order's Stripe payment, in `status`; the system's moves come with its webhooks."""
    return PaymentFactory(
        order_id=order["id"],
        user_id=order["buyer_id"],
        amount=order["total"],
        currency=order["currency"],
        status=status,
    )


def available_of(session, product: Product) -> int:
    return session.scalar(select(Product.available).where(Product.id == product.id))


def status_of(session, order: dict) -> str:
    return session.scalar(select(Order.status).where(Order.id == order["id"]))


@pytest.mark.parametrize("current", ALL)
def test_cancel_works_only_on_an_unpaid_order_and_restocks_it(client, buyer, order_in, teapot, session, current):
    order = order_in(current)

    response = cancel(client, buyer, order)

    if (current, "cancelled") in PEOPLES_MOVES:
        assert response.status_code == 200
        assert response.get_json()["status"] == "cancelled"
        assert available_of(session, teapot) == 9
    else:
        assert response.status_code == 409
        assert f"The order is {current}" in response.get_json()["message"]
        assert (status_of(session, order), available_of(session, teapot)) == (current, 7)


@pytest.mark.parametrize("current", ALL)
@pytest.mark.parametrize("target", ["fulfilled", "shipped", "delivered"])
def test_the_store_moves_a_paid_order_one_step_at_a_time(client, owner, order_in, teapot, session, current, target):
    order = order_in(current)

    response = step(client, owner, order, target)

    if (current, target) in PEOPLES_MOVES:
        assert (response.status_code, response.get_json()["status"]) == (200, target)
    else:
        assert response.status_code == 409
        assert f"The order is {current}" in response.get_json()["message"]
        assert status_of(session, order) == current
    assert available_of(session, teapot) == 7  # only cancelling, expiring or refunding restocks


def test_fulfilling_an_order_takes_its_units_off_stock_and_reserved(client, owner, order_in, teapot):
    order = order_in("paid")

    assert step(client, owner, order, "fulfilled").status_code == 200

    product = client.get(f"/api/v1/products/{teapot.id}").get_json()
    assert (product["stock"], product["reserved"], product["available"]) == (7, 0, 7)


@pytest.mark.parametrize("who", ["buyer", "owner", "admin"])
def test_the_buyer_the_owner_and_an_admin_may_cancel(client, order_in, request, who, session):
    order = order_in("pending_payment")

    response = cancel(client, request.getfixturevalue(who), order)

    assert response.status_code == 200
    assert status_of(session, order) == "cancelled"


def test_an_admin_may_move_an_order_on(client, admin, order_in):
    order = order_in("paid")

    assert (
        client.post(
            f"/api/v1/orders/{order['id']}/status", headers=admin.headers, json={"status": "fulfilled"}
        ).status_code
        == 200
    )


def test_the_buyer_may_not_move_an_order_on_and_strangers_do_not_see_it(client, buyer, stranger, order_in, session):
    order = order_in("paid")

    assert (
        client.post(
            f"/api/v1/orders/{order['id']}/status", headers=buyer.headers, json={"status": "fulfilled"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/orders/{order['id']}/status", headers=stranger.headers, json={"status": "fulfilled"}
        ).status_code
        == 404
    )
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=stranger.headers).status_code == 404
    assert status_of(session, order) == "paid"


@pytest.mark.parametrize("target", ["paid", "cancelled", "refunded", "expired", "pending_payment", "lost"])
def test_only_the_stores_steps_can_be_asked_for(client, owner, order_in, target):
    order = order_in("paid")

    assert step(client, owner, order, target).status_code == 422


def test_stock_comes_back_once_however_often_an_order_is_cancelled(client, buyer, owner, order_in, teapot, session):
    order = order_in("pending_payment")

    answers = [
        client.post(f"/api/v1/orders/{order['id']}/cancel", headers=who.headers).status_code
        for who in (buyer, owner, buyer)
    ]

    assert answers == [200, 409, 409]
    assert available_of(session, teapot) == 9


@pytest.mark.parametrize(("current", "restocked"), [("paid", True), ("fulfilled", False)])
def test_a_full_refund_restocks_only_what_never_left(client, order_in, teapot, session, current, restocked):
    order = order_in(current)
    payment = payment_of(order, "succeeded")

    refunded = deliver(client, refund_event(payment, payment.amount))

    assert refunded.get_json()["outcome"] == "applied"
    assert status_of(session, order) == "refunded"
    assert available_of(session, teapot) == (9 if restocked else 7)


@pytest.mark.parametrize("current", [s for s in ALL if s not in ("pending_payment",)])
def test_payment_only_settles_an_unpaid_order(client, order_in, session, current):
    order = order_in(current)

    paid = deliver(client, intent_event(payment_of(order, "pending"), "succeeded"))

    assert paid.get_json()["outcome"] == "anomaly"  # the order could not take it: money to refund
    assert status_of(session, order) == current


def test_a_payment_marks_the_order_paid_with_its_time(client, buyer, order_in, session):
    order = order_in("pending_payment")

    assert deliver(client, intent_event(payment_of(order, "pending"), "succeeded")).get_json()["outcome"] == "applied"

    paid = client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers).get_json()
    assert paid["status"] == "paid"
    assert paid["paid_at"] is not None


# --- flask orders expire-stale ----------------------------------------------------------


def test_expire_stale_expires_old_unpaid_orders_once_and_restocks_them(app, order_in, teapot, session):
    old, paid = order_in("pending_payment"), order_in("paid")
    with time_machine.travel(utcnow() + timedelta(minutes=20)):
        recent = order_in("pending_payment")
    assert available_of(session, teapot) == 3

    first, second = expire_stale(app, after_minutes=31), expire_stale(app, after_minutes=32)

    assert "expired 1 orders unpaid for over 30 minutes" in first
    assert "expired 0 orders" in second
    assert [status_of(session, o) for o in (old, paid, recent)] == ["expired", "paid", "pending_payment"]
    assert available_of(session, teapot) == 5


def test_expire_stale_reads_the_timeout_when_it_runs(database_url, order_in, session):
    order = order_in("pending_payment")
    impatient = create_app(app_environ(database_url, ORDER_PAYMENT_TIMEOUT_MINUTES="5"))

    assert "expired 1 orders unpaid for over 5 minutes" in expire_stale(impatient, after_minutes=6)
    assert status_of(session, order) == "expired"


def test_expire_stale_forgets_idempotency_keys_after_24_hours(app, order_in, session):
    order_in("paid", **{"Idempotency-Key": "old-key"})

    assert "forgot 0 idempotency keys" in expire_stale(app, after_minutes=60 * 23)
    assert "forgot 1 idempotency keys" in expire_stale(app, after_minutes=60 * 25)
