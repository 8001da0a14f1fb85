"""JWT access and refresh tokens: issue, rotate, revoke, and the checks flask-jwt-extended runs.

Revocation lives in the database (`revoked_tokens`, by jti), so it holds across workers,
instances and restarts. Access tokens are checked against it on every request. Refresh tokens
are checked where they are spent, in `rotate_refresh_token`: spending one inserts its jti, and
the unique constraint makes a second spend (a replay of a rotated or logged-out token) fail,
which revokes every refresh token of the user by bumping their refresh-token generation;
unless it comes within JWT_REFRESH_REUSE_GRACE_SECONDS of the rotation (two tabs refreshing at
once, a retried request), which gets a fresh pair and revokes nothing.

Deactivating a user kills every token they hold for good: `tokens_valid_after` is set to that
moment, and a token issued at or before it is refused even once the user is active again.
Tokens carry their issue time in milliseconds (`iat_ms`): the standard `iat` has whole seconds,
which cannot tell a token issued just before a deactivation from one issued just after.
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
from flask import current_app
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from nexus.auth.models import RevokedToken
from nexus.database import utcnow
from nexus.errors import Invalid, Unauthorized, error_body
from nexus.extensions import db
from nexus.users.models import User

REPLAYED = "This refresh token was already used, so every session of this account was signed out; sign in again."


def issue_tokens(user: User) -> dict[str, Any]:
    """A new access and refresh token pair for the user."""
    identity = str(user.id)  # PyJWT refuses a non-string subject
    issued = {"iat_ms": int(time.time() * 1000)}
    return {
        "access_token": create_access_token(identity=identity, additional_claims=issued),
        "refresh_token": create_refresh_token(
            identity=identity, additional_claims={**issued, "gen": user.refresh_token_generation}
        ),
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TOKEN_EXPIRES_SECONDS"],
    }


def revoke_refresh_tokens(user: User) -> None:
    """Kill every refresh token `user` holds, in the caller's transaction: tokens carry the
    generation they were issued in, and it moves on."""
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(refresh_token_generation=User.refresh_token_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def revoke_all_tokens(user: User) -> None:
    """Kill every token `user` holds, access and refresh, even after a reactivation; in the
    caller's transaction."""
    user.tokens_valid_after = datetime.now(UTC)
    revoke_refresh_tokens(user)


def _issued_ms(claims: dict[str, Any]) -> int:
    """When the token was issued, in milliseconds; a token without `iat_ms` counts as issued at
    the end of its `iat` second (refused if that second could be the deactivation's)."""
    if isinstance(claims.get("iat_ms"), int):
        return claims["iat_ms"]
    return int(claims["iat"]) * 1000 + 999


def rotate_refresh_token(user: User, claims: dict[str, Any]) -> dict[str, Any]:
    """Spend a refresh token for a new pair; spending one twice revokes all the user's refresh tokens."""
    if claims.get("gen") != user.refresh_token_generation:
        raise Unauthorized("This refresh token has been revoked; sign in again.")
    if not _revoke(claims, rotated=True) and not _rotated_just_now(claims):
        revoke_refresh_tokens(user)
        db.session.commit()
        raise Unauthorized(REPLAYED)
    tokens = issue_tokens(user)
    db.session.commit()
    return tokens


def sign_out(user: User, access_claims: dict[str, Any], refresh_token: str | None) -> None:
    """Revoke the access token in use and, if given, the user's refresh token."""
    refresh_claims = _decode_own_refresh_token(user, refresh_token) if refresh_token else None
    _revoke(access_claims)
    if refresh_claims is not None:
        _revoke(refresh_claims)
    db.session.commit()


def prune_revoked_tokens() -> int:
    """Delete the revoked-token rows of tokens that have expired (refused for that alone now); how many."""
    pruned = db.session.execute(
        delete(RevokedToken).where(RevokedToken.expires_at < utcnow()).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return pruned


def _decode_own_refresh_token(user: User, token: str) -> dict[str, Any]:
    try:
        claims = decode_token(token, allow_expired=True)
    except (pyjwt.PyJWTError, JWTExtendedException):
        claims = {}
    if claims.get("type") != "refresh" or claims.get("sub") != str(user.id):
        message = "Not a refresh token of this account."
        raise Invalid(message, errors={"json": {"refresh_token": [message]}})
    return claims


def _rotated_just_now(claims: dict[str, Any]) -> bool:
    """Whether this already spent refresh token was rotated (not signed out) within the grace window."""
    spent = db.session.execute(
        select(RevokedToken.rotated, RevokedToken.revoked_at).where(RevokedToken.jti == claims["jti"])
    ).one_or_none()
    grace = timedelta(seconds=current_app.config["JWT_REFRESH_REUSE_GRACE_SECONDS"])
    return spent is not None and spent.rotated and utcnow() - spent.revoked_at <= grace


def _revoke(claims: dict[str, Any], *, rotated: bool = False) -> bool:
    """Record the token as revoked; False if it already was (the unique jti decides, even in a race)."""
    try:
        with db.session.begin_nested():
            db.session.add(
                RevokedToken(
                    jti=claims["jti"],
                    token_type=claims["type"],
                    user_id=int(claims["sub"]),
                    expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                    rotated=rotated,
                )
            )
        return True
    except IntegrityError:
        return False


def _is_access_token_revoked(jwt_header: dict, jwt_payload: dict) -> bool:
    if jwt_payload["type"] != "access":
        return False  # refresh tokens are checked where they are spent
    return db.session.scalar(select(RevokedToken.id).where(RevokedToken.jti == jwt_payload["jti"])) is not None


def _load_active_user(jwt_header: dict, jwt_payload: dict) -> User | None:
    """The token's user, read from the database on every request: deactivation applies at once."""
    user = db.session.get(User, int(jwt_payload["sub"]))
    if user is None or not user.is_active:
        return None
    if user.tokens_valid_after is not None and _issued_ms(jwt_payload) <= int(
        user.tokens_valid_after.timestamp() * 1000
    ):
        return None  # issued before the user was last deactivated
    return user


def _unauthorized(message: str):
    return error_body(401, message), 401, {"WWW-Authenticate": "Bearer"}


def init_jwt(jwt: JWTManager) -> None:
    """Wire our token checks into flask-jwt-extended and make every failure a 401 in our shape."""
    jwt.token_in_blocklist_loader(_is_access_token_revoked)
    jwt.user_lookup_loader(_load_active_user)
    jwt.unauthorized_loader(lambda reason: _unauthorized("Sign in first: send 'Authorization: Bearer <token>'."))
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"The token is not valid: {reason}."))
    jwt.expired_token_loader(lambda header, payload: _unauthorized("The token has expired."))
    jwt.revoked_token_loader(lambda header, payload: _unauthorized("The token has been revoked."))
    jwt.user_lookup_error_loader(
        lambda header, payload: _unauthorized("This account is deactivated or no longer exists.")
    )
    jwt.needs_fresh_token_loader(lambda header, payload: _unauthorized("A fresh sign-in is needed."))
    jwt.token_verification_failed_loader(lambda header, payload: _unauthorized("The token was refused."))
