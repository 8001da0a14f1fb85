"""Column types and helpers shared by every model.

Timestamps are timezone-aware UTC in Python on every database: Postgres stores `timestamptz`,
SQLite has no zone at all, and `UTCDateTime` hides the difference.
"""

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, event
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, aware, in UTC: the only clock the services read."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """`timestamptz` that always hands back aware UTC datetimes and refuses naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite stores the UTC wall time without a zone
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Timestamps:
    """`created_at` and `updated_at`, set by the ORM on insert and update."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


def configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave: enforce foreign keys, and let SQLAlchemy own BEGIN so savepoints work.

    pysqlite starts transactions on its own and breaks SAVEPOINT; this is SQLAlchemy's
    documented recipe for handing transaction control back.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")
