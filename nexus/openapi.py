"""The OpenAPI document and its readers: `/api/openapi.json` (flask-smorest), `/api/schema`
(YAML) and `/api/docs` (Swagger UI served from the app itself, so it works offline and under
a strict Content-Security-Policy: no CDN, no inline script).
"""

from collections.abc import Callable
from http import HTTPStatus

from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response
from flask_smorest import Api, Blueprint
from swagger_ui_bundle import swagger_ui_path

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


def documents_errors(*statuses: int) -> Callable:
    """Document error answers of a view (422 comes with @blp.arguments), in the one error shape."""
    responses = {str(status): HTTPStatus(status).name for status in statuses}
    return Blueprint.doc(responses=responses)


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


def init_openapi(app: Flask, api: Api) -> None:
    """Declare the bearer scheme and serve the YAML document and Swagger UI under /api."""
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    app.register_blueprint(_docs_blueprint(api), url_prefix="/api")
