"""The admin audit log (`admin_audit_log`): every write an admin makes, through whichever
endpoint (the admin console, or the ones every user has: closing a store, repricing a
product, cancelling an order), with who, what, when and what it changed.

Services call `record` with the acting user, in the transaction of the write, before they
commit it. It depends only on the extensions and the users' model, so every domain can use
it and the admin console too, without one importing the other.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nexus.database import UTCDateTime, utcnow
from nexus.extensions import db
from nexus.users.models import Role, User


class AdminAuditEntry(db.Model):
    __tablename__ = "admin_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. "user.update", "payment.refund"
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[int] = mapped_column(Integer, nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


def snapshot(row: Any, fields: Any) -> dict[str, Any]:
    """`row`'s values of `fields` (names), as the audit log keeps them."""
    return {field: _plain(getattr(row, field)) for field in fields}


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str | dict | list) else str(value)


def record(actor: User | None, action: str, target: Any, before: dict | None, after: dict | None) -> None:
    """Add an audit entry for a write by `actor` to the current transaction, if `actor` is an
    admin (other users' writes are not audited); `action` is `<target type>.<verb>`, e.g.
    `user.update`. The caller commits it with the write."""
    if actor is None or actor.role != Role.ADMIN:
        return
    if target.id is None:  # a row just added: its id comes with the flush
        db.session.flush()
    entry = AdminAuditEntry(
        actor_id=actor.id,
        action=action,
        target_type=action.partition(".")[0],
        target_id=target.id,
        before=before,
        after=after,
    )
    db.session.add(entry)
