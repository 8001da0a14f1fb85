"""Row ids on the wire: `<id:...>` in URLs, `Id()` in bodies and queries.

Ids are INTEGER columns, so one past 2**31 - 1 names no row; handed to the database it would
overflow the driver (a 500) instead. In a URL it matches no route (404); in a field it is a 422.
"""

from marshmallow import fields, validate
from werkzeug.routing import IntegerConverter, Map

MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<id:name>`: 1 to MAX_ID, documented as such in the OpenAPI document (flask-smorest reads
    the bounds of an IntegerConverter)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


class Id(fields.Integer):
    """A row id: 1 to MAX_ID."""

    def __init__(self, **kwargs) -> None:
        super().__init__(validate=validate.Range(min=1, max=MAX_ID), **kwargs)
