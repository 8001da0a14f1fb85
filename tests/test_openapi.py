"""The OpenAPI document describes every endpoint, truthfully, and its readers work offline."""

import re

import pytest
import yaml

# The documentation itself, and /metrics: Prometheus text for a scraper holding METRICS_TOKEN,
# not part of the API its clients (and their generated types) use.
SKIP_ENDPOINTS = ("api-docs.", "docs.", "metrics")


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_the_document_is_openapi_3_with_the_bearer_scheme(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_every_route_of_the_app_is_documented(app, spec):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(SKIP_ENDPOINTS):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"].get(path, {}), f"{method} {path} is not in the OpenAPI document"


def test_every_operation_has_a_summary_and_a_documented_success(spec):
    for path, method, operation in operations(spec):
        assert operation.get("summary"), f"{method} {path} has no summary"
        assert any(code.startswith("2") for code in operation["responses"]), f"{method} {path} documents no success"
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in body:  # a body our schemas validate
            assert "422" in operation["responses"], f"{method} {path} takes a body but does not document 422"


CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)*")
# Generated clients name their methods after these (`listProducts()`, openapi-python-client's
# `list_products`): renaming one breaks every client built before, so they are pinned.
OPERATION_IDS = {
    ("get", "/health"): "getLiveness",
    ("get", "/api/v1/health"): "getReadiness",
    ("post", "/api/v1/auth/register"): "register",
    ("post", "/api/v1/auth/otp/request"): "requestCode",
    ("post", "/api/v1/auth/otp/verify"): "verifyCode",
    ("post", "/api/v1/auth/refresh"): "refreshTokens",
    ("post", "/api/v1/auth/logout"): "logout",
    ("get", "/api/v1/profile/me"): "getMyProfile",
    ("patch", "/api/v1/profile/me"): "updateMyProfile",
    ("get", "/api/v1/profile/me/stores"): "listMyStores",
    ("get", "/api/v1/stores"): "listStores",
    ("post", "/api/v1/stores"): "createStore",
    ("get", "/api/v1/stores/{store_id}"): "getStore",
    ("patch", "/api/v1/stores/{store_id}"): "updateStore",
    ("get", "/api/v1/stores/{store_id}/products"): "listStoreProducts",
    ("post", "/api/v1/stores/{store_id}/products"): "createProduct",
    ("get", "/api/v1/products"): "listProducts",
    ("get", "/api/v1/products/{product_id}"): "getProduct",
    ("patch", "/api/v1/products/{product_id}"): "updateProduct",
    ("delete", "/api/v1/products/{product_id}"): "deleteProduct",
    ("get", "/api/v1/orders"): "listMyOrders",
    ("post", "/api/v1/orders"): "placeOrder",
    ("get", "/api/v1/orders/{order_id}"): "getOrder",
    ("post", "/api/v1/orders/{order_id}/status"): "moveOrder",
    ("get", "/api/v1/stores/{store_id}/orders"): "listStoreOrders",
    ("post", "/api/v1/orders/{order_id}/payment"): "startPayment",
    ("post", "/api/v1/orders/{order_id}/cancel"): "cancelOrder",
    ("post", "/api/v1/webhooks/stripe"): "receiveStripeEvent",
    ("post", "/api/v1/stores/{store_id}/payouts/onboarding"): "startPayoutOnboarding",
    ("get", "/api/v1/stores/{store_id}/payouts"): "getStorePayouts",
    ("get", "/api/v1/stores/{store_id}/transfers"): "listStoreTransfers",
    ("post", "/api/v1/webhooks/stripe-connect"): "receiveStripeConnectEvent",
    ("post", "/api/v1/stores/{store_id}/reports"): "createSalesReport",
    ("get", "/api/v1/reports/{report_id}"): "getReport",
    ("get", "/api/v1/reports/{report_id}/download"): "downloadReport",
    ("get", "/api/v1/profile/me/reports"): "listMyReports",
    ("get", "/api/v1/admin/users"): "listUsers",
    ("get", "/api/v1/admin/users/{user_id}"): "getUser",
    ("patch", "/api/v1/admin/users/{user_id}"): "updateUser",
    ("get", "/api/v1/admin/payments"): "listPayments",
    ("get", "/api/v1/admin/payments/{payment_id}"): "getPayment",
    ("post", "/api/v1/admin/payments/{payment_id}/refund"): "refundPayment",
    ("get", "/api/v1/admin/orders"): "listAllOrders",
    ("get", "/api/v1/admin/transfers"): "listAllTransfers",
    ("get", "/api/v1/admin/payment-events"): "listPaymentEvents",
    ("post", "/api/v1/admin/payment-events/{event_id}/replay"): "replayPaymentEvent",
    ("get", "/api/v1/admin/stats"): "getStats",
    ("get", "/api/v1/admin/audit-log"): "listAuditLog",
    ("get", "/api/v1/admin/jobs"): "listJobs",
}


def test_every_operation_has_a_unique_camel_case_operation_id_and_a_description(spec):
    seen: dict[str, str] = {}
    for path, method, operation in operations(spec):
        operation_id = operation.get("operationId", "")
        assert CAMEL_CASE.fullmatch(operation_id), f"{method} {path}: operationId {operation_id!r} is not camelCase"
        assert operation_id not in seen, f"{method} {path} and {seen.get(operation_id)} are both {operation_id}"
        seen[operation_id] = f"{method} {path}"
        description = operation.get("description", "").strip()
        assert description, f"{method} {path} has no description (the docstring after its first line)"
        assert description != operation["summary"], f"{method} {path}: its description repeats its summary"


def test_operation_ids_stay_what_clients_were_generated_with(spec):
    found = {(method, path): operation.get("operationId") for path, method, operation in operations(spec)}

    assert {operation: found.get(operation) for operation in OPERATION_IDS} == OPERATION_IDS


def test_the_document_names_its_server_and_a_contact(spec):
    assert spec["servers"] == [{"url": "/", "description": "The host serving this document."}]
    assert spec["info"]["contact"]["email"]
    assert "PaginationMetadata" not in spec["components"]["schemas"]  # our lists paginate in the body


def test_an_operation_declares_bearer_security_exactly_when_it_needs_a_token(client, spec):
    for path, method, operation in operations(spec):
        url = re.sub(r"\{\w+\}", "1", path)
        response = client.open(url, method=method.upper(), json={})
        secured = operation.get("security") == [{"bearerAuth": []}]
        assert (response.status_code == 401) == secured, f"{method} {path}: {response.status_code}, secured={secured}"
        if secured:
            assert "401" in operation["responses"]


def test_the_yaml_document_is_the_same_document(client, spec):
    response = client.get("/api/schema")

    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert yaml.safe_load(response.get_data(as_text=True)) == spec


def test_swagger_ui_is_served_from_the_app_itself(client):
    page = client.get("/api/docs").get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert sources, "the page loads no assets"
    for source in sources:
        assert source.startswith("/api/docs/"), f"{source} is not served by the app"
        assert client.get(source).status_code == 200
    assert "<script>" not in page  # no inline script: the docs work under a strict CSP


def request_fields(spec: dict, schema: dict, seen: frozenset = frozenset()):
    """(name, schema) of every field a request can carry in `schema`, nested ones included."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from request_fields(spec, spec["components"]["schemas"][name], seen | {name})
        return
    for name, field in schema.get("properties", {}).items():
        yield name, field
        yield from request_fields(spec, field, seen)
    if "items" in schema:
        yield from request_fields(spec, schema["items"], seen)


def test_no_request_carries_a_url_for_the_server_to_fetch(spec):
    """Server-side request forgery needs a URL the server will call: no input takes one (the
    only outbound calls go to Stripe and the mail server, both set from the environment)."""
    inputs = []
    for _path, _method, operation in operations(spec):
        inputs += [(p["name"], p.get("schema", {})) for p in operation.get("parameters", [])]
        for content in operation.get("requestBody", {}).get("content", {}).values():
            inputs += list(request_fields(spec, content["schema"]))

    assert len(inputs) > 30
    for name, field in inputs:
        assert field.get("format") not in ("uri", "url", "uri-reference"), name
        assert not re.search(r"(url|uri|href|callback|webhook|host)$", name, re.IGNORECASE), name
