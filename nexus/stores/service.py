"""Stores and products: who may see and change them, and the catalog's lists.

Visibility has one rule: inactive things (an inactive product, or anything of an inactive
store) exist only for the store's owner and admins; everyone else gets 404, so ids leak nothing.
A store whose owner is deactivated is off sale as if inactive (the owner cannot sign in to see
it either); reactivating the owner puts it back on sale.
"""

import secrets
from functools import cache
from typing import Any

from slugify import slugify as transliterate
from sqlalchemy import ColumnElement, Select, bindparam, false, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from nexus import audit
from nexus.database import contains, matches, starts_a_word, utcnow, word_start
from nexus.errors import Conflict, Forbidden, Invalid, NotFound
from nexus.extensions import db
from nexus.money import DEFAULT_CURRENCY, price_problem
from nexus.pagination import Keyset, newest_first, paginate, rows_where
from nexus.stores.models import PRODUCT_ROW, PRODUCT_SEARCH_TEXT, Product, Store
from nexus.users.models import User

# Lists read plain rows from the tables, not ORM objects: the catalog is the hot path, and
# hydrating objects only to copy their attributes out again costs a third of a request.
products, stores, users = Product.__table__, Store.__table__, User.__table__
STORES_NEWEST = newest_first(stores)
PRODUCT_SORTS = {
    "newest": Keyset("newest", (products.c.id,)),
    "price_asc": Keyset("price_asc", (products.c.price, products.c.id), descending=False),
    "price_desc": Keyset("price_desc", (products.c.price, products.c.id)),
}
SKU_TAKEN = "This store already has a product with that sku."


def _manages(viewer: User | None, store: Store) -> bool:
    return viewer is not None and (viewer.is_admin or (viewer.id == store.owner_id and viewer.is_active))


# What puts a store on sale: it is active and so is its owner (the `users` joined on owner_id).
STORE_ON_SALE = (stores.c.is_active, users.c.is_active)


def _with_owner(statement: Select) -> Select:
    """`statement` (reading stores) joined to the stores' owners, for STORE_ON_SALE."""
    return statement.join(users, users.c.id == stores.c.owner_id)


def _check_access(viewer: User | None, store: Store, *, public: bool, manage: bool, missing: str) -> None:
    """The one visibility rule: what is not `public` exists only for the store's managers (404
    for everyone else); changing it (`manage`) is for them alone (403)."""
    manages = _manages(viewer, store)
    if not public and not manages:
        raise NotFound(missing)
    if manage and not manages:
        raise Forbidden("Only the store's owner or an admin may do this.")


def _too_short_for_trigrams(word: str) -> bool:
    """pg_trgm finds `%word%` through its index only if the word yields a trigram: three
    characters, two of them letters or digits (`tv` and `a` yield none; the whole index, or the
    table, would be read for them)."""
    return len(word) < 3 or sum(character.isalnum() for character in word) < 2


def _words(q: str | None) -> dict[str, Any]:
    """`q` as LIKE patterns, every word to match: :q0, :q1, ... anywhere; a word too short for a
    trigram, :w0, :w1, ..., at the start of a word; a word with no letter or digit (no trigram
    either way) matches nothing."""
    words: dict[str, Any] = {}
    for n, word in enumerate((q or "").split()):
        if not any(character.isalnum() for character in word):
            words["nothing"] = True
        elif _too_short_for_trigrams(word):
            words[f"w{n}"] = word_start(word)
        else:
            words[f"q{n}"] = contains(word)
    return words


# Filters whose best plan depends on their values: how rare the words of `q` are decides between
# the trigram index and reading in id order, how wide a price range between the price index and
# the id one. A page without them is planned once per connection (`nexus.database.read`).
VALUE_DEPENDENT_FILTERS = ("q", "min_price", "max_price")


def _one_plan_fits(filters: dict[str, Any]) -> bool:
    return all(filters.get(name) is None for name in VALUE_DEPENDENT_FILTERS)


def _search(column: Any, name: str) -> ColumnElement:
    """The condition a word of `q` bound as `name` (by `_words`) puts on `column`."""
    if name == "nothing":
        return false()
    return starts_a_word(column, name) if name.startswith("w") else matches(column, name)


# --- stores ---------------------------------------------------------------------------


def get_store_for(viewer: User | None, store_id: int, *, manage: bool = False) -> Store:
    """The store if `viewer` may see it (and change it, with `manage`); else 404 or 403."""
    found = db.session.execute(select(Store, User.is_active).join(Store.owner).where(Store.id == store_id)).first()
    if found is None:
        raise NotFound("No such store.")
    store, owner_active = found
    _check_access(viewer, store, public=store.is_active and owner_active, manage=manage, missing="No such store.")
    return store


@cache
def _stores_query(*, words: frozenset[str], by_slug: bool = False) -> Select:
    statement = _with_owner(select(*stores.c)).where(*STORE_ON_SALE)
    if by_slug:
        statement = statement.where(stores.c.slug == bindparam("slug"))
    return statement.where(*(_search(stores.c.name, name) for name in sorted(words)))


def list_stores(*, q: str | None = None, slug: str | None = None, limit: int, cursor: str | None = None) -> dict:
    """Stores on sale, newest first; with `q`, those whose name holds every word of it; with
    `slug`, the one store of that slug (if on sale)."""
    words = _words(q)
    params = {**words, **({"slug": slug} if slug is not None else {})}
    statement = _stores_query(words=frozenset(words), by_slug=slug is not None)
    return paginate(
        statement, STORES_NEWEST, limit=limit, cursor=cursor, params=params, planned_once=_one_plan_fits({"q": q})
    )


def list_my_stores(owner: User, *, limit: int, cursor: str | None = None) -> dict:
    """`owner`'s stores, inactive ones included, newest first."""
    return paginate(
        rows_where(stores, frozenset({"owner_id"})),
        STORES_NEWEST,
        limit=limit,
        cursor=cursor,
        params={"owner_id": owner.id},
    )


def slugify(name: str) -> str:
    """A URL-safe, readable ASCII slug: other scripts transliterated (متجر الورد is mtjr-lwrd,
    Магазин is magazin), accents dropped, "store" if nothing is left."""
    return transliterate(name, max_length=60, word_boundary=False) or "store"


SLUG_ATTEMPTS = 5
SLUG_SUFFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _slug_candidates(base: str):
    """`base`, then `base-` and a short random suffix: a taken slug costs a retry, not a read of
    every slug that starts like it (31^5, 28 million, suffixes make a repeat unlikely)."""
    yield base
    for _ in range(SLUG_ATTEMPTS - 1):
        yield f"{base}-{''.join(secrets.choice(SLUG_SUFFIX_ALPHABET) for _ in range(5))}"


STORE_CREATED = ("owner_id", "name", "slug", "description", "currency", "is_active")


def create_store(owner: User, *, name: str, description: str = "", currency: str = DEFAULT_CURRENCY) -> Store:
    """Open a store owned by `owner`, with a unique slug made from its name: the insert itself
    finds out whether a slug is taken (the unique index refuses it), and tries the next."""
    for slug in _slug_candidates(slugify(name)):
        store = Store(owner_id=owner.id, name=name, description=description, currency=currency, slug=slug)
        try:
            with db.session.begin_nested():
                db.session.add(store)
        except IntegrityError:
            continue
        audit.record(owner, "store.create", store, None, audit.snapshot(store, STORE_CREATED))
        db.session.commit()
        return store
    raise Conflict("Could not give the store a unique slug; try again.")


def update_store(actor: User, store: Store, changes: dict[str, Any]) -> Store:
    """Change what the owner may change of a store (the schema says what)."""
    before = audit.snapshot(store, changes)
    for field, value in changes.items():
        setattr(store, field, value)
    audit.record(actor, "store.update", store, before, audit.snapshot(store, changes))
    db.session.commit()
    return store


# --- products -------------------------------------------------------------------------


def get_product_for(viewer: User | None, product_id: int, *, manage: bool = False) -> Product:
    """The product if `viewer` may see it (and change it, with `manage`); else 404 or 403."""
    found = db.session.execute(
        select(Product, Store, User.is_active).join(Product.store).join(Store.owner).where(Product.id == product_id)
    ).first()
    if found is None:
        raise NotFound("No such product.")
    product, store, owner_active = found
    public = product.is_active and store.is_active and owner_active
    _check_access(viewer, store, public=public, manage=manage, missing="No such product.")
    return product


def _unique_sku(change) -> None:
    """Make `change` (adding or changing products) in a savepoint; a sku its store already has
    undoes just that and is a 409."""
    try:
        with db.session.begin_nested():
            change()
    except IntegrityError:
        raise Conflict(SKU_TAKEN, errors={"json": {"sku": [SKU_TAKEN]}}) from None


def _check_price(price: int | None, currency: str) -> None:
    """A price Stripe can charge in the store's currency (a multiple of 10 in kwd, say); else a 422."""
    problem = None if price is None else price_problem(price, currency)
    if problem:
        raise Invalid(problem, errors={"json": {"price": [problem]}})


def create_product(actor: User, store: Store, **fields: Any) -> Product:
    """List a product in `store`, in the store's currency."""
    _check_price(fields["price"], store.currency)
    product = Product(store_id=store.id, currency=store.currency, **fields)
    _unique_sku(lambda: db.session.add(product))
    audit.record(actor, "product.create", product, None, audit.snapshot(product, ["store_id", "currency", *fields]))
    db.session.commit()
    return product


def _recount(product: Product, stock: int) -> None:
    """Set the stock the owner counted, unless orders hold more than that (a 409). One
    conditional UPDATE: an order reserving at the same moment is either counted or refused."""
    now = utcnow()
    reserved = db.session.execute(
        update(Product)
        .where(Product.id == product.id, Product.reserved <= stock)
        .values(stock=stock, updated_at=now)
        .returning(Product.reserved)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if reserved is None:
        held = db.session.scalar(select(Product.reserved).where(Product.id == product.id))
        message = f"Unpaid and unshipped orders hold {held} units of this product: stock cannot go below {held}."
        raise Conflict(message, errors={"json": {"stock": [message]}})
    for field, value in {"stock": stock, "reserved": reserved, "updated_at": now}.items():
        set_committed_value(product, field, value)


def update_product(actor: User, product: Product, changes: dict[str, Any]) -> Product:
    """Change a product; a sku its store already has is a 409, stock below what orders hold too."""
    _check_price(changes.get("price"), product.currency)
    changed = list(changes)
    before = audit.snapshot(product, changed)
    if "stock" in changes:
        _recount(product, changes.pop("stock"))

    def change() -> None:
        for field, value in changes.items():
            setattr(product, field, value)

    _unique_sku(change)
    audit.record(actor, "product.update", product, before, audit.snapshot(product, changed))
    db.session.commit()
    return product


def deactivate_product(actor: User, product: Product) -> None:
    """Take a product off sale; orders keep their own snapshot of it."""
    before = audit.snapshot(product, ["is_active"])
    product.is_active = False
    audit.record(actor, "product.deactivate", product, before, audit.snapshot(product, ["is_active"]))
    db.session.commit()


# Every product list is one of these filters' combinations. Each combination's statement is
# built once (`_products_query`) and its values bound per request, so a page costs no
# statement building (see nexus.pagination._page_statement).
PRODUCT_FILTERS = {
    "store_id": products.c.store_id == bindparam("store_id"),
    "min_price": products.c.price >= bindparam("min_price"),
    "max_price": products.c.price <= bindparam("max_price"),
    "in_stock": products.c.stock > products.c.reserved,  # some available
}


def _filter_values(
    *,
    store_id: int | None = None,
    q: str | None = None,
    min_price: int | None = None,
    max_price: int | None = None,
    in_stock: bool = False,
) -> dict[str, Any]:
    """The filters a request uses, with the values they bind (in_stock binds none)."""
    values = {"store_id": store_id, "min_price": min_price, "max_price": max_price, "in_stock": in_stock or None}
    return {**{name: value for name, value in values.items() if value is not None}, **_words(q)}


@cache
def _products_query(*, catalog: bool, active_only: bool, filters: frozenset[str]) -> Select:
    statement = select(*PRODUCT_ROW)
    if catalog:
        statement = _with_owner(statement.join(stores, stores.c.id == products.c.store_id)).where(*STORE_ON_SALE)
    if active_only:
        statement = statement.where(products.c.is_active)
    conditions = (
        PRODUCT_FILTERS[name] if name in PRODUCT_FILTERS else _search(PRODUCT_SEARCH_TEXT, name)
        for name in sorted(filters)
    )
    return statement.where(*conditions)


def list_catalog(*, sort: str = "newest", limit: int, cursor: str | None = None, **filters: Any) -> dict:
    """The public catalog: active products of stores on sale, filtered, in `sort` order."""
    values = _filter_values(**filters)
    base = _products_query(catalog=True, active_only=True, filters=frozenset(values))
    return paginate(
        base, PRODUCT_SORTS[sort], limit=limit, cursor=cursor, params=values, planned_once=_one_plan_fits(filters)
    )


def list_store_products(
    viewer: User | None,
    store_id: int,
    *,
    include_inactive: bool = False,
    sort: str = "newest",
    limit: int,
    cursor: str | None = None,
    **filters: Any,
) -> dict:
    """A store's products: the active ones, or all of them for its owner and admins."""
    store = get_store_for(viewer, store_id, manage=include_inactive)
    values = {**_filter_values(**filters), "store_id": store.id}
    base = _products_query(catalog=False, active_only=not include_inactive, filters=frozenset(values))
    return paginate(
        base, PRODUCT_SORTS[sort], limit=limit, cursor=cursor, params=values, planned_once=_one_plan_fits(filters)
    )
