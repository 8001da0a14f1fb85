"""The OpenAPI document and its readers: `/api/openapi.json` (flask-smorest), `/api/schema`
(YAML) and `/api/docs` (Swagger UI served from the app itself, so it works offline and under
a strict Content-Security-Policy: no CDN, no inline script). Also the `Blueprint` every route
module declares its views on, so that what it documents and what it takes stay the same.
"""

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import flask_smorest
from apispec import BasePlugin
from flask import Blueprint as FlaskBlueprint
from flask import Flask, Request, Response
from flask_smorest import Api
from marshmallow import RAISE, Schema, ValidationError, fields
from swagger_ui_bundle import swagger_ui_path
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Nexus API</title>
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>
"""

DOCS_INIT_JS = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
"""


NUL_REFUSED = "NUL characters are not allowed."


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class ArgumentsParser(FlaskParser):
    """webargs' parser, refusing unknown query parameters (422) as unknown body fields are: a
    misspelt filter must not quietly answer the unfiltered list."""

    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE}

    def pre_load(self, location_data: Any, *, schema: Schema, req: Request, location: str) -> Any:
        """Refuse NUL characters anywhere in the input (422): Postgres cannot store them in text,
        and no honest input holds one."""
        data = getattr(location_data, "data", location_data)  # webargs wraps a query string's MultiDict
        if isinstance(data, MultiDict):
            data = data.to_dict(flat=False)
        given = data.items() if isinstance(data, dict) else ()
        refused = sorted(name for name, value in given if _holds_nul(name) or _holds_nul(value))
        if refused:
            raise ValidationError({name: [NUL_REFUSED] for name in refused})
        return location_data


class Blueprint(flask_smorest.Blueprint):
    """The Blueprint every route module uses: flask-smorest's, with our arguments parser."""

    ARGUMENTS_PARSER = ArgumentsParser()


def documents_errors(*statuses: int) -> Callable:
    """Document error answers of a view (422 comes with @blp.arguments), in the one error shape."""
    responses = {str(status): HTTPStatus(status).name for status in statuses}
    return Blueprint.doc(responses=responses)


class BodyErrors(BasePlugin):
    """Every operation that reads a body documents 400 (not JSON) and 413 (over 1 MiB): both are
    answered before any schema sees the body, so no `@blp.arguments` documents them."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs) -> None:
        for operation in (operations or {}).values():
            if "requestBody" in operation:
                responses = operation.setdefault("responses", {})
                for status in (HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE):
                    responses.setdefault(str(status.value), status.name)


UNTYPED_NULL = {"type": "object", "nullable": True}


def nullable_nested(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """A nested schema that may be null, as `allOf: [its $ref], nullable: true`. apispec writes it
    (OpenAPI 3.0) as `anyOf: [any object or null, its $ref]`, which generated clients read as "the
    schema, or any object": a TypeScript `order.shipping_address?.city` would not compile."""
    any_of = ret.get("anyOf")
    if not isinstance(field, fields.Nested) or not any_of or UNTYPED_NULL not in any_of:
        return {}
    del ret["anyOf"]
    return {"allOf": [schema for schema in any_of if schema != UNTYPED_NULL], "nullable": True}


def _docs_blueprint(api: Api) -> FlaskBlueprint:
    docs = FlaskBlueprint("docs", __name__, static_folder=str(swagger_ui_path), static_url_path="/docs/assets")

    @docs.get("/schema")
    def schema_yaml() -> Response:
        return Response(api.spec.to_yaml(), mimetype="application/yaml")

    @docs.get("/docs")
    def swagger_ui() -> Response:
        return Response(DOCS_HTML, mimetype="text/html")

    @docs.get("/docs/init.js")
    def swagger_ui_init() -> Response:
        return Response(DOCS_INIT_JS, mimetype="text/javascript")

    return docs


RETRY_AFTER = {
    "description": "Seconds until the budget allows the request again.",
    "schema": {"type": "integer", "minimum": 1},
}


def init_openapi(app: Flask, api: Api) -> None:
    """Declare the bearer scheme and the 429's `Retry-After`, and serve the YAML document and
    Swagger UI under /api."""
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    # flask-smorest registers a response per status, lazily (written once an operation refers to it).
    api.spec.components.responses_lazy["TOO_MANY_REQUESTS"]["headers"] = {"Retry-After": RETRY_AFTER}
    api.ma_plugin.converter.add_attribute_function(nullable_nested)
    app.register_blueprint(_docs_blueprint(api), url_prefix="/api")
