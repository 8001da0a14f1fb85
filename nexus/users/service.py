"""Finding, creating and updating users."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nexus import audit
from nexus.extensions import db
from nexus.users.models import Role, User


def find_user_by_email(email: str) -> User | None:
    """The user with this (already lower-cased) email, if any."""
    return db.session.scalar(select(User).where(User.email == email))


def get_or_create_user(*, email: str, full_name: str | None = None, phone: str | None = None) -> User:
    """The user with this email, created if new; safe when two sign-ups race for one address."""
    user = find_user_by_email(email)
    if user is not None:
        return user
    try:
        with db.session.begin_nested():
            user = User(email=email, full_name=full_name, phone=phone)
            db.session.add(user)
    except IntegrityError:  # the other request created it first
        return db.session.scalars(select(User).where(User.email == email)).one()
    return user


def update_profile(user: User, changes: dict[str, Any]) -> User:
    """Apply the fields a person may change about themself."""
    before = audit.snapshot(user, changes)
    for field, value in changes.items():
        setattr(user, field, value)
    audit.record(user, "user.profile_update", user, before, audit.snapshot(user, changes))
    db.session.commit()
    return user


def create_admin(*, email: str, full_name: str | None = None) -> User:
    """Create, or promote, an active and verified admin."""
    user = get_or_create_user(email=email, full_name=full_name)
    user.role = Role.ADMIN.value
    user.is_active = True
    user.is_verified = True
    if full_name:
        user.full_name = full_name
    db.session.commit()
    return user
