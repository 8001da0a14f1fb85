"""The `user_report_history` table: every report a user generated, with its file."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from nexus.database import UTCDateTime, utcnow
from nexus.extensions import db


class UserReportHistory(db.Model):
    __tablename__ = "user_report_history"
    __table_args__ = (
        CheckConstraint("format IN ('csv', 'json')", name="format"),
        Index("ix_user_report_history_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True, nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False, default="sales")
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="ready")
    row_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The file, gzipped; read only for a download (a history page never loads it).
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
