"""The database as the models and services use it: column types (UTC timestamps), the LIKE
and text-search helpers, `read()` for lists, and how pooled connections are kept alive.

Timestamps are timezone-aware UTC in Python on every database: Postgres stores `timestamptz`,
SQLite has no zone at all, and `UTCDateTime` hides the difference.

Transactions have one rule. The service function that a route, a job or a command calls is the
unit of work: it commits, or raises having rolled back what it did (a unit that needs a step
seen by others before the next, such as an Idempotency-Key claim or a payment committed before
Stripe is asked for its intent, commits each step itself). Everything it calls works inside its
transaction and never commits or rolls it back: helpers (a leading underscore), and the public
functions other domains build their units from (`orders.service.transition`, `lock_order`,
`payments.service.refund`, the `apply_*` functions). A savepoint (`begin_nested`) that undoes
only its own insert is not a rollback of the unit. Rows that two units change together are
locked in one order, the order's row before its payment's.
"""

import itertools
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Engine, Executable, Row, bindparam, event, literal_column, or_
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from nexus.config import READS
from nexus.extensions import db


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

    def result_processor(self, dialect, coltype):
        if dialect.name == "postgresql":
            return None  # psycopg2 hands back aware datetimes, in UTC: the session's TimeZone (config)
        return super().result_processor(dialect, coltype)

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


def _literal(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally: bind it to `matches`."""
    return "%" + _literal(text) + "%"


def matches(column: Any, name: str) -> ColumnElement:
    """`column` holds, in any case, the `contains()` pattern bound as `name`."""
    return column.ilike(bindparam(name), escape="\\")


def word_start(text: str) -> str:
    """A LIKE pattern matching text that starts with `text`, its wildcards taken literally: bind
    it to `starts_a_word`."""
    return _literal(text) + "%"


def starts_a_word(column: Any, name: str) -> ColumnElement:
    """`column` has, in any case, a word starting with the `word_start()` pattern bound as `name`:
    at its start or after a space.

    Unlike `%tv%`, both patterns yield trigrams (`  t`, ` tv`: pg_trgm pads the start of each
    word), so a trigram index serves words of one or two letters; and Postgres estimates how
    many rows they match from the column's statistics, as it does for `%word%`.
    """
    pattern = bindparam(name)
    after_a_space = literal_column("'% '").concat(pattern)
    return or_(column.ilike(pattern, escape="\\"), column.ilike(after_a_space, escape="\\"))


def read(
    statement: Executable, params: Mapping[str, Any] | None = None, *, planned_once: bool = False
) -> Sequence[Row]:
    """The rows of a read-only statement, through the autocommit engine lists use: no
    transaction to begin and roll back, two database round trips fewer.

    `planned_once`: on Postgres, the statement is prepared once per connection and its one
    plan reused (`plan_once`). Only for a statement whose best plan does not depend on the
    values bound (no search pattern, no range): one plan then serves every value. A prepared
    statement gone stale (a migration changed a column it reads, or someone deallocated it) is
    prepared afresh and the read run again, once.
    """
    with db.engines[READS].connect() as connection:

        def rows() -> Sequence[Row]:
            return connection.execute(statement, params or {}, execution_options={PLANNED_ONCE: planned_once}).all()

        try:
            return rows()
        except DBAPIError as error:
            if not planned_once or getattr(error.orig, "pgcode", None) not in STALE_PREPARED:
                raise
            connection.exec_driver_sql("DEALLOCATE ALL")
            connection.connection.info.pop("prepared", None)
            return rows()


PLANNED_ONCE = "nexus_planned_once"
# What Postgres answers an EXECUTE whose statement is not there any more (26000) or whose
# result columns changed type since it was prepared (0A000, "cached plan must not change
# result type").
STALE_PREPARED = frozenset({"26000", "0A000"})
# psycopg2's placeholders (`%(name)s`) and its escaped percent sign, as PREPARE wants them.
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
MAX_PREPARED_PER_CONNECTION = 64
PREPARED_NAMES = itertools.count(1)


def _prepare(cursor: Any, statement: str, prepared: dict[str, tuple[str, list[str]]]) -> tuple[str, list[str]]:
    """PREPARE `statement` on this connection under a new name: the name and the order of its
    parameters. Past MAX_PREPARED_PER_CONNECTION the least recently run is deallocated (the
    dict keeps them in the order they last ran)."""
    if len(prepared) >= MAX_PREPARED_PER_CONNECTION:
        oldest = next(iter(prepared))
        cursor.execute(f"DEALLOCATE {prepared.pop(oldest)[0]}")
    order: list[str] = []

    def positional(match: re.Match) -> str:
        if match.group(1) is None:
            return "%"
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    name = f"nexus_{next(PREPARED_NAMES)}"
    cursor.execute(f"PREPARE {name} AS {PLACEHOLDER.sub(positional, statement)}")
    prepared[statement] = (name, order)
    return name, order


def plan_once(engine: Engine) -> None:
    """Let Postgres plan a read marked `planned_once` once per connection instead of each time.

    Planning a catalog page (three tables joined) costs Postgres more than running it does:
    0.2 of 0.33 ms. So such a statement is PREPAREd the first time a connection runs it, and
    EXECUTEd from then on, with a generic plan (`plan_cache_mode`; Postgres's own choice would
    keep planning, as a generic LIMIT $n looks dearer than a custom LIMIT 21). psycopg2 prepares
    nothing itself, so the setting touches no other statement. A prepared statement lives and
    dies with its connection (the names are kept in the connection's `info`, which SQLAlchemy
    drops with it); the pool never hands a connection to anything but this app. (A pooler in
    front of Postgres must pool by session: in PgBouncer's transaction mode a PREPARE and its
    EXECUTE may reach different server connections.)
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.close()
        dbapi_connection.commit()  # kept whatever SQLAlchemy's reset on return rolls back

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _execute_prepared(connection, cursor, statement, parameters, context, executemany):
        if executemany or context is None or not context.execution_options.get(PLANNED_ONCE):
            return statement, parameters
        prepared = connection.connection.info.setdefault("prepared", {})
        if statement in prepared:
            name, order = prepared[statement] = prepared.pop(statement)  # now the most recent
        else:
            name, order = _prepare(cursor, statement, prepared)
        arguments = ", ".join(f"%({parameter})s" for parameter in order)
        return f"EXECUTE {name}({arguments})" if order else f"EXECUTE {name}", parameters


PING_AFTER_IDLE_SECONDS = 10.0


def ping_after_idle(engine: Engine) -> None:
    """Test a pooled connection before use, but only one that sat idle a while.

    `pool_pre_ping` tests every checkout, a database round trip per request (a tenth of a
    catalog page). A connection in steady use proves itself with every query; one left idle may
    have been cut by a database restart or a proxy, so it is pinged and, if dead, replaced
    before the request sees it. A connection cut while in use fails that one request with a
    503, and SQLAlchemy then replaces every pooled connection made before the failure.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection, connection_record) -> None:
        connection_record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, connection_record, connection_proxy) -> None:
        idle_since = connection_record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as error:  # the pool retries the checkout with a new connection
            raise DisconnectionError("idle connection did not answer a ping") from error


def configure_engines(engines: Mapping[str | None, Engine]) -> None:
    """Postgres pools ping idle connections, and the lists' engine plans some reads once;
    SQLite gets foreign keys and real transactions (not on the autocommit engine lists read
    through, which runs no transactions)."""
    for key, engine in engines.items():
        if engine.dialect.name == "postgresql":
            ping_after_idle(engine)
            if key == READS:
                plan_once(engine)
        elif key is None:
            configure_sqlite(engine)


SQLITE_BUSY_TIMEOUT_MS = 5000


def configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave: enforce foreign keys, and let SQLAlchemy own BEGIN so savepoints work.

    pysqlite starts transactions on its own and breaks SAVEPOINT; this is SQLAlchemy's
    documented recipe for handing transaction control back. Transactions begin IMMEDIATE: a
    request and a background job writing at once then take turns (waiting up to the busy
    timeout) instead of one failing at once when both try to turn a read lock into a write lock.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
