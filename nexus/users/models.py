"""The `users` table."""

from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import Timestamps
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

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN
