"""One-time sign-in codes: ask for one, make and email it (a job), verify it.

A code is six random digits, stored only as an HMAC keyed with SECRET_KEY (a plain hash of
six digits is reversed in a millisecond), single use, short-lived, and dead after
OTP_MAX_ATTEMPTS tries. Issuing a code deletes the user's older ones.

Asking for a code only writes the request to the outbox, the same whether or not the address
has an account, so the answer (and its timing) tells nothing and a slow mail server never holds
a request; the job looks the user up, makes the code and sends it, retrying while the code
would still be valid.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select, update

from nexus.auth import emails
from nexus.auth.models import OtpCode
from nexus.database import utcnow
from nexus.errors import Unauthorized
from nexus.extensions import db
from nexus.jobs import outbox
from nexus.users.models import User
from nexus.users.service import find_user_by_email, get_or_create_user

INVALID_CODE = "The code is wrong, expired or already used; ask for a new one."


def _hash_code(user_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


SEND_CODE = "auth.send_sign_in_code"


def register(*, email: str, full_name: str | None = None, phone: str | None = None) -> None:
    """Ask for a code for `email`, its account created if new; `full_name` and `phone` ride
    with the code and take effect when it is verified."""
    profile = {name: value for name, value in {"full_name": full_name, "phone": phone}.items() if value is not None}
    _ask_for_code(email, create=True, profile=profile or None)


def request_code(*, email: str) -> None:
    """Ask for a code for an existing active account; for any other address the job sends nothing."""
    _ask_for_code(email, create=False, profile=None)


def _ask_for_code(email: str, *, create: bool, profile: dict | None) -> None:
    expires_at = utcnow() + timedelta(seconds=current_app.config["OTP_TTL_SECONDS"])
    outbox.enqueue(
        SEND_CODE, deadline=expires_at, email=email, create=create, profile=profile, expires_at=expires_at.isoformat()
    )
    db.session.commit()


@outbox.job(SEND_CODE)
def send_code(*, email: str, create: bool, profile: dict | None, expires_at: str) -> None:
    """The job: replace the user's codes with a fresh one, valid until the request's deadline,
    and email it. If the email cannot be sent nothing is kept, and the job is tried again."""
    user = get_or_create_user(email=email) if create else find_user_by_email(email)
    if user is None or not user.is_active:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    deadline = datetime.fromisoformat(expires_at)
    db.session.execute(delete(OtpCode).where(OtpCode.user_id == user.id))
    db.session.add(
        OtpCode(
            user_id=user.id,
            code_hash=_hash_code(user.id, code),
            expires_at=deadline,
            pending_profile=profile if create else None,
        )
    )
    db.session.flush()
    remaining = max(1, int((deadline - utcnow()).total_seconds()))
    emails.send_sign_in_code(user.email, code, remaining)


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
    for field, value in (otp.pending_profile or {}).items():  # what the register that asked for it gave
        setattr(user, field, value)
    db.session.commit()
    return user
