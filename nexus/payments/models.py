"""The `payments` and `payment_event_audits` tables."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import Timestamps, UTCDateTime, utcnow
from nexus.extensions import db


class PaymentStatus(StrEnum):
    PENDING = "pending"  # an intent exists; the buyer has not paid yet
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


OPEN = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)  # money may still move
# Stripe can still take money on these: a declined intent stays payable (Stripe.js lets the
# buyer try another card on it) until it is canceled.
PAYABLE = (*OPEN, PaymentStatus.FAILED)


def _sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


STATUSES = _sql_list(PaymentStatus)
OPEN_SQL = f"status IN ({_sql_list(OPEN)})"


class Payment(Timestamps, db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint("amount > 0 AND amount_refunded >= 0 AND amount_refunded <= amount", name="amounts"),
        # At most one open payment per order: the database, not a read-then-insert, decides
        # which of two simultaneous "pay" requests starts it.
        Index(
            "uq_payments_order_id_open",
            "order_id",
            unique=True,
            postgresql_where=text(OPEN_SQL),
            sqlite_where=text(OPEN_SQL),
        ),
        Index("ix_payments_status_id", "status", "id"),
        Index("ix_payments_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False, default="stripe")
    # Empty only while the PaymentIntent is being created.
    provider_payment_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default=PaymentStatus.PENDING.value)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # The charge that paid it (the intent's `latest_charge` when it succeeded), as Stripe's charge
    # events (refunds, disputes) name it. Null until paid, and for payments settled before it was
    # kept. Sellers' transfers read the charge back from Stripe instead, to see what it is now.
    charge_id: Mapped[str | None] = mapped_column(String(255))
    # Made up by `demo seed` (its `pi_demo_...` id was never at Stripe): nothing of it is ever
    # asked of Stripe, refunded or paid out.
    demo: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())


class RefundStatus(StrEnum):
    SENDING = "sending"  # noted (committed) and being sent to Stripe
    MADE = "made"  # Stripe made it
    NOT_MADE = "not_made"  # Stripe refused it, or it was looked for at Stripe and never made
    IN_DOUBT = "in_doubt"  # its answer was lost: the next refund of the payment looks for it at Stripe first


REFUND_STATUSES = _sql_list(RefundStatus)


class Refund(Timestamps, db.Model):
    """A refund Nexus asked Stripe for, noted before it is sent: one whose answer is lost is
    found again at Stripe (its id is in the refund's metadata and its idempotency key) before
    the payment is refunded again, so money never goes back twice, however late the retry.
    What Stripe refunded in all, refunds made in its dashboard included, is the payment's
    `amount_refunded`."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(f"status IN ({REFUND_STATUSES})", name="status"),
        CheckConstraint("amount > 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RefundStatus.SENDING.value)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)


class EventOutcome(StrEnum):
    APPLIED = "applied"  # it changed a payment (and maybe its order)
    DUPLICATE = "duplicate"  # what it says had already been applied
    IGNORED = "ignored"  # an unknown type, an unknown payment, or news older than what we know
    ANOMALY = "anomaly"  # money that does not match: recorded for a person to look at
    ERROR = "error"  # applying it failed; Stripe retries, and the retry applies it


class PaymentEventAudit(db.Model):
    """One Stripe event (or a reconciliation read from Stripe), stored once by its id, with
    what applying it did."""

    __tablename__ = "payment_event_audits"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_sql_list(EventOutcome)})", name="outcome"),
        Index("ix_payment_event_audits_type_id", "type", "id"),
        Index("ix_payment_event_audits_outcome_id", "outcome", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # webhook | reconcile
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    replays: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processing_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
