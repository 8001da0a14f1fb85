"""Sales reports: one row per order of a store paid in a date range, as CSV or JSON, built by
a job (a year of a busy store never holds a web request) and emailed about when ready.

After the contract's columns come the buyer's email and the shipping address, so the seller can
send the goods from the report: in CSV one column per address field (`ship_name`, `ship_line1`,
...; empty for orders placed before addresses were asked for), ready for a spreadsheet or a
label printer; in JSON the address as one object (or null). What buyers typed is written to CSV
so that no spreadsheet runs it as a formula (OWASP's CSV injection advice: a leading `=`, `+`,
`-`, `@`, tab or carriage return gets a `'` before it).

The rows stream from the database in chunks and are written and gzipped as they come, so a
year of a busy store (a hundred thousand orders and more) never sits in memory at once; the
gzipped file is kept with the report in the user's history, and streamed back on download.
"""

import csv
import io
import logging
import zlib
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, Row, bindparam, cast, func, select, text
from sqlalchemy.exc import OperationalError

from nexus import audit
from nexus.database import utcnow
from nexus.emails import send_email
from nexus.errors import Conflict, NotFound
from nexus.extensions import db
from nexus.jobs import outbox
from nexus.notifications import emails
from nexus.orders.models import Order, OrderItem
from nexus.pagination import newest_first, paginate
from nexus.payments.models import Payment
from nexus.reports.models import UserReportHistory
from nexus.stores.models import Store
from nexus.users.models import User

log = logging.getLogger(__name__)
COLUMNS = (
    "order_id", "created_at", "paid_at", "status", "item_count", "subtotal", "total", "refunded", "net", "currency",
)  # fmt: skip
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone")
CSV_COLUMNS = (*COLUMNS, "buyer_email", *(f"ship_{field}" for field in ADDRESS_FIELDS))
CHUNK_ROWS = 2_000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

orders, order_items, payments, users = Order.__table__, OrderItem.__table__, Payment.__table__, User.__table__
# What was refunded of the order's payments (normally one succeeded payment), read per order
# through the index on payments.order_id.
REFUNDED = (
    select(cast(func.coalesce(func.sum(payments.c.amount_refunded), 0), BigInteger))  # Postgres sums to numeric
    .where(payments.c.order_id == orders.c.id)
    .scalar_subquery()
)
# One row per order; grouped, so Postgres keeps it a subquery and reads REFUNDED once a row.
PAID_ORDERS = (
    select(
        orders.c.id.label("order_id"),
        orders.c.created_at,
        orders.c.paid_at,
        orders.c.status,
        func.sum(order_items.c.quantity).label("item_count"),
        orders.c.subtotal,
        orders.c.total,
        REFUNDED.label("refunded"),
        orders.c.currency,
        orders.c.buyer_id,
        orders.c.shipping_address,
    )
    .join(order_items, order_items.c.order_id == orders.c.id)
    .where(
        orders.c.store_id == bindparam("store_id"),
        orders.c.paid_at >= bindparam("start"),
        orders.c.paid_at < bindparam("end"),
    )
    .group_by(orders.c.id)
    .subquery("paid_orders")
)
sale = PAID_ORDERS.c
# The buyer's email, read per row through the users' primary key.
BUYER_EMAIL = select(users.c.email).where(users.c.id == sale.buyer_id).scalar_subquery()
SALES = select(
    sale.order_id,
    sale.created_at,
    sale.paid_at,
    sale.status,
    sale.item_count,
    sale.subtotal,
    sale.total,
    sale.refunded,
    (sale.total - sale.refunded).label("net"),
    sale.currency,
    BUYER_EMAIL.label("buyer_email"),
    sale.shipping_address,
).order_by(sale.paid_at, sale.order_id)


def sales_params(store_id: int, date_from: date, date_to: date) -> dict[str, Any]:
    """SALES's parameters: from the start of `date_from` to the end of `date_to`, UTC."""
    start, end = (datetime.combine(day, time(), UTC) for day in (date_from, date_to + timedelta(days=1)))
    return {"store_id": store_id, "start": start, "end": end}


def _chunks_of_sales(store_id: int, date_from: date, date_to: date) -> Iterator[list[Row]]:
    """The store's sales in the range, a chunk at a time, from a server-side cursor in the
    job's own transaction (a second connection would wait on SQLite for the job's own lock)."""
    streamed = {"stream_results": True, "yield_per": CHUNK_ROWS}  # this statement's, not the connection's
    result = db.session.connection().execute(
        SALES, sales_params(store_id, date_from, date_to), execution_options=streamed
    )
    with closing(result):
        yield from result.partitions()


FORMULA_STARTS = "=+-@\t\r"
NO_ADDRESS: dict[str, Any] = {}


def _csv_row(row: Row) -> tuple:
    typed = (row.buyer_email, *map((row.shipping_address or NO_ADDRESS).get, ADDRESS_FIELDS))
    return (
        row.order_id,
        row.created_at.isoformat(),
        row.paid_at.isoformat(),
        *row[3 : len(COLUMNS)],
        # What a buyer typed, as a spreadsheet will show it rather than run it.
        *[f"'{text}" if text and text[0] in FORMULA_STARTS else text for text in typed],
    )


def _csv(chunks: Iterable[list[Row]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for chunk in chunks:
        writer.writerows(map(_csv_row, chunk))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json_row(row: Row) -> str:
    fields = dict(zip(COLUMNS, row, strict=False))
    return orjson.dumps({**fields, "buyer_email": row.buyer_email, "shipping_address": row.shipping_address}).decode()


def _json(chunks: Iterable[list[Row]]) -> Iterator[str]:
    separator = "["
    for chunk in chunks:
        if chunk:
            yield separator + ",".join(map(_json_row, chunk))
            separator = ","
    yield "]" if separator == "," else "[]"


def _gzipped(pieces: Iterable[str]) -> bytes:
    compressor = zlib.compressobj(wbits=31)  # the gzip format
    parts = [compressor.compress(piece.encode()) for piece in pieces]
    return b"".join([*parts, compressor.flush()])


BUILD, READY_EMAIL = "reports.build", "reports.email_ready"
JOB_STATEMENT_TIMEOUT_MS = 4 * 60_000  # within the job's own time limit (nexus.jobs.broker)


REPORT_ASKED = ("store_id", "type", "format", "parameters", "status")


def create_sales_report(
    user: User, store: Store, *, date_from: date, date_to: date, format: str, type: str
) -> UserReportHistory:
    """Ask for a report: it is kept in `user`'s history as `pending` and built by a job."""
    report = UserReportHistory(
        user_id=user.id,
        store_id=store.id,
        type=type,
        format=format,
        parameters={"date_from": date_from.isoformat(), "date_to": date_to.isoformat()},
    )
    db.session.add(report)
    db.session.flush()
    outbox.enqueue(BUILD, report_id=report.id)
    audit.record(user, "report.request", report, None, audit.snapshot(report, REPORT_ASKED))
    db.session.commit()
    return report


@outbox.job(BUILD)
def build_report(*, report_id: int) -> None:
    """The job: write the report's file, streamed from a server-side cursor, then mark it ready
    (and email its user) or failed with the reason."""
    report = db.session.get(UserReportHistory, report_id)
    if report is None or report.status != "pending":
        return
    if db.session.get_bind().dialect.name == "postgresql":  # a job, not a request: its own time limit
        db.session.execute(text(f"SET LOCAL statement_timeout = {JOB_STATEMENT_TIMEOUT_MS}"))
    try:
        write_report(report)
        outbox.enqueue(READY_EMAIL, report_id=report.id)
    except OperationalError:
        raise  # the database, not the report: the job is tried again
    except Exception as error:
        log.exception("building report %s failed", report.id)
        report.status, report.error = "failed", f"The report could not be built ({type(error).__name__})."
        report.finished_at = utcnow()


def write_report(report: UserReportHistory) -> None:
    """Write a pending report's file and mark it ready, in the caller's transaction: the job's
    work, without its email (`demo seed` makes its ready report so)."""
    params = report.parameters
    date_from, date_to = date.fromisoformat(params["date_from"]), date.fromisoformat(params["date_to"])
    report.content, report.row_count = _build(report.store_id, date_from, date_to, report.format)
    report.status = "ready"
    report.finished_at = utcnow()


def _build(store_id: int, date_from: date, date_to: date, format: str) -> tuple[bytes, int]:
    """The gzipped file and its row count."""
    counted = 0

    def counting(chunks: Iterable[list[Row]]) -> Iterator[list[Row]]:
        nonlocal counted
        for chunk in chunks:
            counted += len(chunk)
            yield chunk

    writer = _csv if format == "csv" else _json
    # Closed even if writing fails, so the cursor's transaction never outlives the job.
    with closing(_chunks_of_sales(store_id, date_from, date_to)) as chunks:
        content = _gzipped(writer(counting(chunks)))
    return content, counted


@outbox.job(READY_EMAIL)
def email_ready(*, report_id: int) -> None:
    """The job: tell the report's user it can be downloaded."""
    report = db.session.get(UserReportHistory, report_id)
    user = db.session.get(User, report.user_id) if report is not None else None
    if user is None:
        return
    params = report.parameters
    email = emails.report_ready(
        report_id=report.id, row_count=report.row_count, date_from=params["date_from"], date_to=params["date_to"]
    )
    send_email(email.subject, user.email, email.text, email.html)


def get_report_for(user: User, report_id: int) -> UserReportHistory:
    """The report if it is `user`'s (or `user` is an admin); else 404."""
    report = db.session.get(UserReportHistory, report_id)
    if report is None or (report.user_id != user.id and not user.is_admin):
        raise NotFound("No such report.")
    return report


def download(report: UserReportHistory) -> tuple[Iterator[bytes], str, str]:
    """The report's file as a stream of chunks, its content type and its file name; a 409
    while it is being built or if building it failed."""
    if report.status == "pending":
        raise Conflict("The report is still being built; you will get an email when it is ready.")
    if report.status == "failed":
        raise Conflict(f"The report failed: {report.error} Ask for it again.")
    blob = report.content
    decompressor = zlib.decompressobj(wbits=31)

    def stream() -> Iterator[bytes]:
        for start in range(0, len(blob), 64 * 1024):
            yield decompressor.decompress(blob[start : start + 64 * 1024])
        yield decompressor.flush()

    period = f"{report.parameters['date_from']}_{report.parameters['date_to']}"
    return stream(), CONTENT_TYPES[report.format], f"sales-store-{report.store_id}-{period}.{report.format}"


reports = UserReportHistory.__table__
HISTORY = select(*(column for column in reports.c if column.key != "content")).where(
    reports.c.user_id == bindparam("user_id")
)


def history(user: User, *, limit: int, cursor: str | None = None) -> dict[str, Any]:
    """The reports `user` generated, newest first (without their files)."""
    return paginate(HISTORY, newest_first(reports), limit=limit, cursor=cursor, params={"user_id": user.id})
