"""The `stores` and `products` tables and the indexes the catalog's lists run on."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nexus.database import Timestamps
from nexus.extensions import db
from nexus.money import DEFAULT_CURRENCY
from nexus.users.models import User


def postgres_only(index: Index) -> Index:
    """An index only Postgres can build (trigram GIN); other databases search without one."""
    index.info["postgres_only"] = True  # migrations/env.py leaves it out when comparing others
    return index.ddl_if(dialect="postgresql")


class Store(Timestamps, db.Model):
    __tablename__ = "stores"
    __table_args__ = (
        postgres_only(
            Index("ix_stores_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"})
        ),
    )

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
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= stock", name="reserved_within_stock"),
        # Keyset lists: newest is the primary key; the price sorts and the store lists below.
        Index("ix_products_price_id", "price", "id"),
        Index("ix_products_store_id_id", "store_id", "id"),
        Index("ix_products_store_id_price_id", "store_id", "price", "id"),
        # `q` on Postgres: PRODUCT_SEARCH_TEXT (below) as Postgres writes it back, so that
        # `flask db check` can compare it. One GIN scan finds the rows holding every word of `q`;
        # per-column indexes cost 3-10x more for two or three words.
        postgres_only(
            Index(
                "ix_products_search_trgm",
                literal_column("((name::text || ' '::text) || description)").label("search_text"),
                postgresql_using="gin",
                postgresql_ops={"search_text": "gin_trgm_ops"},
            )
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sku: Mapped[str | None] = mapped_column(String(64))
    price: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)  # always its store's
    # Units the store holds and has not shipped, as the owner counts them.
    stock: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Units held by orders waiting for payment or paid and not yet fulfilled.
    reserved: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    store: Mapped[Store] = relationship(lazy="raise")

    @hybrid_property
    def available(self) -> int:
        """What buyers can order now."""
        return self.stock - self.reserved


# What `q` searches in a product: each word of it is `PRODUCT_SEARCH_TEXT ILIKE '%word%'`, or for a
# word too short for a trigram, `ILIKE 'word%' OR ILIKE '% word%'` (nexus.database.starts_a_word).
PRODUCT_SEARCH_TEXT = Product.__table__.c.name + literal_column("' '") + Product.__table__.c.description
# What a list reads of each product: its columns and what is available of it.
PRODUCT_ROW = (*Product.__table__.c, Product.available.label("available"))
