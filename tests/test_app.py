"""What every response shares: the one error shape, the request id, security headers, the log line."""

import json
import logging

import pytest
from werkzeug.datastructures import ImmutableMultiDict

from nexus import create_app
from nexus.logs import JsonFormatter
from nexus.web import QueryArgs
from tests.conftest import app_environ

ERROR_KEYS = {"code", "status", "message"}


def test_unknown_route_is_a_json_404(client):
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.is_json
    assert set(response.get_json()) == ERROR_KEYS


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/health")

    assert response.status_code == 405
    assert response.get_json()["code"] == 405
    assert "GET" in response.headers["Allow"]


def test_invalid_json_is_a_400(client):
    response = client.post("/api/v1/auth/register", data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["message"] == "The request body is not valid JSON."


def test_a_body_over_one_mib_is_a_413(client):
    response = client.post(
        "/api/v1/auth/register", data=json.dumps({"email": "a" * (1024 * 1024)}), content_type="application/json"
    )

    assert response.status_code == 413
    assert response.get_json()["message"] == "The request body is larger than 1 MiB."


def test_a_crash_is_a_json_500_without_a_stack_trace(database_url):
    app = create_app(app_environ(database_url))

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert set(response.get_json()) == ERROR_KEYS
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_trailing_slash_is_optional(client):
    assert client.get("/health/").status_code == 200
    assert client.get("/api/v1/health/").status_code == 200


def test_every_response_gets_a_request_id(client):
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/nowhere").headers["X-Request-ID"]

    assert first and second and first != second


def test_the_callers_request_id_is_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "frontend-42.abc"})

    assert response.headers["X-Request-ID"] == "frontend-42.abc"


@pytest.mark.parametrize("caller_id", ['x", "level": "CRITICAL', "a" * 129, ""])
def test_a_request_id_that_is_odd_or_huge_is_replaced(client, caller_id):
    response = client.get("/health", headers={"X-Request-ID": caller_id})

    assert response.headers["X-Request-ID"] != caller_id
    assert len(response.headers["X-Request-ID"]) == 32


def test_security_headers_on_api_and_docs(client):
    api = client.get("/api/v1/health")
    docs = client.get("/api/docs")

    for response in (api, docs):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "script-src" not in docs.headers["Content-Security-Policy"]
    assert "default-src 'self'" in docs.headers["Content-Security-Policy"]


def test_one_json_log_line_per_request(client, sign_in, caplog):
    ada = sign_in("ada@example.com")
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="nexus.access"):
        client.get("/api/v1/profile/me", headers={**ada.headers, "X-Request-ID": "req-1"})

    [record] = [r for r in caplog.records if r.name == "nexus.access"]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/profile/me"
    assert entry["status"] == 200
    assert entry["request_id"] == "req-1"
    assert entry["user_id"] == str(ada.user["id"])
    assert entry["duration_ms"] >= 0


def test_cors_allows_only_configured_origins(database_url):
    app = create_app(app_environ(database_url, CORS_ALLOWED_ORIGINS="https://shop.example.com"))
    client = app.test_client()

    allowed = client.get("/api/v1/health", headers={"Origin": "https://shop.example.com"})
    other = client.get("/api/v1/health", headers={"Origin": "https://evil.example.net"})

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers


def test_only_a_cross_origin_request_gets_cors_headers_naming_its_origin(database_url):
    """A request without Origin is no browser's cross-origin call: nothing to allow (and no list
    of the allowed origins). One with an allowed Origin gets that origin back, and a Vary that
    keeps a browser from reusing the answer for another of them."""
    app = create_app(app_environ(database_url, CORS_ALLOWED_ORIGINS="https://shop.example.com,https://ops.example.com"))
    client = app.test_client()

    plain = client.get("/api/v1/health")
    cross = client.get("/api/v1/health", headers={"Origin": "https://ops.example.com"})

    assert (plain.status_code, cross.status_code) == (200, 200)
    assert [name for name, _ in plain.headers if name.lower().startswith("access-control-")] == []
    assert cross.headers["Access-Control-Allow-Origin"] == "https://ops.example.com"
    assert "Origin" in cross.headers.getlist("Vary")


def test_cors_preflight_allows_the_headers_the_frontend_sends(database_url):
    app = create_app(app_environ(database_url, CORS_ALLOWED_ORIGINS="https://shop.example.com"))

    response = app.test_client().options(
        "/api/v1/auth/register",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )

    assert response.status_code == 200
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}


@pytest.mark.parametrize(("host", "status"), [("api.example.com", 200), ("evil.example.net", 400)])
def test_allowed_hosts_refuse_other_hosts(database_url, host, status):
    app = create_app(app_environ(database_url, ALLOWED_HOSTS="api.example.com"))

    response = app.test_client().get("/health", headers={"Host": host})

    assert response.status_code == status
    assert response.is_json


def test_query_arguments_read_as_werkzeug_reads_them():
    """`QueryArgs` only answers a name not given sooner: the same values, defaults and types."""
    given = [("limit", "20"), ("q", "tea"), ("q", "pot"), ("in_stock", "")]
    ours, theirs = QueryArgs(given), ImmutableMultiDict(given)

    for key in ("limit", "q", "in_stock", "cursor"):
        assert ours.get(key) == theirs.get(key)
        assert ours.get(key, "none") == theirs.get(key, "none")
        assert ours.get(key, 0, type=int) == theirs.get(key, 0, type=int)
        assert ours.getlist(key) == theirs.getlist(key)
