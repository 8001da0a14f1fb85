"""Keyset pagination, the one way every list is paged.

A list is ordered by a `Keyset`: columns ending with a unique one (the id), all in one
direction. The next page is `WHERE (k1, ..., id) < (:v1, ..., :id)` on an index with the same
order, so a page deep in a million rows costs what the first page costs, and rows added while
someone pages never shift what they see (no duplicates, no gaps).

The cursor is the last row's key, tagged with the keyset's name and signed with SECRET_KEY:
opaque to clients, and a forged or mangled one is a 422 rather than a surprise.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from flask import current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, Integer, Select, Table, bindparam, select, tuple_

from nexus.database import read
from nexus.errors import Invalid

MAX_LIMIT = 100
BAD_CURSOR = "Not a cursor this list handed out; start again without one."


class PageArgsSchema(Schema):
    """`limit` and `cursor`, the query arguments of every list."""

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(
        validate=validate.Length(min=1, max=512), metadata={"description": "`next_cursor` of the previous page."}
    )


def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The `{items, next_cursor}` body of a list of `item_schema`."""
    name = item_schema.__name__.removesuffix("Schema") + "Page"
    return Schema.from_dict(
        {
            "items": fields.Nested(item_schema, many=True, required=True),
            "next_cursor": fields.String(
                required=True,
                allow_none=True,
                metadata={"description": "Pass as `cursor` for the next page; null on the last."},
            ),
        },
        name=name,
    )


@dataclass(frozen=True, eq=False)
class Keyset:
    """An order a list can be paged in: columns ending with a unique one, all one direction."""

    name: str
    columns: tuple[Any, ...]
    descending: bool = True

    def order_by(self) -> list[ColumnElement]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self) -> ColumnElement:
        """Rows after the row whose key is bound as :after_0, :after_1, ..."""
        bounds = [bindparam(f"after_{n}") for n in range(len(self.columns))]
        if len(self.columns) == 1:
            key, bound = self.columns[0], bounds[0]
        else:
            key, bound = tuple_(*self.columns), tuple_(*bounds)
        return key < bound if self.descending else key > bound

    def key_of(self, row: Any) -> list[Any]:
        return [getattr(row, column.key) for column in self.columns]


@lru_cache(maxsize=8)
def _signing_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"nexus.pagination.cursor", hashlib.sha256).digest()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signature(payload: bytes) -> bytes:
    return _b64(hmac.new(_signing_key(current_app.config["SECRET_KEY"]), payload, hashlib.sha256).digest()[:18])


def encode_cursor(keyset: Keyset, row: Any) -> str:
    payload = _b64(orjson.dumps([keyset.name, *keyset.key_of(row)]))
    return (payload + b"." + _signature(payload)).decode()


def decode_cursor(keyset: Keyset, cursor: str) -> list[Any]:
    """The key a cursor points after; 422 unless this keyset signed it."""
    payload, _, signature = cursor.encode().partition(b".")
    key = None
    if hmac.compare_digest(signature, _signature(payload)):
        try:
            key = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (binascii.Error, orjson.JSONDecodeError):
            key = None
    if not isinstance(key, list) or key[:1] != [keyset.name] or len(key) != len(keyset.columns) + 1:
        raise Invalid(BAD_CURSOR, errors={"query": {"cursor": [BAD_CURSOR]}})
    return key[1:]


@lru_cache(maxsize=256)
def _page_statement(base: Select, keyset: Keyset, after: bool) -> Select:
    """`base` ordered by `keyset`, LIMIT :limit, after the bound key if `after`. Cached per base
    statement: re-running the same statement object skips SQLAlchemy's cache-key and result
    bookkeeping, which costs as much as the rest of a catalog page's Python."""
    statement = base.where(keyset.after()) if after else base
    return statement.order_by(*keyset.order_by()).limit(bindparam("limit", type_=Integer))


def paginate(
    base: Select,
    keyset: Keyset,
    *,
    limit: int,
    cursor: str | None = None,
    params: dict[str, Any] | None = None,
    planned_once: bool = False,
) -> dict:
    """One page of `base` (with bound `params`) in `keyset` order, in one query: `{items, next_cursor}`.

    Build each `base` once per combination of filters (`functools.cache`) and pass the filters'
    values as `params`: the page statement made from it is then cached too. Items are plain rows
    (what `FlatSchema`s dump), read outside any transaction (`nexus.database.read`, which says
    when a page may be `planned_once`).
    """
    values = {**(params or {}), "limit": limit + 1}
    if cursor is not None:
        values.update((f"after_{n}", value) for n, value in enumerate(decode_cursor(keyset, cursor)))
    rows = read(_page_statement(base, keyset, cursor is not None), values, planned_once=planned_once)
    page = rows[:limit]
    return {"items": page, "next_cursor": encode_cursor(keyset, page[-1]) if len(rows) > limit else None}


@lru_cache(maxsize=64)
def rows_where(table: Table, columns: frozenset[str]) -> Select:
    """`table`'s rows whose `columns` equal the values bound under their names (built once)."""
    return select(*table.c).where(*(table.c[name] == bindparam(name) for name in sorted(columns)))


@lru_cache(maxsize=64)
def newest_first(table: Table) -> Keyset:
    return Keyset(table.name, (table.c.id,))


def page_of_rows(table: Table, *, limit: int, cursor: str | None = None, **filters: Any) -> dict:
    """A page of `table`'s rows, newest first, where each given column equals its value (filters
    given as None are left out): the shape of most admin lists."""
    given = {name: value for name, value in filters.items() if value is not None}
    return paginate(rows_where(table, frozenset(given)), newest_first(table), limit=limit, cursor=cursor, params=given)
