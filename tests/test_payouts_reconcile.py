"""`flask payouts reconcile` (Render's nexus-payouts-reconcile) makes what is left due: transfers
whose account's news was lost, transfers and reversals whose every answer was lost while a
refund changed them; and payouts without Stripe or FRONTEND_URL are a 503 naming the setting."""

import pytest
from sqlalchemy import select, update

from nexus import create_app
from nexus.payments.models import Payment
from nexus.payouts.models import PayoutAccount
from tests.conftest import app_environ, eventually, free_port, run_command, wait_for_jobs
from tests.payouts_helpers import delivered_order, onboard, opened_account, refund, transfer_of

pytestmark = pytest.mark.usefixtures("connect_webhooks")


def reconcile(app, *, exit_code: int = 0) -> str:
    return run_command(app, "payouts", "reconcile", after_minutes=0, exit_code=exit_code)


def enabled_here(session) -> None:
    """Our record says the account takes payouts (its news applied without a job of its own)."""
    session.execute(update(PayoutAccount).values(payouts_enabled=True))


def test_reconcile_reads_back_an_account_whose_news_was_lost_and_makes_its_waiting_transfer(
    app, client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = opened_account(client, owner, vase.store_id, session)
    order, _ = delivered_order(client, buyer, owner, vase, localstripe)
    stripe_connect.finish_onboarding(account_id)  # its account.updated never came

    output = reconcile(app)
    wait_for_jobs(test_engine)

    assert f"account {account_id}: applied (Payouts enabled; 0 requirements due." in output
    assert eventually(lambda: transfer_of(session, order).status == "paid")
    assert [t["amount"] for t in stripe_connect.transfers_to(account_id)] == [9000]
    assert "read 0 accounts with transfers waiting back from Stripe, checked 0 transfers due; 0 changed" in reconcile(
        app
    )


def test_reconcile_finds_a_transfer_whose_answers_were_lost_and_reverses_what_a_refund_took_meanwhile(
    app, client, owner, buyer, admin, vase, localstripe, stripe_connect, session
):
    account_id = opened_account(client, owner, vase.store_id, session)
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)
    stripe_connect.finish_onboarding(account_id)
    enabled_here(session)
    stripe_connect.lose_answers_to("transfers.create", 3)  # the call and stripe-python's two retries

    failed = reconcile(app, exit_code=1)
    refund(client, admin, payment, 5000)  # the transfer is 4500 here now; Stripe made 9000
    settled = reconcile(app)

    assert f"transfer {transfer_of(session, order).id}: not settled (Stripe could not be reached" in failed
    [made] = stripe_connect.transfers_to(account_id)
    assert (made["amount"], made["amount_reversed"]) == (9000, 4500)
    assert f"9000 usd transferred to {account_id} ({made['id']}); 4500 usd reversed" in settled
    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount, transfer.amount_reversed, transfer.fee) == (
        "partially_reversed",
        9000,
        4500,
        500,
    )


def test_a_reversal_whose_answers_were_lost_then_a_second_refund_reverse_exactly_the_sellers_share(
    app, client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    onboard(client, owner, vase.store_id)
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)
    stripe_connect.lose_answers_to("transfer_reversals.create", 1000)

    refund(client, admin, payment, 2000)  # reverse 1800: made at Stripe, never heard of
    eventually(lambda: stripe_connect.transfers[transfer_of(session, order).stripe_transfer_id]["amount_reversed"])
    refund(client, admin, payment, 3000)  # kept 5000: 4500 reversed in all
    stripe_connect.answer_again()
    reconcile(app)
    wait_for_jobs(test_engine, seconds=30)

    transfer = transfer_of(session, order)
    at_stripe = stripe_connect.transfers[transfer.stripe_transfer_id]
    assert at_stripe["amount_reversed"] == transfer.amount_reversed == 4500
    assert sorted(r["amount"] for r in at_stripe["reversals"]["data"]) == [1800, 2700]


def stripe_at(database_url: str, **changes: str):
    environ = {
        "STRIPE_SECRET_KEY": "sk_test_nexus",
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",  # nothing listens: Stripe is down
        "FRONTEND_URL": "https://shop.example.com",
        **changes,
    }
    return create_app(app_environ(database_url, **{k: v for k, v in environ.items() if v}))


def test_when_stripe_is_down_reconcile_logs_each_transfer_goes_on_and_exits_1(
    database_url, client, owner, buyer, vase, localstripe, session
):
    opened_account(client, owner, vase.store_id, session)
    first, paid_before = delivered_order(client, buyer, owner, vase, localstripe, quantity=1)
    second, _ = delivered_order(client, buyer, owner, vase, localstripe, quantity=1)
    enabled_here(session)
    # Paid before charges were kept: reading its charge from Stripe is what fails.
    session.execute(update(Payment).where(Payment.id == paid_before["id"]).values(charge_id=None))

    output = reconcile(stripe_at(database_url), exit_code=1)

    assert "2 transfers due; 0 changed, 2 could not be" in output
    assert {transfer_of(session, order).status for order in (first, second)} == {"pending"}


def test_when_stripe_is_down_onboarding_is_a_502_and_opens_nothing(database_url, client, owner, vase, session):
    response = (
        stripe_at(database_url)
        .test_client()
        .post(f"/api/v1/stores/{vase.store_id}/payouts/onboarding", headers=owner.headers)
    )

    assert response.status_code == 502
    assert "Stripe could not be reached" in response.get_json()["message"]
    assert session.scalar(select(PayoutAccount)) is None


@pytest.mark.parametrize(
    ("unset", "named"),
    [("STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY"), ("FRONTEND_URL", "FRONTEND_URL")],
)
def test_without_stripe_or_frontend_url_onboarding_is_a_503_naming_what_to_set(database_url, owner, vase, unset, named):
    response = (
        stripe_at(database_url, **{unset: ""})
        .test_client()
        .post(f"/api/v1/stores/{vase.store_id}/payouts/onboarding", headers=owner.headers)
    )

    assert response.status_code == 503
    assert named in response.get_json()["message"]


def test_without_its_secret_the_connect_webhook_is_a_503(database_url, stripe_connect):
    event = stripe_connect.event("account.updated", {"id": "acct_x"}, account="acct_x")
    payload, signature = stripe_connect.sign(event)

    response = (
        stripe_at(database_url)
        .test_client()
        .post("/api/v1/webhooks/stripe-connect", data=payload, headers={"Stripe-Signature": signature})
    )

    assert response.status_code == 503
    assert "STRIPE_CONNECT_WEBHOOK_SECRET" in response.get_json()["message"]
