"""Responses out: the JSON provider and flat schemas.

The catalog serves pages of 20 products hundreds of times a second; with marshmallow's per-field
dump and the stdlib encoder, writing the page cost more than reading it from Postgres. A flat
schema (every field a plain attribute) is dumped by copying attributes, and orjson writes the
JSON; the output is byte-for-byte what marshmallow would give (tests/test_serialization.py).
"""

from operator import attrgetter, itemgetter
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields

# Fields whose dump is the attribute itself (an ISO 8601 DateTime is what orjson writes anyway).
PLAIN_FIELDS = (fields.Integer, fields.String, fields.Boolean)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON, written by orjson (read by the stdlib, whose errors webargs turns into 400s)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if kwargs.get("indent") else 0)
        return orjson.dumps(obj, default=self.default, option=option).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = orjson.dumps(
            self._prepare_response_obj(args, kwargs), default=self.default, option=orjson.OPT_NON_STR_KEYS
        )
        return self._app.response_class(body, mimetype=self.mimetype)


def _plain(field: fields.Field) -> bool:
    if isinstance(field, fields.DateTime):
        return field.format in (None, "iso")
    return isinstance(field, PLAIN_FIELDS)


class FlatSchema(Schema):
    """A read-only wire format of plain attributes, dumped by copying them (see the module doc).
    A subclass that adds other fields (a nested list, say) is dumped by marshmallow as usual."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flat = all(_plain(field) for field in self.dump_fields.values())
        self._keys = tuple(field.data_key or name for name, field in self.dump_fields.items())
        self._attributes = tuple(field.attribute or name for name, field in self.dump_fields.items())

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if not self._flat:
            return super().dump(obj, many=many)
        items = obj if (self.many if many is None else many) else [obj]
        values = self._getter(items[0]) if items else None
        dumped = [dict(zip(self._keys, values(item), strict=True)) for item in items]
        return dumped if items is obj else dumped[0]

    def _getter(self, sample: Any) -> Any:
        """Reads the values off an object by attribute, or off a database row by position
        (a row's attribute lookup by name is several times slower than indexing it)."""
        columns = getattr(sample, "_fields", None)
        if columns is None:
            return attrgetter(*self._attributes)
        return itemgetter(*(columns.index(attribute) for attribute in self._attributes))
