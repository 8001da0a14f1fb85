"""Order emails, as the contract lists them: who gets each, what it says (plain text and HTML,
the order's number in the subject), and that each is sent once however often its cause is
reported or its job delivered. Orders are paid through signed webhooks, moved, cancelled and
refunded over HTTP, expired through the CLI; one email is read from a real SMTP server."""

import uuid
from email.header import decode_header, make_header

import pytest
from sqlalchemy import select

from nexus import create_app
from nexus.extensions import mail
from nexus.jobs import outbox as jobs
from nexus.jobs.outbox import OutboxJob
from nexus.users.models import User
from tests.conftest import app_environ, eventually, expire_stale, wait_for_jobs
from tests.factories import PaymentFactory, ProductFactory, StoreFactory, shipping_address
from tests.stripe_helpers import (
    STRIPE_WEBHOOK_SECRET,
    deliver,
    intent_event,
    pay_at_stripe,
    refund_event,
    register_webhook,
)
from tests.test_emails import mail_app, plain_text
from tests.test_worker import QUEUE_URL, start_worker, stop

SENDER = "Nexus <no-reply@localhost>"  # MAIL_DEFAULT_SENDER of the test settings
ADDRESS = shipping_address(line2="Apartment 804", postal_code="00000", phone="+971 50 123 4567")


def about(outbox, order: dict) -> list:
    """The emails sent about `order` (every one names it in its subject), oldest first."""
    return [message for message in outbox if f"#{order['id']}" in message.subject]


def the_email(outbox, order: dict, *, to: str):
    """The one email about `order` to `to`, checked to be from MAIL_DEFAULT_SENDER with a text
    and an HTML part."""
    [message] = [message for message in about(outbox, order) if message.recipients == [to]]
    assert message.sender == SENDER
    assert message.body and message.html and message.html.startswith("<!doctype html>")
    return message


def pay(client, order: dict, **event):
    """Pay the order as Stripe would report it: a signed `payment_intent.succeeded`."""
    payment = PaymentFactory(
        order_id=order["id"], user_id=order["buyer_id"], amount=order["total"], currency=order["currency"]
    )
    assert deliver(client, intent_event(payment, "succeeded", **event)).get_json()["outcome"] == "applied"
    return payment


def move(client, who, order: dict, *statuses: str) -> None:
    for status in statuses:
        response = client.post(f"/api/v1/orders/{order['id']}/status", headers=who.headers, json={"status": status})
        assert response.status_code == 200, response.get_json()


@pytest.fixture
def addressed(client, buyer, teapot) -> dict:
    """The buyer's order of 2 teapots (30.00 usd) to a full address, with a note, unpaid."""
    body = {"items": [{"product_id": teapot.id, "quantity": 2}], "shipping_address": ADDRESS, "note": "Gift wrap"}
    response = client.post("/api/v1/orders", headers=buyer.headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- each email -----------------------------------------------------------------------------


def test_a_paid_order_sends_its_buyer_a_receipt_with_its_lines_and_total(client, buyer, addressed, teapot, outbox):
    pay(client, addressed)

    receipt = the_email(outbox, addressed, to="buyer@example.com")
    assert receipt.subject == f"Your receipt for Nexus order #{addressed['id']}"
    assert f"2 x {teapot.name} at 15.00 USD: 30.00 USD" in receipt.body
    assert "Total: 30.00 USD" in receipt.body
    assert "Marina Walk 12" in receipt.body
    assert f"2 &times; {teapot.name}" in receipt.html and "30.00 USD" in receipt.html


def test_a_paid_order_sends_the_stores_owner_its_lines_address_and_buyers_email(
    client, owner, addressed, teapot, outbox
):
    pay(client, addressed)

    to_fulfil = the_email(outbox, addressed, to="owner@example.com")
    assert to_fulfil.subject == f"Order #{addressed['id']} is paid: ready to fulfil"
    for part in (to_fulfil.body, to_fulfil.html):
        for said in (
            f"2 x {teapot.name}" if part is to_fulfil.body else f"2 &times; {teapot.name}",
            "30.00 USD",
            "Ada Lovelace",
            "Marina Walk 12",
            "Apartment 804",
            "00000 Dubai",
            "United Arab Emirates",
            "Phone: +971 50 123 4567",
            "Buyer: buyer@example.com",
            "Note from the buyer: Gift wrap",
        ):
            assert said in part, (said, part)


def test_paying_sends_two_emails_the_receipt_and_the_owners(client, addressed, outbox):
    pay(client, addressed)

    assert sorted(message.recipients[0] for message in about(outbox, addressed)) == [
        "buyer@example.com",
        "owner@example.com",
    ]


def test_shipping_an_order_tells_its_buyer(client, owner, order, outbox):
    pay(client, order)
    outbox.clear()

    move(client, owner, order, "fulfilled", "shipped")

    shipped = the_email(outbox, order, to="buyer@example.com")
    assert shipped.subject == f"Your Nexus order #{order['id']} has shipped"
    assert "on its way" in shipped.body and "on its way" in shipped.html
    assert len(about(outbox, order)) == 1  # fulfilling it told nobody


def test_delivering_an_order_tells_its_buyer(client, admin, order, outbox):
    pay(client, order)
    move(client, admin, order, "fulfilled", "shipped")
    outbox.clear()

    move(client, admin, order, "delivered")

    delivered = the_email(outbox, order, to="buyer@example.com")
    assert delivered.subject == f"Your Nexus order #{order['id']} was delivered"
    assert len(about(outbox, order)) == 1


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_an_order_cancelled_by_its_store_or_an_admin_tells_its_buyer(client, order, teapot, outbox, request, who):
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=request.getfixturevalue(who).headers)
    assert response.status_code == 200
    says = {"owner": f"{teapot.store.name} cancelled your order", "admin": "Nexus cancelled your order"}[who]

    cancelled = the_email(outbox, order, to="buyer@example.com")
    assert cancelled.subject == f"Your Nexus order #{order['id']} was cancelled"
    assert says in cancelled.body and "Nothing was charged" in cancelled.body
    assert says in cancelled.html


def test_a_buyer_cancelling_their_own_order_is_sent_nothing(client, buyer, order, outbox):
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers).status_code == 200

    assert about(outbox, order) == []


def test_an_order_expired_unpaid_tells_its_buyer(app, order, outbox):
    assert "expired 1 orders" in expire_stale(app, after_minutes=31)

    expired = the_email(outbox, order, to="buyer@example.com")
    assert expired.subject == f"Your Nexus order #{order['id']} expired unpaid"
    assert "not paid in time" in expired.body and "not paid in time" in expired.html


def test_refunds_by_webhook_tell_the_buyer_how_much_each_time(client, order, outbox):
    payment = pay(client, order)
    outbox.clear()

    deliver(client, refund_event(payment, 1000))
    deliver(client, refund_event(payment, 3000))

    by_subject = {message.subject: message for message in about(outbox, order)}  # two jobs: in either order
    first = by_subject.pop(f"Nexus order #{order['id']}: 10.00 USD refunded")
    second = by_subject.pop(f"Nexus order #{order['id']}: 20.00 USD refunded")
    assert by_subject == {}
    assert "We refunded 10.00 USD" in first.body and "10.00 USD of its 30.00 USD is refunded so far" in first.body
    assert "refunded in full (30.00 USD)" in second.body and "refunded in full" in second.html
    assert first.recipients == second.recipients == ["buyer@example.com"]


@pytest.fixture
def paid_at_stripe(client, buyer, order, localstripe, live_server) -> dict:
    """The order paid by card at localstripe, whose webhook told the app; its payment."""
    register_webhook(localstripe, f"{live_server}/api/v1/webhooks/stripe")
    payment = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers).get_json()["payment"]
    pay_at_stripe(localstripe, payment["provider_payment_id"])
    eventually(lambda: client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers).get_json()["paid_at"])
    return payment


def test_an_admins_partial_then_full_refund_through_stripe_sends_one_email_each(
    client, admin, order, paid_at_stripe, outbox
):
    outbox.clear()
    url = f"/api/v1/admin/payments/{paid_at_stripe['id']}/refund"

    assert client.post(url, headers=admin.headers, json={"amount": 500}).status_code == 200
    assert client.post(url, headers=admin.headers, json={}).status_code == 200

    assert sorted(message.subject for message in about(outbox, order)) == [
        f"Nexus order #{order['id']}: 25.00 USD refunded",
        f"Nexus order #{order['id']}: 5.00 USD refunded",
    ]
    assert all(message.recipients == ["buyer@example.com"] for message in about(outbox, order))


# --- what people typed, and money -------------------------------------------------------------


def test_what_people_typed_is_escaped_in_the_html_and_kept_in_the_text(client, buyer, owner, session, outbox):
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd", name="<b>Pots</b>")
    product = ProductFactory(store=store, name="Tea & <i>pot</i>", price=1500, stock=3)
    address = shipping_address(name='<script>alert("x")</script>')
    body = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": address}
    order = client.post("/api/v1/orders", headers=buyer.headers, json=body).get_json()

    pay(client, order)

    for to in ("buyer@example.com", "owner@example.com"):
        message = the_email(outbox, order, to=to)
        assert "<script>" not in message.html and "<i>pot</i>" not in message.html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in message.html
        assert "Tea &amp; &lt;i&gt;pot&lt;/i&gt;" in message.html
        assert '<script>alert("x")</script>' in message.body and "Tea & <i>pot</i>" in message.body


@pytest.mark.parametrize(("currency", "price", "written"), [("kwd", 1250, "1.250 KWD"), ("jpy", 1500, "1,500 JPY")])
def test_amounts_are_written_in_the_currencys_minor_unit(
    client, buyer, owner, session, outbox, currency, price, written
):
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency=currency)
    product = ProductFactory(store=store, price=price, stock=3)
    body = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": shipping_address()}
    order = client.post("/api/v1/orders", headers=buyer.headers, json=body).get_json()

    pay(client, order)

    assert f"Total: {written}" in the_email(outbox, order, to="buyer@example.com").body


# --- once each ------------------------------------------------------------------------------


def test_a_redelivered_webhook_sends_nothing_new(client, order, outbox):
    payment = pay(client, order, event_id="evt_paid_once")
    refund = refund_event(payment, 1000, event_id="evt_refund_once")
    deliver(client, refund)
    sent = len(about(outbox, order))

    again = [deliver(client, intent_event(payment, "succeeded", event_id="evt_paid_once")), deliver(client, refund)]

    assert [response.get_json()["duplicate"] for response in again] == [True, True]
    assert sent == 3  # receipt, owner's, refund
    assert len(about(outbox, order)) == sent


def test_the_same_news_by_two_paths_sends_once(client, order, outbox):
    """Stripe's webhook and the reconciliation report the same payment, then the same refund,
    under different event ids: the second of each finds it applied, and writes no email."""
    duplicate = {"received": True, "duplicate": False, "outcome": "duplicate"}
    payment = pay(client, order)
    assert deliver(client, intent_event(payment, "succeeded")).get_json() == duplicate
    assert len(about(outbox, order)) == 2  # the receipt and the owner's

    assert deliver(client, refund_event(payment, 1000)).get_json()["outcome"] == "applied"
    assert deliver(client, refund_event(payment, 1000)).get_json() == duplicate
    assert len(about(outbox, order)) == 3


@pytest.fixture
def unrun(database_url) -> object:
    """An app whose jobs wait on a Redis queue no worker reads: they run only when the test
    runs them."""
    queued = {
        "BROKER_URL": "redis://127.0.0.1:6379/15",
        "BROKER_NAMESPACE": f"nexus-test-{uuid.uuid4().hex[:8]}",
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
    }
    return create_app(app_environ(database_url, **queued))


def test_an_email_job_delivered_twice_sends_once(unrun, order, session):
    pay(unrun.test_client(), order)
    [receipt] = session.scalars(select(OutboxJob.id).where(OutboxJob.job == "notifications.order_paid")).all()

    with unrun.app_context(), mail.record_messages() as sent:
        jobs.run(receipt)
        jobs.run(receipt)  # a second delivery of the same message

    assert [message.subject for message in sent] == [f"Your receipt for Nexus order #{order['id']}"]
    assert session.scalar(select(OutboxJob.status).where(OutboxJob.id == receipt)) == "done"


def test_each_email_is_one_outbox_row_written_with_its_cause(client, owner, order, session, test_engine):
    pay(client, order)
    move(client, owner, order, "fulfilled", "shipped", "delivered")
    wait_for_jobs(test_engine)

    written = session.scalars(select(OutboxJob.job).where(OutboxJob.job.like("notifications.%")).order_by(OutboxJob.id))
    assert list(written) == [
        "notifications.order_paid",
        "notifications.order_to_fulfil",
        "notifications.order_shipped",
        "notifications.order_delivered",
    ]


# --- end to end -------------------------------------------------------------------------------


def test_the_owner_reads_the_order_to_fulfil_from_a_real_mail_server(database_url, smtp, buyer, teapot):
    port, inbox = smtp
    client = mail_app(database_url, port, STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET).test_client()
    body = {"items": [{"product_id": teapot.id, "quantity": 2}], "shipping_address": ADDRESS}
    order = client.post("/api/v1/orders", headers=buyer.headers, json=body).get_json()

    pay(client, order)

    delivered = eventually(lambda: [m for m in inbox.messages if m["To"] == "owner@example.com"])
    [to_fulfil] = delivered
    assert to_fulfil["Subject"] == f"Order #{order['id']} is paid: ready to fulfil"
    assert str(make_header(decode_header(to_fulfil["From"]))) == SENDER
    assert {part.get_content_type() for part in to_fulfil.walk()} >= {"text/plain", "text/html"}
    text = plain_text(to_fulfil)
    for said in (f"2 x {teapot.name} at 15.00 USD: 30.00 USD", "Marina Walk 12", "Buyer: buyer@example.com"):
        assert said in text
    eventually(lambda: len(inbox.messages) == 2)  # and the buyer's receipt


@pytest.mark.postgres  # the deployed worker on the Redis queue, as tests/test_worker.py runs it
def test_the_job_worker_as_deployed_sends_the_order_emails(database_url, smtp, buyer, teapot):
    port, inbox = smtp
    namespace = f"nexus-test-{uuid.uuid4().hex[:8]}"
    worker = start_worker(database_url, namespace, port)
    try:
        queued = {
            "BROKER_URL": QUEUE_URL,
            "BROKER_NAMESPACE": namespace,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        }
        web = create_app(app_environ(database_url, **queued)).test_client()  # hands its jobs to the worker
        body = {"items": [{"product_id": teapot.id, "quantity": 1}], "shipping_address": ADDRESS}
        order = web.post("/api/v1/orders", headers=buyer.headers, json=body).get_json()

        pay(web, order)

        delivered = eventually(lambda: len(inbox.messages) == 2 and inbox.messages, seconds=30)
    finally:
        stop(worker)
    assert sorted((message["To"], message["Subject"]) for message in delivered) == [
        ("buyer@example.com", f"Your receipt for Nexus order #{order['id']}"),
        ("owner@example.com", f"Order #{order['id']} is paid: ready to fulfil"),
    ]
