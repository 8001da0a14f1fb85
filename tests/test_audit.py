"""Every write an admin makes is in the audit log, through whichever endpoint it is made: the
admin console's, and the ones every user has (closing a store, repricing a product, cancelling
an order...). The walk below covers every write route of the app, so a new one cannot forget."""

import re

import pytest
from sqlalchemy import select, update

from nexus.audit import AdminAuditEntry
from nexus.orders.models import Order
from nexus.users.models import User
from tests.factories import ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import deliver, intent_event, pay_at_stripe

WRITES = {"POST", "PATCH", "PUT", "DELETE"}
# Write routes no admin makes as an admin, each with why.
NOT_ADMIN_WRITES = {
    ("POST", "/api/v1/auth/register"): "public: anyone asks for a sign-in code, before being anyone",
    ("POST", "/api/v1/auth/otp/request"): "public: a sign-in code is asked for before signing in",
    ("POST", "/api/v1/auth/otp/verify"): "public: signing in, not a change an admin makes to the data",
    ("POST", "/api/v1/auth/refresh"): "a session's own token rotation, not a change to anyone's data",
    ("POST", "/api/v1/auth/logout"): "a session ending itself, not a change to anyone's data",
    ("POST", "/api/v1/webhooks/stripe"): "Stripe's signed events, made by no user",
    ("POST", "/api/v1/webhooks/stripe-connect"): "Stripe Connect's signed events, made by no user",
}


def write_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods & WRITES
        if rule.rule.startswith("/api/")
    }


def path_of(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def entries(session) -> list[AdminAuditEntry]:
    session.expire_all()
    return session.scalars(select(AdminAuditEntry).order_by(AdminAuditEntry.id)).all()


@pytest.fixture
def scene(client, admin, buyer, teapot, order, localstripe, session):
    """What each write acts on: the owner's store and teapot, the buyer's unpaid order and a paid
    one, the admin's own paid order (its payment succeeded at Stripe) and its Stripe event, and
    a store of the admin's own (whose payouts only its owner sets up)."""
    line = {"items": [{"product_id": teapot.id, "quantity": 1}], "shipping_address": shipping_address()}
    placed = client.post("/api/v1/orders", headers=buyer.headers, json=line)
    paid = placed.get_json()
    session.execute(update(Order).where(Order.id == paid["id"]).values(status="paid"))
    mine = client.post("/api/v1/orders", headers=admin.headers, json=line)
    assert mine.status_code == 201, mine.get_json()
    started = client.post(f"/api/v1/orders/{mine.get_json()['id']}/payment", headers=admin.headers)
    assert started.status_code == 201, started.get_json()
    payment = started.get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    assert deliver(client, intent_event(payment, "succeeded", event_id="evt_admin_paid")).status_code == 200
    event_id = client.get("/api/v1/admin/payment-events", headers=admin.headers).get_json()["items"][0]["id"]
    spare = ProductFactory(store=teapot.store, price=900, stock=3)
    own = StoreFactory(owner=session.get(User, admin.user["id"]), currency="usd")
    return {
        "own_store": own.id,
        "store": teapot.store_id,
        "product": teapot.id,
        "spare": spare.id,
        "unpaid": order["id"],
        "paid": paid["id"],
        "payment": payment["id"],
        "event": event_id,
        "buyer": buyer.user["id"],
    }


def test_every_admin_write_through_any_endpoint_lands_in_the_audit_log(app, client, admin, scene, teapot, session):
    other = ProductFactory(store=teapot.store, price=700, stock=2)
    # Each write route, made as the admin: (path, body); orders first, before the store closes.
    requests = {
        ("POST", "/api/v1/orders"): (
            "/api/v1/orders",
            {"items": [{"product_id": scene["spare"], "quantity": 1}], "shipping_address": shipping_address()},
        ),
        ("POST", "/api/v1/orders/{order_id}/status"): (
            f"/api/v1/orders/{scene['paid']}/status",
            {"status": "fulfilled"},
        ),
        ("POST", "/api/v1/orders/{order_id}/cancel"): (f"/api/v1/orders/{scene['unpaid']}/cancel", None),
        ("POST", "/api/v1/orders/{order_id}/payment"): None,  # made by the scene: the admin paid their own order
        ("PATCH", "/api/v1/profile/me"): ("/api/v1/profile/me", {"full_name": "The Admin"}),
        ("POST", "/api/v1/stores"): ("/api/v1/stores", {"name": "Admin's corner"}),
        ("PATCH", "/api/v1/stores/{store_id}"): (f"/api/v1/stores/{scene['store']}", {"is_active": False}),
        ("POST", "/api/v1/stores/{store_id}/products"): (
            f"/api/v1/stores/{scene['store']}/products",
            {"name": "Cosy", "price": 500, "stock": 2},
        ),
        ("PATCH", "/api/v1/products/{product_id}"): (f"/api/v1/products/{scene['product']}", {"price": 1700}),
        ("DELETE", "/api/v1/products/{product_id}"): (f"/api/v1/products/{other.id}", None),
        ("POST", "/api/v1/stores/{store_id}/payouts/onboarding"): (
            f"/api/v1/stores/{scene['own_store']}/payouts/onboarding",
            None,
        ),
        ("POST", "/api/v1/stores/{store_id}/reports"): (
            f"/api/v1/stores/{scene['store']}/reports",
            {"type": "sales", "date_from": "2026-03-01", "date_to": "2026-03-31"},
        ),
        ("PATCH", "/api/v1/admin/users/{user_id}"): (f"/api/v1/admin/users/{scene['buyer']}", {"role": "admin"}),
        ("POST", "/api/v1/admin/payments/{payment_id}/refund"): (
            f"/api/v1/admin/payments/{scene['payment']}/refund",
            {"amount": 100},
        ),
        ("POST", "/api/v1/admin/payment-events/{event_id}/replay"): (
            f"/api/v1/admin/payment-events/{scene['event']}/replay",
            None,
        ),
    }
    routes = {(method, path_of(rule)) for method, rule in write_routes(app)}
    assert routes == set(requests) | set(NOT_ADMIN_WRITES), "a write route neither audited here nor excluded"
    assert [e.action for e in entries(session)] == ["order.place", "payment.start"]

    for route, request in requests.items():
        if request is None:
            continue
        path, body = request
        seen = len(entries(session))
        response = client.open(path, method=route[0], headers=admin.headers, json=body)
        assert response.status_code < 300, (route, response.get_json())
        new = entries(session)[seen:]
        assert len(new) == 1, f"{route} wrote {len(new)} entries to the audit log"
        assert new[0].actor_id == admin.user["id"], route


def test_an_admin_closing_a_store_and_repricing_is_recorded_with_before_and_after(
    client, admin, teapot, order, session
):
    client.patch(f"/api/v1/stores/{teapot.store_id}", headers=admin.headers, json={"is_active": False})
    client.patch(f"/api/v1/products/{teapot.id}", headers=admin.headers, json={"price": 1700})
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=admin.headers)

    got = [(e.action, e.target_type, e.target_id, e.before, e.after) for e in entries(session)]

    assert got == [
        ("store.update", "store", teapot.store_id, {"is_active": True}, {"is_active": False}),
        ("product.update", "product", teapot.id, {"price": 1500}, {"price": 1700}),
        ("order.cancel", "order", order["id"], {"status": "pending_payment"}, {"status": "cancelled"}),
    ]


def test_customers_writes_are_not_audited(client, owner, teapot, session):
    client.patch(f"/api/v1/products/{teapot.id}", headers=owner.headers, json={"price": 1700})

    assert entries(session) == []
