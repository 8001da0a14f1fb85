"""factory_boy factories for the rows a test starts from, committed through the test's session."""

import factory
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from nexus.payments.models import Payment
from nexus.stores.models import Product, Store
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


class StoreFactory(_Factory):
    class Meta:
        model = Store

    owner = factory.SubFactory(UserFactory)
    owner_id = factory.SelfAttribute("owner.id")
    name = factory.Sequence(lambda n: f"Store {n}")
    slug = factory.Sequence(lambda n: f"store-{n}")
    description = "A shop."
    currency = "aed"
    is_active = True


class ProductFactory(_Factory):
    class Meta:
        model = Product

    store = factory.SubFactory(StoreFactory)
    store_id = factory.SelfAttribute("store.id")
    name = factory.Sequence(lambda n: f"Product {n}")
    description = "A thing."
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    price = 1000
    currency = factory.SelfAttribute("store.currency")
    stock = 10
    is_active = True


class PaymentFactory(_Factory):
    """A payment as if its PaymentIntent had been created at Stripe (for webhook tests)."""

    class Meta:
        model = Payment

    order_id = None  # give it an order placed over HTTP
    user_id = None
    provider_payment_id = factory.Sequence(lambda n: f"pi_test_{n:06d}")
    amount = 1000
    currency = "aed"
    status = "pending"


def shipping_address(**changes: str | None) -> dict[str, str | None]:
    """A shipping address as a buyer sends it with an order (`changes` replace or add fields)."""
    return {"name": "Ada Lovelace", "line1": "Marina Walk 12", "city": "Dubai", "country": "AE", **changes}
