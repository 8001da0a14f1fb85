"""factory_boy factories for the rows a test starts from, committed through the test's session."""

import factory
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from nexus.users.models import Role, User

_session: Session | None = None


def use_session(session: Session) -> None:
    global _session
    _session = session


class _Factory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: _session  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class UserFactory(_Factory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    role = Role.CUSTOMER.value
    is_active = True
    is_verified = True


class AdminFactory(UserFactory):
    role = Role.ADMIN.value
