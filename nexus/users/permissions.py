"""Who may call a route, declared on the route: `@login_required()`, `@login_optional()`,
`@admin_required()`.

Each decorator enforces its rule and documents it (bearer security, the 401/403 answers), so
the OpenAPI document cannot drift from what the code checks. The user is read from the
database on every request, never trusted from the token alone.
"""

from collections.abc import Callable
from functools import wraps

from flask_jwt_extended import get_current_user, jwt_required
from flask_smorest import Blueprint

from nexus.errors import Forbidden
from nexus.openapi import documents_errors

BEARER = {"bearerAuth": []}


def login_required(*, refresh: bool = False, verified: bool = False) -> Callable:
    """A signed-in, active user (with a refresh token instead if `refresh`; with a verified
    email address if `verified`)."""

    def decorator(view: Callable) -> Callable:
        if verified:
            view = _user_must("is_verified", "Verify your email address first: sign in with a code sent to it.")(view)
        checked = jwt_required(refresh=refresh)(view)
        statuses = (401, 403) if verified else (401,)
        return documents_errors(*statuses)(Blueprint.doc(security=[BEARER])(checked))

    return decorator


def login_optional() -> Callable:
    """Anyone; a valid token, if sent, identifies the caller (`get_current_user()`, else None)."""

    def decorator(view: Callable) -> Callable:
        checked = jwt_required(optional=True)(view)
        return documents_errors(401)(Blueprint.doc(security=[{}, BEARER])(checked))

    return decorator


def admin_required() -> Callable:
    """A signed-in admin; anyone else signed in gets 403. The role is the one in the database."""

    def decorator(view: Callable) -> Callable:
        admins_only = _user_must("is_admin", "Only admins may do this.")(view)
        return documents_errors(403)(login_required()(admins_only))

    return decorator


def _user_must(flag: str, refusal: str) -> Callable:
    """Wrap a view: the signed-in user's `flag`, as the database has it, must be true; else 403."""

    def wrap(view: Callable) -> Callable:
        @wraps(view)
        def checked(*args, **kwargs):
            if not getattr(get_current_user(), flag):
                raise Forbidden(refusal)
            return view(*args, **kwargs)

        return checked

    return wrap
