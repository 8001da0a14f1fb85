"""Every operation of the OpenAPI document, called with input schemathesis generates from it.

The document is the app's own `/api/openapi.json`. Each operation is called as a customer (who
owns a store and bought from another) and as an admin, valid and invalid input alike, with path
ids that often name real rows. Every answer must be: no 5xx, a status the operation itself lists
(flask-smorest's catch-all `default` response is taken out), the documented content type and
headers, a body matching its documented schema, 401 without a token where one is needed, 405 for
a method the path does not have, and a 4xx for input the document says is invalid.

Nothing is left out. The Stripe webhook is fuzzed like the rest: no generated body carries a valid
signature, so it must answer every call with its documented 400.
"""

import copy
from datetime import date

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import update

from nexus import create_app
from nexus.auth.tokens import issue_tokens
from nexus.database import utcnow
from nexus.extensions import db
from nexus.orders.models import Order
from nexus.users.models import User
from tests.conftest import app_environ
from tests.factories import AdminFactory, ProductFactory, StoreFactory, UserFactory, shipping_address
from tests.stripe_helpers import WEBHOOK, deliver, ignored_event

CUSTOMER, ADMIN = 1, 2
# Tables are emptied and identities restarted after every test, so the market below gets the
# same ids each time (it checks so); path ids are drawn from these half the time.
IDS = {
    "user_id": [1, 2, 3, 4],
    "store_id": [1, 2],
    "product_id": [1, 2, 3, 4, 5],
    "order_id": [1, 2, 3],
    "payment_id": [1],
    "event_id": [1],
    "report_id": [1],
}
SETTINGS = settings(
    max_examples=50,
    deadline=None,  # a call that pays through localstripe takes its time; speed is not checked here
    derandomize=True,  # the same inputs on every run and machine
    database=None,
    # `market` is built once per operation, not per example: the examples of an operation share it
    # (and what they changed in it), which is what a live API sees too.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Left out: a request the document allows may still be refused, with a documented 4xx, for what a
# schema cannot say (a cursor this list did not sign, min_price above max_price, a product of your
# own store, a spent code, an order not yours).
UNCHECKED = [positive_data_acceptance]


def strict_statuses(document: dict) -> dict:
    """The document without the catch-all `default` response, so that every status an operation
    answers must be one it lists."""
    document = copy.deepcopy(document)
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("default", None)
    return document


def load_schema():
    # Collected before any fixture runs; the document needs no database, so an app without one serves it.
    document = create_app(app_environ("sqlite://")).test_client().get("/api/openapi.json").get_json()
    config = schemathesis.Config.from_dict(
        {
            "dictionaries": {name: {"values": values} for name, values in IDS.items()},
            "parameters": {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in IDS},
            # Calls carry the caller's own token (`call_as`); ignored_auth tries them without.
            "generation": {"with-security-parameters": False},
        }
    )
    return schemathesis.openapi.from_dict(strict_statuses(document), config=config)


# Dates across the calendar, and often in its first or last year, where date arithmetic overflows.
EDGES_OF_TIME = st.dates(max_value=date(1, 12, 31)) | st.dates(min_value=date(9999, 1, 1))
schemathesis.openapi.format("date", (st.dates() | EDGES_OF_TIME).map(date.isoformat))
schema = load_schema()


@pytest.fixture
def market(client, session, bearer_for) -> None:
    """A customer with a store, who bought in someone else's: an order with its Stripe payment
    open, one paid, one not paid for yet; a Stripe event on record; a sales report."""
    customer, _admin, seller, _bystander = UserFactory(), AdminFactory(), UserFactory(), UserFactory()
    own = StoreFactory(owner=customer, currency="usd")
    theirs = StoreFactory(owner=seller, currency="usd")
    ProductFactory.create_batch(2, store=own)
    buyer = bearer_for(customer.id)
    orders = [
        client.post(
            "/api/v1/orders",
            headers=buyer,
            json={"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": shipping_address()},
        )
        for product in ProductFactory.create_batch(3, store=theirs)
    ]
    assert client.post("/api/v1/orders/1/payment", headers=buyer).status_code == 201
    # Paid with no Stripe charge behind it: refunding a payment localstripe never charged is a 502.
    session.execute(update(Order).where(Order.id == 2).values(status="paid", paid_at=utcnow()))
    session.commit()
    assert deliver(client, ignored_event("evt_1")).status_code == 200
    report = client.post(
        f"/api/v1/stores/{own.id}/reports", headers=buyer, json={"date_from": "2026-01-01", "date_to": "2026-12-31"}
    )
    assert (customer.id, seller.id, own.id, theirs.id, report.get_json()["id"]) == (CUSTOMER, 3, 1, 2, 1)
    assert [(order.status_code, order.get_json()["id"]) for order in orders] == [(201, n) for n in IDS["order_id"]]


def call_as(user_id: int, case, app: Flask) -> None:
    """Call with new tokens of the user's, so that a generated logout revokes only this call's."""
    with app.app_context():
        tokens = issue_tokens(db.session.get(User, user_id))
        db.session.remove()
    token = tokens["refresh_token"] if case.path == "/api/v1/auth/refresh" else tokens["access_token"]
    # The schema was loaded before the test app existed; checks that call again (ignored_auth) use it too.
    case.operation.schema.app = case.operation.app = app
    response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=UNCHECKED)
    if (case.method.upper(), case.path) == ("POST", WEBHOOK):
        assert response.status_code == 400, "a body nobody signed was taken"


@schema.parametrize()
@SETTINGS
def test_as_a_customer(case, app, market):
    call_as(CUSTOMER, case, app)


@schema.parametrize()
@SETTINGS
def test_as_an_admin(case, app, market):
    call_as(ADMIN, case, app)


# What the fuzzing above found, pinned so that it stays fixed whatever the draw.
FOUND = {
    "an id past INTEGER in a path": ("GET", "/api/v1/stores/99999999999999999999", None, 404),
    "an id past INTEGER in a query": ("GET", "/api/v1/products?store_id=9223372036854775808", None, 422),
    "an id past INTEGER in a body": (
        "POST",
        "/api/v1/orders",
        {"items": [{"product_id": 2**63, "quantity": 1}], "shipping_address": shipping_address()},
        422,
    ),
    "a NUL in a query": ("GET", "/api/v1/stores?q=%00", None, 422),
    "a NUL in a body": ("PATCH", "/api/v1/stores/1", {"description": "\x00"}, 422),
    "a report ending past the calendar": (
        "POST", "/api/v1/stores/1/reports", {"date_from": "9999-01-01", "date_to": "9999-01-01"}, 422
    ),
    "a body that is not JSON": ("POST", "/api/v1/stores", b"{", 400),
    "a number for a boolean": ("PATCH", "/api/v1/stores/1", {"is_active": 0}, 422),
    "an unknown query parameter": ("GET", "/api/v1/products?sotr=price_asc", None, 422),
    "a search longer than 100 with its spaces": ("GET", "/api/v1/products?q=" + "+" * 100 + "tea", None, 422),
    "a PATCH without a body": ("PATCH", "/api/v1/profile/me", None, 200),
}  # fmt: skip


@pytest.mark.parametrize(("method", "url", "body", "status"), FOUND.values(), ids=FOUND.keys())
def test_what_the_fuzzing_found_stays_fixed(client, market, bearer_for, method, url, body, status):
    sent = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    response = client.open(url, method=method, headers=bearer_for(CUSTOMER), **sent)

    assert response.status_code == status, response.get_json()
