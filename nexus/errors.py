"""Domain errors and the one JSON error shape every failure is answered in.

Services raise the errors below; routes never build error responses themselves. Every
HTTP error (our own, werkzeug's, webargs' validation, an unhandled crash) leaves as
`{"code", "status", "message", "errors"?}`, flask-smorest's shape.
"""

import logging
import math
import sqlite3
import time
from http import HTTPStatus
from typing import Any

from flask import Flask, request
from flask_limiter import RateLimitExceeded
from marshmallow import Schema, fields
from psycopg2 import errorcodes
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from nexus.extensions import limiter

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A request the service refuses; `status_code` says how."""

    status_code = HTTPStatus.BAD_REQUEST

    def __init__(
        self, message: str, *, errors: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.headers = headers or {}


class BadRequest(DomainError):
    status_code = HTTPStatus.BAD_REQUEST


class Invalid(DomainError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


class Unauthorized(DomainError):
    status_code = HTTPStatus.UNAUTHORIZED


class Forbidden(DomainError):
    status_code = HTTPStatus.FORBIDDEN


class NotFound(DomainError):
    status_code = HTTPStatus.NOT_FOUND


class Conflict(DomainError):
    status_code = HTTPStatus.CONFLICT


class ServiceUnavailable(DomainError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class ErrorSchema(Schema):
    """The one error shape as the OpenAPI document shows it: code, status and message always."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code.", "example": 404})
    status = fields.String(required=True, metadata={"description": "Its reason phrase.", "example": "Not Found"})
    message = fields.String(required=True, metadata={"description": "What went wrong, for a person."})
    errors = fields.Dict(metadata={"description": "Per location and field, what is wrong with the input."})


def error_body(status: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape (flask-smorest's)."""
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _domain_error(error: DomainError):
    return error_body(error.status_code, error.message, error.errors), error.status_code, error.headers


# webargs' validation failures, in plain words (its stock descriptions are werkzeug's, vague).
VALIDATION_MESSAGES = {
    400: "The request body is not valid JSON.",
    422: "Some input is invalid; `errors` says what, field by field.",
}
TOO_LARGE = "The request body is larger than 1 MiB."


def _in_words(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _wait_in_words(seconds: float) -> str:
    """57 minutes, 40 seconds, 3 hours: rounded up, so trying then is never too early."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return _in_words(seconds, "second")
    if seconds <= 90 * 60:
        return _in_words(math.ceil(seconds / 60), "minute")
    return _in_words(math.ceil(seconds / 3600), "hour")


def _rate_limited(error: RateLimitExceeded) -> tuple[str, dict[str, str]]:
    """ "Too many requests: at most 5 per hour; try again in 57 minutes.", and `Retry-After` in
    seconds: the limit's own words, and the wait until its window resets (rounded up, so trying
    then is never too early)."""
    item = error.limit.limit
    unit = item.GRANULARITY.name
    per = unit if item.multiples == 1 else _in_words(item.multiples, unit)
    current = limiter.current_limit
    if current is None:
        return f"Too many requests: at most {item.amount} per {per}.", {}
    wait = max(1, math.ceil(current.reset_at - time.time()))
    return f"Too many requests: at most {item.amount} per {per}; try again in {_wait_in_words(wait)}.", {
        "Retry-After": str(wait)
    }


def _http_error(error: HTTPException):
    # webargs' abort() puts validation messages and extra headers in `data`.
    data = getattr(error, "data", None) or {}
    code = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    errors = data.get("errors") or data.get("messages")
    message = data.get("message") or error.description or HTTPStatus(code).phrase
    if errors:
        message = VALIDATION_MESSAGES.get(code, message)
    elif code == 413:
        message = TOO_LARGE
    elif isinstance(error, RateLimitExceeded):
        message, wait = _rate_limited(error)
        headers.update(wait)
    return error_body(code, message, errors), code, headers


def _database_unavailable(error: Exception):
    log.error("database unavailable: %s", error.__class__.__name__, exc_info=error)
    status = HTTPStatus.SERVICE_UNAVAILABLE
    return error_body(status, "The database is unavailable; try again shortly."), status, {"Retry-After": "5"}


CONFLICTED = "Another request was changing the same data; retry in a moment."
TOO_SLOW = "The database took too long to answer; retry in a moment."
# Errors of a healthy database that a retry of the request may well get past: SQLSTATE -> what
# happened, and what the caller is told.
RETRYABLE = {
    errorcodes.LOCK_NOT_AVAILABLE: ("lock timeout", CONFLICTED),  # 55P03, past lock_timeout
    errorcodes.DEADLOCK_DETECTED: ("deadlock", CONFLICTED),  # 40P01
    errorcodes.SERIALIZATION_FAILURE: ("serialization failure", CONFLICTED),  # 40001
    errorcodes.QUERY_CANCELED: ("statement timeout", TOO_SLOW),  # 57014, past statement_timeout
}
SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")  # "database is locked": another writer held on too long


def retryable(error: Exception) -> tuple[str, str, str] | None:
    """`(its SQLSTATE or SQLite code, what happened, the message)` if `error` is a conflict of
    a healthy database that a retry may get past; else None."""
    if not isinstance(error, OperationalError):
        return None
    original = error.orig
    pgcode = getattr(original, "pgcode", None)
    if pgcode in RETRYABLE:
        return pgcode, *RETRYABLE[pgcode]
    if isinstance(original, sqlite3.OperationalError) and (
        getattr(original, "sqlite_errorname", None) in SQLITE_BUSY or "locked" in str(original)
    ):
        return getattr(original, "sqlite_errorname", "SQLITE_BUSY"), "database locked", CONFLICTED
    return None


def _database_error(error: OperationalError):
    """A lock, deadlock or timeout is a conflict to retry shortly; anything else an outage."""
    conflict = retryable(error)
    if conflict is None:
        return _database_unavailable(error)
    code, kind, message = conflict
    log.warning(
        "database %s (SQLSTATE %s) on %s %s: answered 503, to be retried",
        kind,
        code,
        request.method,
        request.path,
        extra={"fields": {"database_error": kind, "sqlstate": code}},
    )
    status = HTTPStatus.SERVICE_UNAVAILABLE
    return error_body(status, message), status, {"Retry-After": "1"}


def register_error_handlers(app: Flask) -> None:
    """Answer every error in the one shape: ours, werkzeug's, webargs' and the database's."""
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(InterfaceError, _database_unavailable)
