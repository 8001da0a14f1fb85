"""Who may call a route, declared on the route: `@login_required()`.

The decorator enforces the rule and documents it (bearer security, the 401 answer), so the
OpenAPI document cannot drift from what the code checks. The user is read from the database
on every request, never trusted from the token alone.
"""

from collections.abc import Callable

from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from nexus.openapi import documents_errors

BEARER = [{"bearerAuth": []}]


def login_required(*, refresh: bool = False) -> Callable:
    """A signed-in, active user (with a refresh token instead of an access token if `refresh`)."""

    def decorator(view: Callable) -> Callable:
        checked = jwt_required(refresh=refresh)(view)
        return documents_errors(401)(Blueprint.doc(security=BEARER)(checked))

    return decorator
