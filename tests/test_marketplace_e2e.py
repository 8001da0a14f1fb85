"""The marketplace end to end, as its people and Stripe meet it: a seller onboards through an
Account Link and `account.updated`, a buyer orders to an address and pays at localstripe, the
owner reads the order to fulfil from a real SMTP server and delivers it, the seller's transfer
is made with the platform's fee kept, and a partial refund reverses the seller's share of it.

One app serves it all over real HTTP, as deployed: localstripe and the Connect stand-in call its
two webhooks, its jobs send through aiosmtpd and make the transfers at the stand-in."""

import threading
from collections.abc import Iterator
from email.message import Message

import pytest
from werkzeug.serving import make_server

from nexus import create_app
from tests.conftest import FRONTEND_URL, Inbox, app_environ, eventually, free_port
from tests.payouts_helpers import deliver, onboard, order_as, payouts, place_order, refund
from tests.stripe_connect import StripeConnect
from tests.stripe_helpers import STRIPE_CONNECT_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET, pay_at_stripe, register_webhook
from tests.test_emails import plain_text


@pytest.fixture
def marketplace(database_url, localstripe, live_server, stripe_connect: StripeConnect, smtp) -> Iterator:
    """`(client, inbox)`: the app with a real mail server, served on a port that localstripe's and
    the stand-in's webhooks call; put back to the suite's own live server afterwards."""
    smtp_port, inbox = smtp
    app = create_app(
        app_environ(
            database_url,
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=str(smtp_port),
            MAIL_USE_TLS="false",
            STRIPE_SECRET_KEY="sk_test_nexus",
            STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
            STRIPE_CONNECT_WEBHOOK_SECRET=STRIPE_CONNECT_WEBHOOK_SECRET,
            STRIPE_API_BASE=stripe_connect.url,
            FRONTEND_URL=FRONTEND_URL,
        )
    )
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = f"http://127.0.0.1:{server.server_port}"
    register_webhook(localstripe, f"{served}/api/v1/webhooks/stripe")
    stripe_connect.webhook_url = f"{served}/api/v1/webhooks/stripe-connect"
    try:
        yield app.test_client(), inbox
    finally:
        stripe_connect.webhook_url = None
        register_webhook(localstripe, f"{live_server}/api/v1/webhooks/stripe")
        server.shutdown()


def mail_to(inbox: Inbox, address: str, subject: str) -> Message:
    """The one email to `address` with `subject`, once the job has sent it."""
    found = eventually(lambda: [m for m in inbox.messages if (m["To"], m["Subject"]) == (address, subject)])
    assert len(found) == 1, f"{len(found)} emails to {address}: {subject!r}"
    return found[0]


def test_a_seller_onboards_sells_to_an_address_is_paid_its_share_and_a_refund_reverses_part_of_it(
    marketplace, owner, buyer, admin, vase, localstripe, stripe_connect
):
    client, inbox = marketplace
    account = onboard(client, owner, vase.store_id)  # the Account Link followed, account.updated applied

    order = place_order(client, buyer, vase, quantity=2)  # 2 x 50.00 usd = 10000, to tests.factories' address
    assert (order["total"], order["shipping_address"]["country"], order["buyer_email"]) == (
        10000,
        "AE",
        "buyer@example.com",
    )
    started = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers).get_json()
    pay_at_stripe(localstripe, started["payment"]["provider_payment_id"])  # localstripe's webhook pays it
    eventually(lambda: order_as(client, buyer, order)["status"] == "paid")

    to_fulfil = plain_text(mail_to(inbox, "owner@example.com", f"Order #{order['id']} is paid: ready to fulfil"))
    for said in (f"2 x {vase.name} at 50.00 USD: 100.00 USD", order["shipping_address"]["line1"], "buyer@example.com"):
        assert said in to_fulfil
    mail_to(inbox, "buyer@example.com", f"Your receipt for Nexus order #{order['id']}")

    deliver(client, owner, order)  # fulfilled, shipped, delivered: the transfer falls due and is made
    made = eventually(lambda: stripe_connect.transfers_to(account))
    assert [(t["amount"], t["currency"], t["transfer_group"]) for t in made] == [(9000, "usd", f"order_{order['id']}")]
    transfers = f"/api/v1/stores/{vase.store_id}/transfers"
    [transfer] = eventually(  # recorded once Stripe has answered
        lambda: [t for t in client.get(transfers, headers=owner.headers).get_json()["items"] if t["status"] == "paid"]
    )
    assert (transfer["amount"], transfer["fee"], transfer["stripe_transfer_id"]) == (9000, 1000, made[0]["id"])
    mail_to(inbox, "buyer@example.com", f"Your Nexus order #{order['id']} was delivered")

    refund(client, admin, started["payment"], 5000)  # kept 5000: fee 500, the seller's share 4500
    eventually(lambda: stripe_connect.transfers[made[0]["id"]]["reversals"]["data"])
    assert [r["amount"] for r in stripe_connect.transfers[made[0]["id"]]["reversals"]["data"]] == [4500]
    shown = eventually(lambda: (body := payouts(client, owner, vase.store_id))["reversed"] and body)
    assert (shown["transferred"], shown["reversed"], shown["pending"]) == (9000, 4500, 0)
    mail_to(inbox, "buyer@example.com", f"Nexus order #{order['id']}: 50.00 USD refunded")

    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert len(subjects) == len(set(subjects)) == 5, subjects  # to fulfil, receipt, shipped, delivered, refunded
