"""Per-request plumbing: the request id, security headers, one JSON access-log line, no cookie
sessions, query arguments read without an exception per field not given, and the HTTP caching
of public reads (`cacheable`)."""

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Request, Response, g, request
from flask.sessions import SessionInterface, SessionMixin
from flask_jwt_extended import get_jwt_identity
from werkzeug.datastructures import ImmutableMultiDict

from nexus.openapi import Blueprint

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
    method, path, status = request.method, request.path, response.status_code
    headers = response.headers
    headers["X-Request-ID"] = request_id
    # Set, not setdefault: no view sets these, and werkzeug's setdefault builds an exception for
    # each header it does not find (three a request, 2% of a catalog page's Python).
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    docs = path == "/api/docs" or path.startswith("/api/docs/")
    headers["Content-Security-Policy"] = DOCS_CSP if docs else API_CSP
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    access_log.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "fields": {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "request_id": request_id,
                "user_id": _signed_in_user_id(),
                "remote_addr": request.remote_addr,
            }
        },
    )
    return response


class QueryArgs(ImmutableMultiDict):
    """Query (and form) arguments whose `get` of a name not given returns the default at once.
    werkzeug's raises and catches a BadRequestKeyError, an HTTP exception costly to build, and
    webargs asks for every field of a schema, given or not: eight a catalog page, 1.4% of it."""

    def get(self, key: str, default: Any = None, type: Callable | None = None) -> Any:
        if not dict.__contains__(self, key):
            return default
        return super().get(key, default, type)


class NexusRequest(Request):
    parameter_storage_class = QueryArgs


class NoCookieSessions(SessionInterface):
    """A bearer-token API keeps no cookie session: skip opening one on every request (and any
    attempt to write one fails loudly, through Flask's NullSession)."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def register_request_hooks(app: Flask) -> None:
    app.session_interface = NoCookieSessions()
    app.request_class = NexusRequest
    app.before_request(_start_request)
    app.after_request(_finish_request)


# Anyone's copy of a public read may be reused for half a minute: a product's price or stock is
# that stale at worst, and the catalog's busiest pages are served by caches in front of us.
PUBLIC_CACHE_CONTROL = "public, max-age=30"
# An answer that depends on who asks (an owner sees their inactive store, an admin everything):
# never kept by a shared cache, nor served to anyone else.
PRIVATE_CACHE_CONTROL = "private"
NOT_MODIFIED = {"304": {"description": "Not Modified: the `ETag` sent in `If-None-Match` still matches."}}


def cacheable(view: Callable) -> Callable:
    """A public read's 200 carries an ETag of its body, and the same request with that ETag in
    `If-None-Match` is answered 304 with no body (the work is done, the bytes are not sent).
    Anonymous answers are `public, max-age=30`; an answer to a request carrying Authorization
    may depend on who asks, so it is `private`. `Vary: Authorization, Origin` keeps caches from
    handing the one to the other, and an answer without CORS headers (to a request with no
    Origin) to a browser's cross-origin call. Hashing the body costs microseconds and no second
    query."""

    @wraps(view)
    def answer(*args, **kwargs) -> Response:
        response = view(*args, **kwargs)
        if response.status_code != 200:
            return response
        headers = response.headers
        headers["Cache-Control"] = PRIVATE_CACHE_CONTROL if "Authorization" in request.headers else PUBLIC_CACHE_CONTROL
        headers["Vary"] = "Authorization, Origin"
        etag = hashlib.sha1(response.get_data(), usedforsecurity=False).hexdigest()
        headers["ETag"] = f'"{etag}"'
        # Weak comparison, as RFC 9110 has it for If-None-Match (a proxy may have weakened ours).
        if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag):
            response.status_code = 304
            response.response = []
            for entity in ("Content-Type", "Content-Length"):
                headers.pop(entity, None)
        return response

    return Blueprint.doc(responses=NOT_MODIFIED)(answer)
