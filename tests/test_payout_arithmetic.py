"""The fee arithmetic of payouts, as a property over random totals, fee rates and partial
refunds before and after the transfer is made: integer, rounded down, and always adding up.
These are the functions the delivery, refund and job paths use (nexus.payouts.service), run on
real Transfer rows that never reach a database."""

from hypothesis import given
from hypothesis import strategies as st

from nexus.money import MAX_AMOUNT
from nexus.payouts import service
from nexus.payouts.models import Transfer


@st.composite
def refunds_of(draw, total: int) -> list[int]:
    """Partial refunds of an order of `total`, in order: positive, together at most the total
    (the last one may take all that is left)."""
    refunds, left = [], total
    for _ in range(draw(st.integers(0, 6))):
        if left == 0:
            break
        refunds.append(draw(st.integers(1, left)))
        left -= refunds[-1]
    return refunds


def made(transfer: Transfer) -> None:
    """What the transfer job records once Stripe made it (nothing, if there was none to make)."""
    if transfer.status == "pending":
        service.record_made(transfer, {"id": "tr_test", "amount": transfer.amount, "amount_reversed": 0})


def check(transfer: Transfer, total: int, refunded: int, bps: int) -> None:
    kept = total - refunded
    values = (transfer.amount, transfer.fee, transfer.amount_reversed, transfer.kept)
    assert all(isinstance(value, int) and value >= 0 for value in values), values
    assert transfer.fee == kept * bps // 10_000
    assert transfer.amount_reversed <= transfer.amount
    assert transfer.amount - transfer.amount_reversed + transfer.fee + refunded == total
    if refunded == total:
        assert transfer.status in ("canceled", "reversed") or transfer.amount == transfer.amount_reversed == 0


@given(
    total=st.integers(1, MAX_AMOUNT),
    bps=st.integers(0, 10_000),
    data=st.data(),
)
def test_shares_are_whole_rounded_down_and_transferred_less_reversed_plus_fee_plus_refunded_is_the_total(
    total, bps, data
):
    refunds = data.draw(refunds_of(total), label="refunds")
    delivered_after = data.draw(st.integers(0, len(refunds)), label="refunds before delivery")
    made_after = data.draw(st.integers(delivered_after, len(refunds)), label="refunds before the transfer")
    refunded = sum(refunds[:delivered_after])
    transfer = service.new_transfer(store_id=1, order_id=1, currency="usd", total=total, refunded=refunded, fee_bps=bps)
    check(transfer, total, refunded, bps)

    for n, amount in enumerate(refunds[delivered_after:], start=delivered_after):
        if n == made_after:
            made(transfer)
        refunded += amount
        due = service.settle(transfer, total - refunded)  # the refund's receiver
        if due:
            service.record_reversal(transfer, due)  # the reversal job
        check(transfer, total, refunded, bps)
    made(transfer)
    check(transfer, total, refunded, bps)


@given(kept=st.integers(0, MAX_AMOUNT), bps=st.integers(0, 10_000))
def test_the_fee_is_the_floor_of_kept_times_the_rate_and_the_share_the_rest(kept, bps):
    fee, share = service.fee_of(kept, bps), service.share_of(kept, bps)

    assert fee * 10_000 <= kept * bps < (fee + 1) * 10_000
    assert fee + share == kept and share >= 0


def test_the_contracts_example_10000_gives_9000_and_a_refund_of_5000_reverses_4500():
    transfer = service.new_transfer(store_id=1, order_id=1, currency="usd", total=10_000, refunded=0, fee_bps=1000)
    assert (transfer.amount, transfer.fee) == (9000, 1000)
    made(transfer)

    assert service.settle(transfer, 10_000 - 5000) == 4500
    assert (transfer.fee, service.share_of(transfer.kept, transfer.fee_bps)) == (500, 4500)
