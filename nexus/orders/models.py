"""The `orders`, `order_items` and `idempotency_keys` tables."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    column,
    select,
    table,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from nexus.database import Timestamps, UTCDateTime, utcnow
from nexus.extensions import db
from nexus.users.models import User


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FULFILLED = "fulfilled"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REFUNDED = "refunded"


STATUSES = ", ".join(f"'{status}'" for status in OrderStatus)
# The payments domain builds on orders (it pays them and moves them); orders name its table
# only, as its foreign key names ours, so that neither package imports the other.
payments = table("payments", column("id", Integer), column("order_id", Integer), column("status", String))


class Order(Timestamps, db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint("total >= 0 AND subtotal >= 0", name="amounts"),
        # Keyset lists, newest first: a buyer's, a store's, everyone's (admin), each by status too.
        Index("ix_orders_buyer_id_id", "buyer_id", "id"),
        Index("ix_orders_buyer_id_status_id", "buyer_id", "status", "id"),
        Index("ix_orders_store_id_id", "store_id", "id"),
        Index("ix_orders_store_id_status_id", "store_id", "status", "id"),
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_store_id_paid_at", "store_id", "paid_at"),  # sales reports
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=OrderStatus.PENDING_PAYMENT.value)
    subtotal: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    # Where the goods go, as the buyer gave it when placing the order (every key present, the
    # optional ones null); null for orders placed before addresses were asked for.
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list["OrderItem"]] = relationship(lazy="selectin", order_by="OrderItem.product_id")
    # The status of the order's latest payment, read with the order (None before any).
    payment_status: Mapped[str | None] = column_property(
        select(payments.c.status)
        .where(payments.c.order_id == id)
        .order_by(payments.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    # The buyer's email, read with the order, so the seller can reach the buyer.
    buyer_email: Mapped[str] = column_property(
        select(User.email).where(User.id == buyer_id).correlate_except(User).scalar_subquery()
    )


class OrderItem(db.Model):
    """A line of an order, with the product's name and price as they were when it was placed."""

    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
        CheckConstraint("quantity BETWEEN 1 AND 1000", name="quantity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit_price: Mapped[int] = mapped_column(Integer, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    line_total: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdempotencyKey(db.Model):
    """A client's `Idempotency-Key` for placing an order: the unique (user, key) pair decides
    which of several identical requests places it; `order_id` stays empty while it is in flight."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
