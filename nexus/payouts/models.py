"""The `payout_accounts` and `transfers` tables: each store's Stripe Connect account, and what
each delivered order owes its store."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import Timestamps, UTCDateTime
from nexus.extensions import db


class PayoutAccount(Timestamps, db.Model):
    """A store's Express connected account, as Stripe last told us of it (`account.updated`)."""

    __tablename__ = "payout_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), unique=True, nullable=False)
    stripe_account_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    requirements_due: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # When Stripe said what the flags above say (its event's `created`): older news, arriving
    # late, is not applied over newer.
    known_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The account's latest payout to its bank (`payout.paid`, `payout.failed`).
    last_payout_id: Mapped[str | None] = mapped_column(String(255))
    last_payout_status: Mapped[str | None] = mapped_column(String(16))
    last_payout_amount: Mapped[int | None] = mapped_column(BigInteger)
    last_payout_currency: Mapped[str | None] = mapped_column(String(3))
    last_payout_created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_payout_arrival: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_payout_failure: Mapped[str | None] = mapped_column(Text)

    @property
    def last_payout(self) -> dict[str, Any] | None:
        if self.last_payout_id is None:
            return None
        return {
            "id": self.last_payout_id,
            "status": self.last_payout_status,
            "amount": self.last_payout_amount,
            "currency": self.last_payout_currency,
            "arrival_date": self.last_payout_arrival,
            "failure_message": self.last_payout_failure,
        }


class TransferStatus(StrEnum):
    PENDING = "pending"  # due; waits for the store's account to take payouts, then a job makes it
    PAID = "paid"  # made at Stripe
    PARTIALLY_REVERSED = "partially_reversed"  # refunds took part of it back
    REVERSED = "reversed"  # refunds took all of it back
    CANCELED = "canceled"  # refunded (or fee'd) to nothing before it was made


MADE = (TransferStatus.PAID, TransferStatus.PARTIALLY_REVERSED)  # made, and more may be reversed
STATUSES = ", ".join(f"'{status}'" for status in TransferStatus)


class Transfer(Timestamps, db.Model):
    """The store's share of a delivered order: `kept - fee`, where `kept` is what the buyer
    has not been refunded and the fee `kept * fee_bps / 10000` rounded down.

    Before it is made `amount` is that share; once made it is what Stripe transferred, and
    refunds reverse the difference (`amount_reversed`). At rest, `amount - amount_reversed +
    fee + refunded == total` (the order's).
    """

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint(
            "amount >= 0 AND fee >= 0 AND kept >= 0 AND amount_reversed >= 0 AND amount_reversed <= amount",
            name="amounts",
        ),
        CheckConstraint("fee_bps BETWEEN 0 AND 10000", name="fee_bps"),
        # Keyset lists, newest first: a store's (by status too), and everyone's by status (admin).
        Index("ix_transfers_store_id_id", "store_id", "id"),
        Index("ix_transfers_store_id_status_id", "store_id", "status", "id"),
        Index("ix_transfers_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), nullable=False)
    # One transfer per order, whatever the number of times it is delivered.
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fee: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default=TransferStatus.PENDING.value)
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_reversed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # What the buyer has kept paid of the order (its total less refunds), as last worked out.
    kept: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # PLATFORM_FEE_BPS when the transfer fell due: a later change of the setting does not
    # re-price the fee when a refund comes.
    fee_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    # When it was last sent to Stripe, noted (committed) before sending. Noted and not recorded
    # made (no `stripe_transfer_id`), its answer may have been lost: it is looked for at Stripe
    # before it is sent again, whatever its status here.
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A reversal sent to Stripe, noted the same way, whose answer is not recorded yet: what the
    # transfer has reversed in all at Stripe is read back before anything more is reversed.
    reversal_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Owed by a demo order (`demo seed`): never made at Stripe.
    demo: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
