"""Money never moves twice, however late a retry comes, and a seller is never paid a share the
buyer got back. On Postgres, with the Blueprint's worker (`flask worker`, its own process, the
Redis queue) making transfers and reversals at the Stripe stand-in: answers lost after Stripe
acted, idempotency keys forgotten as Stripe forgets them after a day, an account paused and
enabled again, a refund made in Stripe's dashboard whose webhook never came."""

import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from werkzeug.serving import make_server

from nexus import create_app
from nexus.jobs.outbox import OutboxJob
from nexus.payments.models import Refund
from tests.conftest import FRONTEND_URL, app_environ, eventually, free_port
from tests.payouts_helpers import deliver, onboard, order_as, place_order, refund, transfer_of
from tests.stripe_connect import StripeConnect
from tests.stripe_helpers import (
    STRIPE_CONNECT_WEBHOOK_SECRET,
    STRIPE_WEBHOOK_SECRET,
    DownWebhook,
    charge_at_stripe,
    pay_at_stripe,
    refunds_at_stripe,
    register_webhook,
    stripe_post,
)
from tests.test_worker import QUEUE_URL, start_worker, stop

pytestmark = pytest.mark.postgres


@dataclass
class Stack:
    app: Flask  # the web side, served on a port that Stripe's webhooks call
    client: object
    start_worker: Callable[[], subprocess.Popen]  # the Blueprint's worker, started anew
    worker: subprocess.Popen | None = None

    def settled(self, session, seconds: float = 60) -> None:
        """Until the worker has no job left to run (done, or failed for good)."""
        pending = select(func.count()).select_from(OutboxJob).where(OutboxJob.status == "pending")
        eventually(lambda: session.scalar(pending) == 0, seconds)

    def command(self, *args: str) -> str:
        result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def stack(database_url, localstripe, live_server, stripe_connect: StripeConnect, smtp, namespace) -> Iterator[Stack]:
    """The web app handing its jobs to Redis, served where localstripe's and the stand-in's
    webhooks call it, and the Blueprint's worker running them against the stand-in."""
    stripe = {
        "STRIPE_SECRET_KEY": "sk_test_nexus",
        "STRIPE_API_BASE": stripe_connect.url,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "STRIPE_CONNECT_WEBHOOK_SECRET": STRIPE_CONNECT_WEBHOOK_SECRET,
    }
    queue = {"BROKER_URL": QUEUE_URL, "BROKER_NAMESPACE": namespace}
    app = create_app(app_environ(database_url, FRONTEND_URL=FRONTEND_URL, **stripe, **queue))
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = f"http://127.0.0.1:{server.server_port}"
    register_webhook(localstripe, f"{served}/api/v1/webhooks/stripe")
    stripe_connect.webhook_url = f"{served}/api/v1/webhooks/stripe-connect"
    stack = Stack(app, app.test_client(), lambda: start_worker(database_url, namespace, smtp[0], **stripe))
    stack.worker = stack.start_worker()
    try:
        yield stack
    finally:
        stop(stack.worker)
        stripe_connect.webhook_url = None
        register_webhook(localstripe, f"{live_server}/api/v1/webhooks/stripe")
        server.shutdown()


@pytest.fixture
def namespace() -> str:
    """Queue keys of this test only, so no other run's messages reach its worker."""
    return f"nexus-test-{uuid.uuid4().hex[:8]}"


def paid(stack: Stack, buyer, product, localstripe: str) -> tuple[dict, dict]:
    """An order of 2 (10000 usd for the vase) paid by card at localstripe: (order, payment)."""
    order = place_order(stack.client, buyer, product, quantity=2)
    started = stack.client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers).get_json()
    pay_at_stripe(localstripe, started["payment"]["provider_payment_id"])
    eventually(lambda: order_as(stack.client, buyer, order)["status"] == "paid")
    return order, started["payment"]


def a_day_later(session, stripe_connect: StripeConnect) -> None:
    """As a day on: Stripe has forgotten its idempotency keys, and every move Nexus noted is long
    past the time it could still be in flight."""
    stripe_connect.forget_idempotency_keys()
    session.execute(text(f"UPDATE transfers SET {', '.join(f'{noted} = {noted} - {A_DAY}' for noted in NOTED)}"))


NOTED, A_DAY = ("attempted_at", "reversal_attempted_at"), "interval '1 day'"


def pause(stripe_connect: StripeConnect, account_id: str) -> None:
    """Stripe asks the seller for more: transfers and payouts off, and its webhook says so."""
    stripe_connect.require(account_id, "external_account")
    assert stripe_connect.deliver(stripe_connect.account_updated(account_id)) == 200


def enable(stripe_connect: StripeConnect, account_id: str) -> None:
    stripe_connect.finish_onboarding(account_id)
    assert stripe_connect.deliver(stripe_connect.account_updated(account_id)) == 200


def test_a_transfer_whose_answer_was_lost_is_made_once_after_a_pause_and_a_forgotten_key(
    stack, owner, buyer, vase, localstripe, stripe_connect, session
):
    account = onboard(stack.client, owner, vase.store_id)
    stripe_connect.lose_answers_to("transfers.create", 1000)  # Stripe makes it; no answer ever comes back
    order, _ = paid(stack, buyer, vase, localstripe)

    deliver(stack.client, owner, order)
    eventually(lambda: stripe_connect.transfers_to(account), seconds=30)  # made at Stripe
    pause(stripe_connect, account)
    stack.settled(session)
    a_day_later(session, stripe_connect)
    stripe_connect.answer_again()
    enable(stripe_connect, account)  # its waiting transfers are handed to jobs again
    stack.settled(session)
    stack.command("payouts", "reconcile")

    [made] = stripe_connect.transfers_to(account)
    transfer = transfer_of(session, order)
    assert (transfer.stripe_transfer_id, transfer.status, transfer.amount) == (made["id"], "paid", 9000)


def test_a_transfer_sent_then_canceled_by_a_full_refund_is_found_and_reversed_in_full(
    stack, owner, buyer, admin, vase, localstripe, stripe_connect, session
):
    account = onboard(stack.client, owner, vase.store_id)
    stripe_connect.lose_answers_to("transfers.create", 1000)
    order, payment = paid(stack, buyer, vase, localstripe)
    deliver(stack.client, owner, order)
    eventually(lambda: stripe_connect.transfers_to(account), seconds=30)
    pause(stripe_connect, account)  # the job stops trying; the transfer waits, sent and never answered
    stack.settled(session)

    refund(stack.client, admin, payment)  # all of it: here, the transfer not made is canceled
    stripe_connect.answer_again()
    stack.command("payouts", "reconcile")  # finds what Stripe made, and takes it all back
    stack.settled(session)

    [made] = stripe_connect.transfers_to(account)
    assert stripe_connect.transfers[made["id"]]["amount_reversed"] == 9000
    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount, transfer.amount_reversed) == ("reversed", 9000, 9000)


def test_a_reversal_whose_answer_was_lost_is_made_once_after_its_key_is_forgotten(
    stack, owner, buyer, admin, vase, localstripe, stripe_connect, session
):
    account = onboard(stack.client, owner, vase.store_id)
    order, payment = paid(stack, buyer, vase, localstripe)
    deliver(stack.client, owner, order)
    [made] = eventually(lambda: stripe_connect.transfers_to(account), seconds=30)
    stripe_connect.lose_answers_to("transfer_reversals.create", 3)  # the call and stripe-python's two retries

    refund(stack.client, admin, payment, 5000)  # the seller's share of it: 4500
    eventually(lambda: stripe_connect.transfers[made["id"]]["amount_reversed"], seconds=30)
    stop(stack.worker)  # before the job's retry (its first try's answers take 1.5 s to be lost, then 1 s of backoff)
    a_day_later(session, stripe_connect)
    stack.worker = stack.start_worker()  # the job's retry, a day later
    stack.settled(session)
    stack.command("payouts", "reconcile")

    at_stripe = stripe_connect.transfers[made["id"]]
    assert [r["amount"] for r in at_stripe["reversals"]["data"]] == [4500]
    transfer = transfer_of(session, order)
    assert (transfer.amount_reversed, transfer.status, transfer.reversal_attempted_at) == (
        4500,
        "partially_reversed",
        None,
    )


def test_a_refund_made_in_stripes_dashboard_whose_webhook_was_lost_lowers_the_sellers_transfer(
    stack, owner, buyer, vase, localstripe, stripe_connect, session
):
    account = onboard(stack.client, owner, vase.store_id)
    order, payment = paid(stack, buyer, vase, localstripe)
    down = DownWebhook()
    try:
        register_webhook(localstripe, down.url)  # the charge.refunded Stripe sends never arrives
        stripe_post(localstripe, "/v1/refunds", payment_intent=payment["provider_payment_id"], amount="5000")

        deliver(stack.client, owner, order)
        [made] = eventually(lambda: stripe_connect.transfers_to(account), seconds=30)
    finally:
        down.close()

    assert (made["amount"], made["source_transaction"]) == (
        4500,
        charge_at_stripe(localstripe, payment["provider_payment_id"]),
    )
    shown = stack.client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers).get_json()
    assert shown["status"] == "delivered"
    transfer = transfer_of(session, order)
    assert (transfer.amount, transfer.fee, transfer.kept) == (4500, 500, 5000)


def test_a_refund_whose_answer_was_lost_is_made_once_when_the_admin_asks_again_a_day_later(
    stack, owner, buyer, admin, vase, localstripe, stripe_connect, session
):
    _, payment = paid(stack, buyer, vase, localstripe)
    stripe_connect.lose_answers_to("refunds.create", 3)  # the call and stripe-python's two retries

    lost = stack.client.post(
        f"/api/v1/admin/payments/{payment['id']}/refund", headers=admin.headers, json={"amount": 1000}
    )
    stripe_connect.forget_idempotency_keys()
    again = stack.client.post(
        f"/api/v1/admin/payments/{payment['id']}/refund", headers=admin.headers, json={"amount": 1000}
    )

    assert lost.status_code == 502
    assert again.status_code == 200, again.get_json()
    assert (again.get_json()["amount_refunded"], again.get_json()["status"]) == (1000, "partially_refunded")
    assert [r["amount"] for r in refunds_at_stripe(localstripe, payment["provider_payment_id"])] == [1000]
    assert session.scalars(select(Refund.status)).all() == ["made"]


def test_another_amount_asked_after_a_lost_refund_counts_the_lost_one_and_is_a_second_refund(
    stack, owner, buyer, admin, vase, localstripe, stripe_connect, session
):
    _, payment = paid(stack, buyer, vase, localstripe)
    stripe_connect.lose_answers_to("refunds.create", 3)
    url = f"/api/v1/admin/payments/{payment['id']}/refund"
    assert stack.client.post(url, headers=admin.headers, json={"amount": 1000}).status_code == 502
    stripe_connect.forget_idempotency_keys()

    other = stack.client.post(url, headers=admin.headers, json={"amount": 2000})  # not a retry: a second refund

    assert other.status_code == 200, other.get_json()
    assert other.get_json()["amount_refunded"] == 3000
    assert sorted(r["amount"] for r in refunds_at_stripe(localstripe, payment["provider_payment_id"])) == [1000, 2000]
