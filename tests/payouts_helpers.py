"""Seller payouts for the tests (not a test module): the steps the frontend, the seller, the
buyer and Stripe take, over HTTP. `place_order` is the one way these tests place an order."""

import urllib.error
import urllib.request

from sqlalchemy import func, select

from nexus.jobs.outbox import OutboxJob
from nexus.payouts.models import PayoutAccount, Transfer
from nexus.stores.models import Product
from tests.conftest import eventually
from tests.factories import shipping_address
from tests.stripe_helpers import pay_at_stripe

CONNECT_WEBHOOK = "/api/v1/webhooks/stripe-connect"


def place_order(client, buyer, product: Product, quantity: int = 2) -> dict:
    """The buyer's order of `quantity` of `product`, placed over HTTP (this module's one way to
    place an order)."""
    body = {"items": [{"product_id": product.id, "quantity": quantity}], "shipping_address": shipping_address()}
    response = client.post("/api/v1/orders", headers=buyer.headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def order_as(client, who, order: dict) -> dict:
    return client.get(f"/api/v1/orders/{order['id']}", headers=who.headers).get_json()


def paid_order(client, buyer, product: Product, localstripe: str, quantity: int = 2) -> tuple[dict, dict]:
    """An order paid by card at localstripe, its webhook applied: (the order, its payment)."""
    order = place_order(client, buyer, product, quantity)
    started = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)
    assert started.status_code == 201, started.get_json()
    payment = started.get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    eventually(lambda: order_as(client, buyer, order)["status"] == "paid")
    return order, payment


def deliver(client, owner, order: dict) -> None:
    for status in ("fulfilled", "shipped", "delivered"):
        response = client.post(f"/api/v1/orders/{order['id']}/status", headers=owner.headers, json={"status": status})
        assert response.status_code == 200, response.get_json()


def delivered_order(client, buyer, owner, product: Product, localstripe: str, quantity: int = 2) -> tuple[dict, dict]:
    order, payment = paid_order(client, buyer, product, localstripe, quantity)
    deliver(client, owner, order)
    return order, payment


def start_onboarding(client, who, store_id: int):
    return client.post(f"/api/v1/stores/{store_id}/payouts/onboarding", headers=who.headers)


def visit(url: str) -> int:
    """The seller's browser following the link; the status of Stripe's answer (a redirect)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        return answer.code
    return 200


def payouts(client, who, store_id: int) -> dict:
    response = client.get(f"/api/v1/stores/{store_id}/payouts", headers=who.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def onboard(client, owner, store_id: int) -> str:
    """The owner onboards the store all the way: the link, Stripe's page, its `account.updated`
    applied. The account's id."""
    link = start_onboarding(client, owner, store_id).get_json()
    assert visit(link["url"]) == 302
    account = eventually(lambda: (body := payouts(client, owner, store_id))["account"]["payouts_enabled"] and body)
    return account["account"]["stripe_account_id"]


def opened_account(client, owner, store_id: int, session) -> str:
    """The store's account opened at Stripe (the link asked for, never followed)."""
    assert start_onboarding(client, owner, store_id).status_code == 200
    return session.scalar(select(PayoutAccount.stripe_account_id).where(PayoutAccount.store_id == store_id))


def transfer_of(session, order: dict) -> Transfer:
    session.expire_all()
    return session.scalar(select(Transfer).where(Transfer.order_id == order["id"]))


def refund(client, admin, payment: dict, amount: int | None = None) -> dict:
    body = {} if amount is None else {"amount": amount}
    response = client.post(f"/api/v1/admin/payments/{payment['id']}/refund", headers=admin.headers, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def deliver_connect(client, stripe_connect, event: dict, **signing):
    payload, signature = stripe_connect.sign(event, **signing)
    return client.post(
        CONNECT_WEBHOOK, data=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


def jobs_named(session, name: str) -> int:
    return session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.job == name))
