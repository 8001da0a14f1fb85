"""One-time sign-in codes: issue, email, verify.

A code is six random digits, stored only as an HMAC keyed with SECRET_KEY (a plain hash of
six digits is reversed in a millisecond), single use, short-lived, and dead after
OTP_MAX_ATTEMPTS tries. Issuing a code deletes the user's older ones.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from nexus.auth import emails
from nexus.auth.models import OtpCode
from nexus.database import utcnow
from nexus.errors import Unauthorized
from nexus.extensions import db
from nexus.users.models import User
from nexus.users.service import find_user_by_email, get_or_create_user

INVALID_CODE = "The code is wrong, expired or already used; ask for a new one."


def _hash_code(user_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _send_new_code(user: User) -> None:
    """Replace the user's codes with a fresh one and email it, committing only once it is sent."""
    ttl = current_app.config["OTP_TTL_SECONDS"]
    code = f"{secrets.randbelow(10**6):06d}"
    db.session.execute(delete(OtpCode).where(OtpCode.user_id == user.id))
    db.session.add(
        OtpCode(user_id=user.id, code_hash=_hash_code(user.id, code), expires_at=utcnow() + timedelta(seconds=ttl))
    )
    db.session.flush()
    try:
        emails.send_sign_in_code(user.email, code, ttl)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()


def register(*, email: str, full_name: str | None = None, phone: str | None = None) -> None:
    """Create the user if new, then email a code; an existing address just gets a login code."""
    user = get_or_create_user(email=email, full_name=full_name, phone=phone)
    if user.is_active:
        _send_new_code(user)


def request_code(*, email: str) -> None:
    """Email a code to an existing active user; anyone else gets nothing (and is told the same)."""
    user = find_user_by_email(email)
    if user is not None and user.is_active:
        _send_new_code(user)


def verify_code(*, email: str, code: str) -> User:
    """The user this code signs in, marked verified; anything else is one 401."""
    user = find_user_by_email(email)
    otp = None
    if user is not None and user.is_active:
        otp = db.session.scalar(select(OtpCode).where(OtpCode.user_id == user.id).order_by(OtpCode.id.desc()).limit(1))
    if user is None or otp is None:
        raise Unauthorized(INVALID_CODE)

    now = utcnow()
    # Spend one try before comparing, in one conditional UPDATE: parallel guesses cannot
    # exceed the limit, and once it is reached even the right code is refused.
    spent = db.session.execute(
        update(OtpCode)
        .where(
            OtpCode.id == otp.id,
            OtpCode.used_at.is_(None),
            OtpCode.expires_at > now,
            OtpCode.attempts < current_app.config["OTP_MAX_ATTEMPTS"],
        )
        .values(attempts=OtpCode.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    right = hmac.compare_digest(otp.code_hash, _hash_code(user.id, code))
    if spent.rowcount != 1 or not right:
        db.session.commit()
        raise Unauthorized(INVALID_CODE)

    used = db.session.execute(
        update(OtpCode)
        .where(OtpCode.id == otp.id, OtpCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # a parallel request with the same code won
        db.session.rollback()
        raise Unauthorized(INVALID_CODE)
    user.is_verified = True
    db.session.commit()
    return user
