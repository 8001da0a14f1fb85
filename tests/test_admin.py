"""The admin console: only admins get in; users, payments, orders and their trail; the numbers;
and every admin write in the audit log."""

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from nexus.database import utcnow
from nexus.jobs.outbox import OutboxJob
from nexus.orders.models import Order
from tests.conftest import code_in, wait_for_jobs
from tests.factories import PaymentFactory, ProductFactory, StoreFactory, UserFactory, shipping_address
from tests.pages import ids
from tests.stripe_helpers import deliver, ignored_event, intent_event

ADMIN = "/api/v1/admin"


def test_a_customer_gets_403_on_every_admin_path_and_a_stranger_401(app, client, stranger):
    admin_rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(ADMIN)]
    assert len(admin_rules) >= 10

    for rule in admin_rules:
        path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert client.open(path, method=method, headers=stranger.headers, json={}).status_code == 403, rule
            assert client.open(path, method=method, json={}).status_code == 401, rule


# --- users ----------------------------------------------------------------------------------


def emails(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [user["email"] for user in response.get_json()["items"]]


def test_users_are_searched_by_email_or_name_and_filtered(client, admin, session):
    UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    UserFactory(email="grace@navy.example", full_name="Grace Hopper", is_active=False)
    UserFactory(email="alan@example.com", full_name="Alan Turing", role="admin")

    assert emails(client.get(f"{ADMIN}/users", headers=admin.headers, query_string={"q": "HOPPER"})) == [
        "grace@navy.example"
    ]
    assert emails(client.get(f"{ADMIN}/users", headers=admin.headers, query_string={"q": "example.com"})) == [
        "alan@example.com",
        "ada@example.com",
        "admin@example.com",
    ]
    assert emails(client.get(f"{ADMIN}/users", headers=admin.headers, query_string={"is_active": "false"})) == [
        "grace@navy.example"
    ]
    assert emails(client.get(f"{ADMIN}/users", headers=admin.headers, query_string={"role": "admin"})) == [
        "alan@example.com",
        "admin@example.com",
    ]
    assert client.get(f"{ADMIN}/users", headers=admin.headers, query_string={"role": "owner"}).status_code == 422


def test_a_user_is_read_by_id(client, admin, session):
    user = UserFactory(email="ada@example.com")

    assert client.get(f"{ADMIN}/users/{user.id}", headers=admin.headers).get_json()["email"] == "ada@example.com"
    assert client.get(f"{ADMIN}/users/999999", headers=admin.headers).status_code == 404


def test_deactivating_a_user_locks_them_out_at_once(client, admin, sign_in, outbox):
    ada = sign_in("ada@example.com")

    response = client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": False})

    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert client.get("/api/v1/profile/me", headers=ada.headers).status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {ada.refresh_token}"}).status_code == 401
    )
    outbox.clear()
    assert client.post("/api/v1/auth/otp/request", json={"email": "ada@example.com"}).status_code == 202
    assert outbox == []


def test_a_reactivated_user_signs_in_again_but_old_refresh_tokens_stay_dead(client, admin, sign_in, outbox):
    ada = sign_in("ada@example.com")
    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": False})

    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": True})

    assert (
        client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {ada.refresh_token}"}).status_code == 401
    )
    client.post("/api/v1/auth/otp/request", json={"email": "ada@example.com"})
    verified = client.post("/api/v1/auth/otp/verify", json={"email": "ada@example.com", "code": code_in(outbox[-1])})
    assert verified.status_code == 200


def test_a_reactivated_users_old_access_tokens_stay_dead(client, admin, sign_in, outbox):
    ada = sign_in("ada@example.com")
    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": False})

    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": True})

    assert client.get("/api/v1/profile/me", headers=ada.headers).status_code == 401
    again = sign_in("ada@example.com")
    assert client.get("/api/v1/profile/me", headers=again.headers).status_code == 200


def test_a_token_issued_in_the_same_second_as_the_deactivation_stays_dead_and_a_new_sign_in_then_works(
    client, admin, sign_in, outbox
):
    # a whole second a minute ahead: the admin's token, issued now, is still good then
    second = utcnow().replace(microsecond=0) + timedelta(minutes=1)
    ada = sign_in("ada@example.com")
    with time_machine.travel(second + timedelta(milliseconds=100), tick=False):
        before = sign_in("ada@example.com")  # its `iat` is the deactivation's second
    with time_machine.travel(second + timedelta(milliseconds=500), tick=False):
        client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": False})
    with time_machine.travel(second + timedelta(milliseconds=700), tick=False):
        client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": True})
    with time_machine.travel(second + timedelta(milliseconds=900), tick=False):
        after = sign_in("ada@example.com")  # the same second again, after the reactivation

        assert client.get("/api/v1/profile/me", headers=before.headers).status_code == 401
        assert (
            client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {before.refresh_token}"}).status_code
            == 401
        )
        assert client.get("/api/v1/profile/me", headers=after.headers).status_code == 200
        assert (
            client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {after.refresh_token}"}).status_code
            == 200
        )


def test_roles_change_and_take_effect_at_once(client, admin, sign_in):
    ada = sign_in("ada@example.com")

    promoted = client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"role": "admin"})

    assert promoted.get_json()["role"] == "admin"
    assert client.get(f"{ADMIN}/stats", headers=ada.headers).status_code == 200
    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"role": "customer"})
    assert client.get(f"{ADMIN}/stats", headers=ada.headers).status_code == 403


@pytest.mark.parametrize("change", [{"role": "customer"}, {"is_active": False}])
def test_an_admin_cannot_demote_or_deactivate_themself(client, admin, change):
    response = client.patch(f"{ADMIN}/users/{admin.user['id']}", headers=admin.headers, json=change)

    assert response.status_code == 422
    assert list(response.get_json()["errors"]["json"]) == list(change)
    assert client.get("/api/v1/profile/me", headers=admin.headers).get_json()["role"] == "admin"


@pytest.mark.parametrize("change", [{"email": "x@example.com"}, {"role": "owner"}, {"is_verified": False}])
def test_only_role_and_activity_can_be_changed(client, admin, session, change):
    user = UserFactory()

    assert client.patch(f"{ADMIN}/users/{user.id}", headers=admin.headers, json=change).status_code == 422


def test_every_admin_write_lands_in_the_audit_log(client, admin, sign_in):
    ada = sign_in("ada@example.com")
    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"role": "admin"})
    client.patch(f"{ADMIN}/users/{ada.user['id']}", headers=admin.headers, json={"is_active": False})
    client.patch(f"{ADMIN}/users/{admin.user['id']}", headers=admin.headers, json={"is_active": False})  # refused

    entries = client.get(f"{ADMIN}/audit-log", headers=admin.headers).get_json()["items"]

    assert [(e["action"], e["target_type"], e["target_id"], e["actor_id"]) for e in entries] == [
        ("user.update", "user", ada.user["id"], admin.user["id"]),
        ("user.update", "user", ada.user["id"], admin.user["id"]),
    ]
    assert (entries[0]["before"], entries[0]["after"]) == (
        {"role": "admin", "is_active": True},
        {"role": "admin", "is_active": False},
    )
    assert entries[1]["before"] == {"role": "customer", "is_active": True}
    assert entries[0]["created_at"] >= entries[1]["created_at"]


# --- payments, orders, events ---------------------------------------------------------------


@pytest.fixture
def market(client, sign_in, session):
    """Two buyers' orders in two stores; one paid through the webhook."""
    tea, pots = StoreFactory(currency="usd"), StoreFactory(currency="eur")
    ada, bob = sign_in("ada@example.com"), sign_in("bob@example.com")
    orders = []
    for buyer, product in ((ada, ProductFactory(store=tea, price=1200)), (bob, ProductFactory(store=pots, price=800))):
        body = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": shipping_address()}
        placed = client.post("/api/v1/orders", headers=buyer.headers, json=body)
        assert placed.status_code == 201, placed.get_json()
        orders.append(placed.get_json())
    payments = [
        PaymentFactory(order_id=o["id"], user_id=o["buyer_id"], amount=o["total"], currency=o["currency"])
        for o in orders
    ]
    paid = deliver(client, intent_event(payments[0], "succeeded", event_id="evt_paid"))
    assert paid.get_json()["outcome"] == "applied"
    return {"stores": (tea, pots), "orders": orders, "payments": payments, "buyers": (ada, bob)}


def test_payments_are_listed_and_filtered(client, admin, market):
    first, second = (payment.id for payment in market["payments"])
    ada = market["buyers"][0]

    assert ids(client.get(f"{ADMIN}/payments", headers=admin.headers)) == [second, first]
    assert ids(client.get(f"{ADMIN}/payments", headers=admin.headers, query_string={"status": "succeeded"})) == [first]
    assert ids(client.get(f"{ADMIN}/payments", headers=admin.headers, query_string={"user_id": ada.user["id"]})) == [
        first
    ]
    order_id = market["orders"][1]["id"]
    assert ids(client.get(f"{ADMIN}/payments", headers=admin.headers, query_string={"order_id": order_id})) == [second]


def test_a_payment_comes_with_its_webhook_trail(client, admin, market):
    payment = market["payments"][0]

    body = client.get(f"{ADMIN}/payments/{payment.id}", headers=admin.headers).get_json()

    assert (body["id"], body["status"]) == (payment.id, "succeeded")
    assert [(e["stripe_event_id"], e["outcome"]) for e in body["events"]] == [("evt_paid", "applied")]
    assert client.get(f"{ADMIN}/payments/999999", headers=admin.headers).status_code == 404


def test_payment_events_are_listed_by_type_and_outcome(client, admin, market):
    assert deliver(client, ignored_event("evt_other")).get_json()["outcome"] == "ignored"

    def events(**query) -> list[str]:
        response = client.get(f"{ADMIN}/payment-events", headers=admin.headers, query_string=query)
        return [event["stripe_event_id"] for event in response.get_json()["items"]]

    assert events() == ["evt_other", "evt_paid"]
    assert events(outcome="applied") == ["evt_paid"]
    assert events(type="customer.created") == ["evt_other"]


def test_all_orders_are_listed_by_status_and_store(client, admin, market):
    first, second = (order["id"] for order in market["orders"])

    assert ids(client.get(f"{ADMIN}/orders", headers=admin.headers)) == [second, first]
    assert ids(client.get(f"{ADMIN}/orders", headers=admin.headers, query_string={"status": "paid"})) == [first]
    store = market["stores"][1].id
    assert ids(client.get(f"{ADMIN}/orders", headers=admin.headers, query_string={"store_id": store})) == [second]


def test_the_numbers(client, admin, market, session):
    session.execute(update(Order).where(Order.id == market["orders"][1]["id"]).values(status="cancelled"))

    stats = client.get(f"{ADMIN}/stats", headers=admin.headers).get_json()

    assert (stats["users"], stats["stores"], stats["products"]) == (5, 2, 2)  # the admin, ada, bob, two store owners
    assert stats["orders_by_status"] == {"paid": 1, "cancelled": 1}
    assert stats["revenue"] == {"usd": 1200}


def test_the_numbers_cost_the_same_few_queries_however_big_the_market(client, admin, market, statements):
    statements.clear()
    client.get(f"{ADMIN}/stats", headers=admin.headers)
    small = len(statements)
    for _ in range(5):
        ProductFactory()
    statements.clear()
    client.get(f"{ADMIN}/stats", headers=admin.headers)

    assert len(statements) == small <= 5  # the token, the admin, three for the numbers


def test_admins_see_background_jobs_and_why_one_failed(client, admin, stranger, session):
    client.post("/api/v1/auth/otp/request", json={"email": "stranger@example.com"})
    wait_for_jobs(session.get_bind())
    session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == session.scalar(select(func.max(OutboxJob.id))))
        .values(status="failed", last_error="SMTPServerDisconnected: Connection unexpectedly closed")
    )

    failed = client.get(f"{ADMIN}/jobs", headers=admin.headers, query_string={"status": "failed"}).get_json()
    everything = client.get(f"{ADMIN}/jobs", headers=admin.headers).get_json()

    [job] = failed["items"]
    assert (job["job"], job["status"], job["last_error"]) == (
        "auth.send_sign_in_code",
        "failed",
        "SMTPServerDisconnected: Connection unexpectedly closed",
    )
    assert "payload" not in job  # a sign-in job's payload holds an email address
    assert len(everything["items"]) >= 2 and {item["status"] for item in everything["items"]} >= {"done", "failed"}
    assert client.get(f"{ADMIN}/jobs", headers=stranger.headers).status_code == 403
