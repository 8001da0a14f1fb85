"""The `stores` and `products` tables and the indexes the catalog's lists run on."""

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nexus.database import Timestamps
from nexus.extensions import db
from nexus.money import DEFAULT_CURRENCY
from nexus.users.models import User


def trigram_index(name: str, column: str) -> Index:
    """A Postgres trigram index for substring search; other databases search without one."""
    index = Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
    index.info["postgres_only"] = True  # migrations/env.py: not expected on other databases
    return index.ddl_if(dialect="postgresql")


class Store(Timestamps, db.Model):
    __tablename__ = "stores"
    __table_args__ = (trigram_index("ix_stores_name_trgm", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    slug: Mapped[str] = mapped_column(String(140), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default=DEFAULT_CURRENCY)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    owner: Mapped[User] = relationship(lazy="raise")


class Product(Timestamps, db.Model):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("store_id", "sku", name="uq_products_store_id_sku"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        # Keyset lists: newest is the primary key; the price sorts and the store lists below.
        Index("ix_products_price_id", "price", "id"),
        Index("ix_products_store_id_id", "store_id", "id"),
        Index("ix_products_store_id_price_id", "store_id", "price", "id"),
        # `q` on Postgres: one trigram index per column, so `name ILIKE x OR description ILIKE x`
        # is a BitmapOr of two cheap scans (one two-column GIN index costs far more per scan).
        trigram_index("ix_products_name_trgm", "name"),
        trigram_index("ix_products_description_trgm", "description"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sku: Mapped[str | None] = mapped_column(String(64))
    price: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)  # always its store's
    stock: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    store: Mapped[Store] = relationship(lazy="raise")
