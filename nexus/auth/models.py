"""The `otp_codes` and `revoked_tokens` tables."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import UTCDateTime, utcnow
from nexus.extensions import db


class OtpCode(db.Model):
    """A sign-in code, stored only as a keyed hash; only the newest code of a user counts."""

    __tablename__ = "otp_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # The `full_name`/`phone` a `register` gave, applied only when this code is verified: nobody
    # can plant details on an account that someone else will verify.
    pending_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RevokedToken(db.Model):
    """A JWT that must no longer be accepted, by its `jti`; kept until it would have expired."""

    __tablename__ = "revoked_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    token_type: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Spent by a refresh (rather than revoked by a sign-out): presented again within
    # JWT_REFRESH_REUSE_GRACE_SECONDS it still gets a fresh pair.
    rotated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
