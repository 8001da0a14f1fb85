"""Per-request plumbing: the request id, security headers and one JSON access-log line."""

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request
from flask_jwt_extended import get_jwt_identity

access_log = logging.getLogger("nexus.access")

# A caller's request id is echoed only if it is short and plain, so it cannot forge log lines.
CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"


def _start_request() -> None:
    g.started = time.perf_counter()
    caller_id = request.headers.get("X-Request-ID", "")
    g.request_id = caller_id if CALLER_REQUEST_ID.match(caller_id) else uuid.uuid4().hex


def _signed_in_user_id() -> str | None:
    try:
        return get_jwt_identity()
    except RuntimeError:  # no token was checked for this request
        return None


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    docs = request.path == "/api/docs" or request.path.startswith("/api/docs/")
    response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else API_CSP)
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "fields": {
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 2),
                "request_id": request_id,
                "user_id": _signed_in_user_id(),
                "remote_addr": request.remote_addr,
            }
        },
    )
    return response


def register_request_hooks(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
