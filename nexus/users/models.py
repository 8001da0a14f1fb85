"""The `users` table."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import Timestamps, UTCDateTime
from nexus.extensions import db


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class User(Timestamps, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)  # always lower case
    full_name: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Refresh tokens carry the generation they were issued in; bumping it revokes them all
    # at once (a rotated refresh token presented again means it was probably stolen).
    refresh_token_generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # When the user was last deactivated: tokens issued before it stay dead after a reactivation
    # (nexus.auth.tokens compares it with the millisecond issue time tokens carry).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN
