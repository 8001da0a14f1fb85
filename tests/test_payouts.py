"""Seller payouts end to end: a seller onboards through an Account Link at the Stripe Connect
stand-in (tests/stripe_connect.py), which sends its signed `account.updated` to the app served
on a local port; a buyer pays through localstripe; the owner delivers the order; a job makes the
transfer at the stand-in; refunds through the admin console lower it or reverse the seller's
share. Also late onboarding, duplicates of events and jobs, lost answers, and the views."""

import uuid

import pytest
from sqlalchemy import func, select, update

from nexus.database import utcnow
from nexus.jobs.outbox import OutboxJob
from nexus.orders.models import Order
from nexus.payments.models import Payment, PaymentEventAudit
from nexus.payouts.models import PayoutAccount
from tests.conftest import all_at_once, eventually, run_command, wait_for_jobs
from tests.factories import PaymentFactory, StoreFactory
from tests.payouts_helpers import (
    CONNECT_WEBHOOK,
    deliver,
    deliver_connect,
    delivered_order,
    jobs_named,
    onboard,
    opened_account,
    order_as,
    paid_order,
    payouts,
    place_order,
    refund,
    start_onboarding,
    transfer_of,
    visit,
)
from tests.stripe_helpers import charge_at_stripe, sign_stripe_event

pytestmark = pytest.mark.usefixtures("connect_webhooks")

# --- onboarding --------------------------------------------------------------------------------


def test_onboarding_opens_the_stores_express_account_and_answers_an_account_link(
    client, owner, vase, stripe_connect, session
):
    response = start_onboarding(client, owner, vase.store_id)

    assert response.status_code == 200
    link = response.get_json()
    assert set(link) == {"url", "expires_at"} and link["expires_at"].endswith("+00:00")
    account_id = session.scalar(select(PayoutAccount.stripe_account_id).where(PayoutAccount.store_id == vase.store_id))
    at_stripe = stripe_connect.accounts[account_id]
    assert (at_stripe["type"], at_stripe["metadata"], at_stripe["email"]) == (
        "express",
        {"store_id": str(vase.store_id)},
        "owner@example.com",
    )
    shown = payouts(client, owner, vase.store_id)["account"]
    assert shown["stripe_account_id"] == account_id
    assert (shown["payouts_enabled"], shown["details_submitted"]) == (False, False)
    assert shown["requirements_due"] == []  # nothing heard from Stripe yet


def test_a_seller_onboards_through_the_link_and_account_updated_enables_payouts(client, owner, vase, stripe_connect):
    link = start_onboarding(client, owner, vase.store_id).get_json()

    assert visit(link["url"]) == 302  # Stripe sends the seller back to the frontend

    shown = eventually(
        lambda: (account := payouts(client, owner, vase.store_id)["account"])["payouts_enabled"] and account
    )
    assert (shown["details_submitted"], shown["requirements_due"]) == (True, [])


def test_the_links_come_back_to_the_frontend(client, owner, vase, stripe_connect):
    link = start_onboarding(client, owner, vase.store_id).get_json()

    token = link["url"].rsplit("/", 1)[-1]
    sent = stripe_connect.links[token]
    assert sent["type"] == "account_onboarding"
    assert sent["return_url"] == f"https://shop.example.com/stores/{vase.store_id}/payouts?onboarding=return"
    assert sent["refresh_url"] == f"https://shop.example.com/stores/{vase.store_id}/payouts?onboarding=refresh"


def test_onboarding_again_opens_no_second_account_and_gives_a_fresh_link(client, owner, vase, stripe_connect):
    accounts = len(stripe_connect.accounts)

    first = start_onboarding(client, owner, vase.store_id).get_json()
    again = start_onboarding(client, owner, vase.store_id).get_json()

    assert first["url"] != again["url"]
    assert len(stripe_connect.accounts) == accounts + 1


def test_only_the_stores_owner_onboards_it(client, admin, buyer, vase, session):
    assert start_onboarding(client, admin, vase.store_id).status_code == 403
    assert start_onboarding(client, buyer, vase.store_id).status_code == 403
    assert session.scalar(select(func.count()).select_from(PayoutAccount)) == 0


def test_payouts_are_for_the_owner_and_admins(client, owner, admin, buyer, vase):
    before = payouts(client, admin, vase.store_id)

    assert before == {"account": None, "currency": "usd", "pending": 0, "transferred": 0, "reversed": 0}
    assert client.get(f"/api/v1/stores/{vase.store_id}/payouts", headers=buyer.headers).status_code == 403
    assert client.get(f"/api/v1/stores/{vase.store_id}/transfers", headers=buyer.headers).status_code == 403
    assert client.get("/api/v1/admin/transfers", headers=owner.headers).status_code == 403


# --- transfers ---------------------------------------------------------------------------------


def test_end_to_end_the_seller_gets_their_share_and_a_partial_refund_reverses_the_right_part(
    client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = onboard(client, owner, vase.store_id)
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)  # total 10000
    wait_for_jobs(test_engine)

    [made] = stripe_connect.transfers_to(account_id)
    assert (made["amount"], made["currency"], made["transfer_group"]) == (9000, "usd", f"order_{order['id']}")
    transfer = transfer_of(session, order)
    assert made["metadata"] == {
        "transfer_id": str(transfer.id),
        "order_id": str(order["id"]),
        "store_id": str(vase.store_id),
    }
    assert (transfer.status, transfer.amount, transfer.fee, transfer.stripe_transfer_id) == (
        "paid",
        9000,
        1000,
        made["id"],
    )

    refund(client, admin, payment, 5000)  # kept 5000: fee 500, share 4500
    wait_for_jobs(test_engine)

    at_stripe = stripe_connect.transfers[made["id"]]
    assert [r["amount"] for r in at_stripe["reversals"]["data"]] == [4500]
    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount, transfer.fee, transfer.amount_reversed) == (
        "partially_reversed",
        9000,
        500,
        4500,
    )
    shown = payouts(client, owner, vase.store_id)
    assert (shown["pending"], shown["transferred"], shown["reversed"]) == (0, 9000, 4500)


def test_the_sellers_share_is_transferred_from_the_buyers_charge(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine
):
    account_id = onboard(client, owner, vase.store_id)
    _, payment = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)

    [made] = stripe_connect.transfers_to(account_id)
    assert made["source_transaction"] == charge_at_stripe(localstripe, payment["provider_payment_id"])


def test_an_order_paid_before_charges_were_kept_is_transferred_from_its_charge_read_from_stripe(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = onboard(client, owner, vase.store_id)
    order, payment = paid_order(client, buyer, vase, localstripe)
    session.execute(update(Payment).where(Payment.id == payment["id"]).values(charge_id=None))  # as migrated
    deliver(client, owner, order)
    wait_for_jobs(test_engine)

    [made] = stripe_connect.transfers_to(account_id)
    charge_id = charge_at_stripe(localstripe, payment["provider_payment_id"])
    assert (made["amount"], made["source_transaction"]) == (9000, charge_id)
    assert transfer_of(session, order).status == "paid"


@pytest.mark.parametrize(("dispute", "paid"), [("needs_response", False), ("lost", False), ("won", True)])
def test_no_seller_is_paid_while_the_buyers_charge_is_disputed_or_was_lost(
    client, owner, buyer, vase, stripe_connect, test_engine, session, dispute, paid
):
    account_id = onboard(client, owner, vase.store_id)
    order = place_order(client, buyer, vase)
    intent = f"pi_disputed_{uuid.uuid4().hex[:12]}"  # a charge of the stand-in's own: localstripe has no disputes
    stripe_connect.charge(f"ch_{intent}", order["total"], "usd", intent_id=intent, dispute=dispute)
    PaymentFactory(order_id=order["id"], user_id=buyer.user["id"], amount=order["total"], currency="usd",
                   status="succeeded", provider_payment_id=intent)  # fmt: skip
    session.execute(update(Order).where(Order.id == order["id"]).values(status="paid", paid_at=utcnow()))

    deliver(client, owner, order)
    wait_for_jobs(test_engine)

    assert len(stripe_connect.transfers_to(account_id)) == int(paid)
    assert transfer_of(session, order).status == ("paid" if paid else "pending")


def test_a_store_that_onboards_late_receives_its_waiting_transfers(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    first, _ = delivered_order(client, buyer, owner, vase, localstripe, quantity=2)
    second, _ = delivered_order(client, buyer, owner, vase, localstripe, quantity=1)
    waiting = client.get(f"/api/v1/stores/{vase.store_id}/transfers?status=pending", headers=owner.headers).get_json()
    assert [(t["order_id"], t["amount"], t["fee"]) for t in waiting["items"]] == [
        (second["id"], 4500, 500),
        (first["id"], 9000, 1000),
    ]
    assert payouts(client, owner, vase.store_id)["pending"] == 13500

    account_id = onboard(client, owner, vase.store_id)
    wait_for_jobs(test_engine)

    assert sorted(t["amount"] for t in stripe_connect.transfers_to(account_id)) == [4500, 9000]
    assert {transfer_of(session, order).status for order in (first, second)} == {"paid"}
    assert payouts(client, owner, vase.store_id)["pending"] == 0


def test_a_refund_before_the_transfer_is_made_lowers_it(
    client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)  # no account yet: it waits

    refund(client, admin, payment, 3000)  # kept 7000: fee 700, share 6300

    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount, transfer.fee) == ("pending", 6300, 700)
    account_id = onboard(client, owner, vase.store_id)
    wait_for_jobs(test_engine)
    assert [t["amount"] for t in stripe_connect.transfers_to(account_id)] == [6300]


def test_a_full_refund_before_the_transfer_is_made_cancels_it(
    client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)

    refund(client, admin, payment)

    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount, transfer.fee) == ("canceled", 0, 0)
    account_id = onboard(client, owner, vase.store_id)
    wait_for_jobs(test_engine)
    assert stripe_connect.transfers_to(account_id) == []


def test_a_full_refund_after_the_transfer_reverses_all_of_it(
    client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    onboard(client, owner, vase.store_id)
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)

    refund(client, admin, payment)
    wait_for_jobs(test_engine)

    transfer = transfer_of(session, order)
    assert (transfer.status, transfer.amount_reversed, transfer.fee) == ("reversed", 9000, 0)
    assert stripe_connect.transfers[transfer.stripe_transfer_id]["reversed"] is True


def test_a_refund_before_delivery_is_counted_in_the_transfer_due(
    client, owner, buyer, admin, vase, localstripe, session
):
    order, payment = paid_order(client, buyer, vase, localstripe)
    refund(client, admin, payment, 2000)  # kept 8000: fee 800, share 7200

    deliver(client, owner, order)

    transfer = transfer_of(session, order)
    assert (transfer.amount, transfer.fee, transfer.status) == (7200, 800, "pending")


def test_the_fee_follows_platform_fee_bps(app, client, owner, buyer, vase, localstripe, session, monkeypatch):
    monkeypatch.setitem(app.config, "PLATFORM_FEE_BPS", 1250)  # 12.5%
    order, _ = delivered_order(client, buyer, owner, vase, localstripe, quantity=1)  # total 5000

    transfer = transfer_of(session, order)
    assert (transfer.amount, transfer.fee, transfer.fee_bps) == (4375, 625, 1250)


# --- once, whatever comes twice -------------------------------------------------------------------


def test_a_connect_event_delivered_twice_is_applied_once(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = opened_account(client, owner, vase.store_id, session)
    delivered_order(client, buyer, owner, vase, localstripe)
    stripe_connect.finish_onboarding(account_id)
    event = stripe_connect.account_updated(account_id)

    first = deliver_connect(client, stripe_connect, event)
    again = deliver_connect(client, stripe_connect, event)
    wait_for_jobs(test_engine)

    assert (first.status_code, first.get_json()) == (200, {"received": True, "duplicate": False, "outcome": "applied"})
    assert (again.status_code, again.get_json()["duplicate"]) == (200, True)
    audit = session.scalar(select(PaymentEventAudit).where(PaymentEventAudit.stripe_event_id == event["id"]))
    assert (audit.deliveries, audit.outcome, audit.payment_id) == (2, "applied", None)
    assert jobs_named(session, "payouts.make_transfer") == 1
    assert len(stripe_connect.transfers_to(account_id)) == 1


def test_a_transfer_job_delivered_twice_makes_one_transfer(
    app, client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = onboard(client, owner, vase.store_id)
    delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)
    job = session.scalar(select(OutboxJob).where(OutboxJob.job == "payouts.make_transfer"))
    calls = stripe_connect.calls[("POST", "transfers.create")]

    with app.app_context():
        app.extensions["jobs"].send(job.id)
        app.extensions["jobs"].send(job.id)
    wait_for_jobs(test_engine)
    eventually(lambda: app.extensions["jobs"].broker.queues["nexus"].unfinished_tasks == 0)

    assert len(stripe_connect.transfers_to(account_id)) == 1
    assert stripe_connect.calls[("POST", "transfers.create")] == calls  # the second delivery found it done


def test_two_jobs_for_one_transfer_make_it_once(
    app, client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = opened_account(client, owner, vase.store_id, session)
    order, _ = delivered_order(client, buyer, owner, vase, localstripe)
    stripe_connect.finish_onboarding(account_id)  # and its news applied, without a job of its own:
    session.execute(update(PayoutAccount).values(payouts_enabled=True))
    transfer_id = transfer_of(session, order).id

    with app.app_context():
        from nexus.extensions import db
        from nexus.jobs import outbox

        for _ in range(2):
            outbox.enqueue("payouts.make_transfer", transfer_id=transfer_id)
        db.session.commit()
    wait_for_jobs(test_engine)

    assert len(stripe_connect.transfers_to(account_id)) == 1
    assert transfer_of(session, order).status == "paid"


def test_a_transfer_stripe_refused_is_made_under_a_key_of_its_own_once_the_account_can_take_it(
    app, client, owner, buyer, vase, localstripe, stripe_connect, session
):
    account_id = opened_account(client, owner, vase.store_id, session)  # Stripe's transfers are inactive
    order, _ = delivered_order(client, buyer, owner, vase, localstripe)  # waits for the account: no job
    session.execute(update(PayoutAccount).values(payouts_enabled=True))  # what Nexus believes, news lost
    refused = run_command(app, "payouts", "reconcile", after_minutes=0, exit_code=1)  # kept under its key
    stripe_connect.finish_onboarding(account_id)

    made_now = run_command(app, "payouts", "reconcile", after_minutes=2)  # with the refusal replayed, exit 1

    assert "insufficient_capabilities" in refused or "capabilities enabled" in refused
    [made] = stripe_connect.transfers_to(account_id)
    assert f"9000 usd transferred to {account_id} ({made['id']})" in made_now
    assert transfer_of(session, order).stripe_transfer_id == made["id"]


def test_a_transfer_whose_answer_was_lost_is_made_once(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = onboard(client, owner, vase.store_id)
    stripe_connect.lose_answers_to("transfers.create")
    calls = stripe_connect.calls[("POST", "transfers.create")]

    order, _ = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)

    [made] = stripe_connect.transfers_to(account_id)
    assert stripe_connect.calls[("POST", "transfers.create")] == calls + 2  # stripe-python's retry, same key
    assert transfer_of(session, order).stripe_transfer_id == made["id"]


def test_a_reversal_whose_answer_was_lost_is_made_once(
    client, owner, buyer, admin, vase, localstripe, stripe_connect, test_engine, session
):
    onboard(client, owner, vase.store_id)
    order, payment = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)
    stripe_connect.lose_answers_to("transfer_reversals.create")

    refund(client, admin, payment, 5000)
    wait_for_jobs(test_engine)

    transfer = transfer_of(session, order)
    assert [r["amount"] for r in stripe_connect.transfers[transfer.stripe_transfer_id]["reversals"]["data"]] == [4500]
    assert (transfer.amount_reversed, transfer.status) == (4500, "partially_reversed")


# --- Stripe's other news ----------------------------------------------------------------------


def test_a_reversal_made_in_stripes_dashboard_is_recorded_once_from_the_platform_webhook(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    onboard(client, owner, vase.store_id)
    order, _ = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)
    event = stripe_connect.reversed_in_dashboard(transfer_of(session, order).stripe_transfer_id, 1000)
    payload, signature = sign_stripe_event(event)  # transfers are the platform's: its own webhook
    headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}

    first = client.post("/api/v1/webhooks/stripe", data=payload, headers=headers)
    again = client.post("/api/v1/webhooks/stripe", data=payload, headers=headers)

    assert (first.get_json()["outcome"], again.get_json()["duplicate"]) == ("applied", True)
    transfer = transfer_of(session, order)
    assert (transfer.amount_reversed, transfer.status) == (1000, "partially_reversed")


def test_payouts_to_the_sellers_bank_are_shown_on_the_stores_payouts(client, owner, vase, stripe_connect):
    account_id = onboard(client, owner, vase.store_id)
    paid = stripe_connect.payout_event(account_id, "paid", 9000, "usd")
    failed = stripe_connect.payout_event(account_id, "failed", 9000, "usd", id=paid["data"]["object"]["id"])

    assert deliver_connect(client, stripe_connect, paid).get_json()["outcome"] == "applied"
    assert payouts(client, owner, vase.store_id)["account"]["last_payout"]["status"] == "paid"
    assert deliver_connect(client, stripe_connect, failed).get_json()["outcome"] == "applied"
    assert deliver_connect(client, stripe_connect, paid).get_json()["duplicate"] is True

    last = payouts(client, owner, vase.store_id)["account"]["last_payout"]
    assert (last["id"], last["status"], last["amount"], last["currency"]) == (
        paid["data"]["object"]["id"],
        "failed",
        9000,
        "usd",
    )
    assert last["failure_message"] == "The bank account has been closed."


def test_older_account_news_arriving_late_is_not_applied(client, owner, vase, stripe_connect, session):
    account_id = onboard(client, owner, vase.store_id)
    stale = stripe_connect.event(
        "account.updated", stripe_connect.require(account_id, "external_account"), account=account_id
    )
    stale["created"] -= 3600
    stripe_connect.finish_onboarding(account_id)

    answer = deliver_connect(client, stripe_connect, stale)

    assert answer.get_json()["outcome"] == "ignored"
    assert payouts(client, owner, vase.store_id)["account"]["payouts_enabled"] is True


def test_an_account_that_stops_taking_payouts_leaves_new_transfers_waiting(
    client, owner, buyer, vase, localstripe, stripe_connect, test_engine, session
):
    account_id = onboard(client, owner, vase.store_id)
    deliver_connect(client, stripe_connect, stripe_connect.event(
        "account.updated", stripe_connect.require(account_id, "individual.verification.document"), account=account_id
    ))  # fmt: skip

    order, _ = delivered_order(client, buyer, owner, vase, localstripe)
    wait_for_jobs(test_engine)

    assert transfer_of(session, order).status == "pending"
    assert payouts(client, owner, vase.store_id)["account"]["requirements_due"] == ["individual.verification.document"]
    assert stripe_connect.transfers_to(account_id) == []


@pytest.mark.parametrize(
    ("signing", "status"),
    [({"secret": "whsec_nexus_tests"}, 400), ({"at": 1_000_000_000}, 400)],
    ids=["the platform's secret", "stale"],
)
def test_the_connect_webhook_takes_only_events_signed_with_its_own_secret(
    client, stripe_connect, signing, status, session
):
    answer = deliver_connect(
        client, stripe_connect, stripe_connect.event("account.updated", {}, account="acct_x"), **signing
    )

    assert answer.status_code == status
    assert client.post(CONNECT_WEBHOOK, data=b"{}", headers={"Content-Type": "application/json"}).status_code == 400
    assert session.scalar(select(func.count()).select_from(PaymentEventAudit)) == 0


# --- lists ------------------------------------------------------------------------------------


def test_transfers_are_listed_newest_first_in_pages_by_store_and_status_for_admins(
    client, owner, buyer, admin, vase, localstripe, session
):
    orders = [delivered_order(client, buyer, owner, vase, localstripe, quantity=1)[0] for _ in range(3)]
    elsewhere = StoreFactory(currency="usd")

    first = client.get(f"/api/v1/admin/transfers?store_id={vase.store_id}&limit=2", headers=admin.headers).get_json()
    rest = client.get(
        f"/api/v1/admin/transfers?store_id={vase.store_id}&limit=2&cursor={first['next_cursor']}", headers=admin.headers
    ).get_json()

    assert [t["order_id"] for t in first["items"] + rest["items"]] == [o["id"] for o in reversed(orders)]
    assert rest["next_cursor"] is None
    assert client.get("/api/v1/admin/transfers?status=paid", headers=admin.headers).get_json()["items"] == []
    assert (
        client.get(f"/api/v1/admin/transfers?store_id={elsewhere.id}", headers=admin.headers).get_json()["items"] == []
    )
    assert set(first["items"][0]) == {
        "id", "store_id", "order_id", "amount", "fee", "currency", "status", "stripe_transfer_id",
        "amount_reversed", "created_at", "updated_at",
    }  # fmt: skip


def test_four_first_onboardings_at_once_open_one_account(app, owner, vase, stripe_connect, session):
    accounts = len(stripe_connect.accounts)
    path = f"/api/v1/stores/{vase.store_id}/payouts/onboarding"

    answers = all_at_once(app, [lambda client: client.post(path, headers=owner.headers).status_code] * 4)

    assert answers == [200] * 4
    assert len(stripe_connect.accounts) == accounts + 1
    assert session.scalar(select(func.count()).select_from(PayoutAccount)) == 1


def test_replaying_a_connect_event_applies_it_through_the_connect_handlers(
    client, owner, admin, vase, stripe_connect, session
):
    onboard(client, owner, vase.store_id)
    audit = session.scalar(select(PaymentEventAudit).where(PaymentEventAudit.type == "account.updated"))

    response = client.post(f"/api/v1/admin/payment-events/{audit.id}/replay", headers=admin.headers)

    assert response.status_code == 200
    assert (response.get_json()["outcome"], response.get_json()["replays"]) == ("duplicate", 1)  # not "ignored"


def test_a_payment_event_of_a_connected_account_settles_nothing_of_ours(client, buyer, vase, stripe_connect, session):
    order = place_order(client, buyer, vase)
    payment = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers).get_json()["payment"]
    intent = {"id": payment["provider_payment_id"], "object": "payment_intent", "amount": 10000, "currency": "usd"}
    event = stripe_connect.event("payment_intent.succeeded", intent, account="acct_someone")

    answer = deliver_connect(client, stripe_connect, event)

    assert answer.get_json()["outcome"] == "ignored"
    assert order_as(client, buyer, order)["status"] == "pending_payment"
