"""The `outbox` table: jobs written with the change that causes them, handed to the queue after
the commit, run once however often they are delivered.

- `enqueue` adds a row to the caller's transaction; nothing reaches the queue unless it commits.
- After the commit the new rows' ids are sent to the queue (`hand_over`); a row whose sending
  failed, or whose process died between commit and sending, is found by `sweep`.
- `run` locks the row, runs its handler and marks it done in the handler's own transaction (its
  last one, for a handler that commits steps: see `job`), so a second delivery finds it done
  and does nothing. A failure is recorded and raised for the
  queue to retry with backoff; after the last attempt (or past the job's deadline) the row stays
  `failed` with its error.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, event, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from nexus.database import UTCDateTime, utcnow
from nexus.extensions import db

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"
MAX_ATTEMPTS = 8  # with the queue's backoff (1 s doubling, at most 5 min), about 10 minutes of trying
NEVER_HANDED_OVER_AFTER = timedelta(seconds=5)  # a commit whose hand-over did not follow
LOST_AFTER = timedelta(hours=1)  # handed over, yet neither done nor failed: the message was lost

HANDLERS: dict[str, Callable[..., None]] = {}


class OutboxJob(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ('{PENDING}', '{DONE}', '{FAILED}')", name="status"),
        Index("ix_outbox_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Past this the job is not worth doing (a sign-in code that has expired): it fails instead.
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def job(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a job's handler: it is called with the row's payload as keyword arguments,
    inside the transaction that marks the row done, and does not commit. The one exception is a
    handler that moves money: it commits a note of each move before sending it to Stripe (so a
    lost answer is looked for, never sent twice), which lets go of the row until it is marked
    done; a second delivery may then run beside it, which such a handler is built for."""

    def register(handler: Callable[..., None]) -> Callable[..., None]:
        HANDLERS[name] = handler
        return handler

    return register


def enqueue(name: str, *, deadline: datetime | None = None, **payload: Any) -> OutboxJob:
    """Add job `name` to the current transaction; it reaches the queue once that commits."""
    if name not in HANDLERS:
        raise LookupError(f"no job is registered as {name!r}")
    row = OutboxJob(job=name, payload=payload, deadline=deadline, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    db.session.info.setdefault("outbox", []).append(row.id)
    return row


@event.listens_for(Session, "after_commit")
def _hand_over_after_commit(session: Session) -> None:
    ids = session.info.pop("outbox", None)
    if ids:
        hand_over(ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("outbox", None)


def hand_over(ids: list[int]) -> None:
    """Send the jobs to the queue and note when; if the queue cannot be reached the rows wait
    for the sweep (the change they belong to is committed either way)."""
    from nexus.jobs.broker import send  # the broker module builds on this one

    sent = []
    for outbox_id in ids:
        try:
            send(outbox_id)
            sent.append(outbox_id)
        except Exception as error:
            log.warning("job %s not handed to the queue (%s); the sweep will", outbox_id, type(error).__name__)
    if sent:
        # Outside the committed session, which is done. A row a worker already runs is locked
        # (maybe for a whole SMTP wait): skip it rather than wait for it; the job notes it itself.
        free = select(OutboxJob.id).where(OutboxJob.id.in_(sent)).with_for_update(skip_locked=True)
        noted = update(OutboxJob).where(OutboxJob.id.in_(free.scalar_subquery())).values(handed_over_at=utcnow())
        try:
            with db.engine.begin() as connection:
                connection.execute(noted)
        except Exception as error:  # the change is committed and its jobs queued: at worst the sweep sends again
            log.warning("noting the hand-over of jobs %s failed (%s)", sent, type(error).__name__)


def sweep() -> int:
    """Hand over the jobs a crash or a queue outage left behind; how many."""
    now = utcnow()
    stranded = select(OutboxJob.id).where(
        OutboxJob.status == PENDING,
        or_(
            OutboxJob.handed_over_at.is_(None) & (OutboxJob.created_at < now - NEVER_HANDED_OVER_AFTER),
            OutboxJob.handed_over_at < now - LOST_AFTER,
        ),
    )
    locked_skipped = stranded.order_by(OutboxJob.id).limit(1000).with_for_update(skip_locked=True)
    ids = list(db.session.scalars(locked_skipped))  # a row a worker is running is locked: not stranded
    db.session.rollback()
    if ids:
        hand_over(ids)
    return len(ids)


class JobFailed(Exception):
    """A job's attempt failed; the queue retries it."""


def run(outbox_id: int) -> None:
    """Run one delivery of a job: once, whatever the number of deliveries (the unit of work of
    every job). Raises JobFailed for the queue to retry while attempts and the deadline allow."""
    row = _locked(outbox_id)
    if row is None or row.status != PENDING:  # done (a redelivery), failed, or gone
        db.session.rollback()
        return
    row.handed_over_at = row.handed_over_at or utcnow()  # it reached a worker, whatever noted it
    if row.deadline is not None and utcnow() > row.deadline:
        _fail(row, "past its deadline before it could run")
        db.session.commit()
        return
    try:
        HANDLERS[row.job](**row.payload)
        row = _locked(outbox_id)  # the same lock, or taken again after a handler's own commit
        row.attempts += 1
        if row.status == PENDING:
            row.status, row.finished_at = DONE, utcnow()
        db.session.commit()
        return
    except Exception as error:
        db.session.rollback()
        reason, cause = f"{type(error).__name__}: {error}"[:1000], error
    row = _locked(outbox_id)
    if row.status != PENDING:  # another delivery, run beside this one, finished it meanwhile
        db.session.rollback()
        return
    row.attempts += 1
    row.handed_over_at = row.handed_over_at or utcnow()
    if row.attempts >= MAX_ATTEMPTS or (row.deadline is not None and utcnow() > row.deadline):
        _fail(row, reason)
        db.session.commit()
        return
    row.last_error = reason
    db.session.commit()
    log.warning("job %s (%s) attempt %s failed, to be retried: %s", row.id, row.job, row.attempts, reason)
    raise JobFailed(reason) from cause


def _locked(outbox_id: int) -> OutboxJob | None:
    statement = select(OutboxJob).where(OutboxJob.id == outbox_id).with_for_update()
    return db.session.scalar(statement.execution_options(populate_existing=True))


def _fail(row: OutboxJob, reason: str) -> None:
    row.status, row.last_error, row.finished_at = FAILED, reason, utcnow()
    log.error("job %s (%s) failed for good: %s", row.id, row.job, reason)
