"""Keyset pagination, the one way every list is paged.

A list is ordered by a `Keyset`: columns ending with a unique one (the id), all in one
direction. The next page is `WHERE (k1, ..., id) < (:v1, ..., :id)` on an index with the same
order, so a page deep in a million rows costs what the first page costs, and rows added while
someone pages never shift what they see (no duplicates, no gaps).

The cursor is the last row's key, tagged with the keyset's name and signed with SECRET_KEY:
opaque to clients, and a forged or mangled one is a 422 rather than a surprise.
"""

from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, Select, tuple_

from nexus.errors import Invalid
from nexus.extensions import db

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
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(
                required=True,
                allow_none=True,
                metadata={"description": "Pass as `cursor` for the next page; null on the last."},
            ),
        },
        name=name,
    )


@dataclass(frozen=True)
class Keyset:
    """An order a list can be paged in: columns ending with a unique one, all one direction."""

    name: str
    columns: tuple[Any, ...]
    descending: bool = True

    def order_by(self) -> list[ColumnElement]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self, values: list[Any]) -> ColumnElement:
        """Rows that come after the row whose key is `values`."""
        if len(self.columns) == 1:
            key, bound = self.columns[0], values[0]
        else:
            key, bound = tuple_(*self.columns), tuple_(*values)
        return key < bound if self.descending else key > bound

    def key_of(self, row: Any) -> list[Any]:
        return [getattr(row, column.key) for column in self.columns]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="nexus.cursor")


def encode_cursor(keyset: Keyset, row: Any) -> str:
    return _serializer().dumps([keyset.name, *keyset.key_of(row)])


def decode_cursor(keyset: Keyset, cursor: str) -> list[Any]:
    """The key a cursor points after; 422 unless this keyset signed it."""
    try:
        payload = _serializer().loads(cursor)
    except BadSignature:
        payload = None
    if not isinstance(payload, list) or payload[:1] != [keyset.name] or len(payload) != len(keyset.columns) + 1:
        raise Invalid(BAD_CURSOR, errors={"query": {"cursor": [BAD_CURSOR]}})
    return payload[1:]


def paginate(
    statement: Select, keyset: Keyset, *, limit: int, cursor: str | None = None, scalars: bool = False
) -> dict:
    """One page of `statement` in `keyset` order, in one query: `{items, next_cursor}`."""
    if cursor is not None:
        statement = statement.where(keyset.after(decode_cursor(keyset, cursor)))
    result = db.session.execute(statement.order_by(*keyset.order_by()).limit(limit + 1))
    rows = (result.scalars() if scalars else result).all()
    page = rows[:limit]
    return {"items": page, "next_cursor": encode_cursor(keyset, page[-1]) if len(rows) > limit else None}
