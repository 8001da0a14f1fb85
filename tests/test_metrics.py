"""`GET /metrics`: Prometheus text of the requests served (by method, route template and
status), their latency, the database pools and the outbox backlog; summed over gunicorn's
processes; behind METRICS_TOKEN when it is set, and not served in production without it."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from nexus import create_app
from tests.conftest import PRODUCTION, app_environ
from tests.factories import ProductFactory
from tests.test_serving import Served, serve

TOKEN = "metrics-token-" + "x" * 24
PRODUCT_ROUTE = "/api/v1/products/<id:product_id>"


def samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition: (name, its labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def label_values(exposition: str) -> set[str]:
    """Every label value of the exposition (where a raw path would show; sample values can hold any digits)."""
    return {value for _, labels in samples(exposition) for _, value in labels}


def requests_counted(exposition: str, route: str, status: int, method: str = "GET") -> float:
    labels = frozenset({"method": method, "route": route, "status": str(status)}.items())
    return samples(exposition).get(("nexus_http_requests_total", labels), 0.0)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_requests_are_counted_by_route_template_never_by_raw_path(client):
    before = scrape(client)
    assert client.get("/api/v1/products/987654").status_code == 404
    assert client.get("/api/v1/no-such-thing/987654").status_code == 404
    after = scrape(client)

    assert requests_counted(after, PRODUCT_ROUTE, 404) == requests_counted(before, PRODUCT_ROUTE, 404) + 1
    assert requests_counted(after, "<unmatched>", 404) == requests_counted(before, "<unmatched>", 404) + 1
    assert not any("987654" in value for value in label_values(after))


def test_latency_is_a_histogram_by_route_template(client):
    client.get("/api/v1/products")
    exposition = scrape(client)
    labels = frozenset({"method": "GET", "route": "/api/v1/products", "le": "+Inf"}.items())
    count = frozenset({"method": "GET", "route": "/api/v1/products"}.items())
    observed = samples(exposition)
    assert observed[("nexus_http_request_duration_seconds_bucket", labels)] >= 1
    assert (
        observed[("nexus_http_request_duration_seconds_count", count)]
        == observed[("nexus_http_request_duration_seconds_bucket", labels)]
    )


def test_the_outbox_backlog_is_counted_by_status_when_scraped(client, test_engine: Engine):
    rows = [("pending", None), ("failed", "SMTP refused"), ("failed", "SMTP refused"), ("done", None)]
    with test_engine.connect() as connection:
        for status, error in rows:
            connection.execute(
                text(
                    "INSERT INTO outbox (job, payload, status, attempts, last_error, created_at) "
                    "VALUES ('metrics-test', '{}', :status, 1, :error, :now)"
                ),
                {"status": status, "error": error, "now": datetime.now(UTC)},
            )
    observed = samples(scrape(client))

    assert observed[("nexus_outbox_jobs", frozenset({("status", "pending")}))] == 1
    assert observed[("nexus_outbox_jobs", frozenset({("status", "failed")}))] == 2


def test_the_pool_gauges_show_connections_given_back_once_a_request_is_done(client):
    client.get("/api/v1/products")
    client.get("/api/v1/products/1")
    observed = samples(scrape(client))

    for pool in ("default", "reads"):
        assert observed[("nexus_db_pool_size", frozenset({("pool", pool)}))] >= 1
        assert observed[("nexus_db_pool_checked_out", frozenset({("pool", pool)}))] == 0
        assert observed[("nexus_db_pool_overflow", frozenset({("pool", pool)}))] == 0


@pytest.fixture(scope="module")
def guarded(app: Flask, database_url: str) -> Flask:
    """An app whose metrics need METRICS_TOKEN."""
    return create_app(app_environ(database_url, METRICS_TOKEN=TOKEN))


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_with_metrics_token_set_a_scrape_without_it_is_401(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = guarded.test_client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.get_json() == {
        "code": 401,
        "status": "Unauthorized",
        "message": "Metrics need the bearer token METRICS_TOKEN.",
    }


def test_with_metrics_token_set_a_scrape_with_it_is_served(guarded):
    response = guarded.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert "nexus_http_requests_total" in response.get_data(as_text=True)


def test_production_without_metrics_token_serves_no_metrics():
    response = create_app(PRODUCTION).test_client().get("/metrics")

    assert response.status_code == 404
    assert response.get_json()["code"] == 404


# Under gunicorn, as deployed: two processes, each writing its own figures.


@pytest.fixture(scope="module")
def served(app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    """The start command with 2 single-threaded workers (so concurrent requests go to both),
    METRICS_TOKEN set, its metrics directory where the test can see each process's files."""
    logs = tmp_path_factory.mktemp("gunicorn")
    metrics_dir = logs / "metrics"
    environ = app_environ(
        database_url,
        METRICS_TOKEN=TOKEN,
        WEB_CONCURRENCY="2",
        WEB_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        RATELIMIT_KEY_PREFIX=f"nexus-test-{uuid.uuid4().hex[:12]}",
    )
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier server")  # wiped at start
    server = serve(environ, logs)
    yield server, metrics_dir
    server.stop()


def counted_by_each_process(metrics_dir: Path, route: str, status: int) -> dict[int, float]:
    """pid -> requests that process counted for (GET, route, status), from its own file."""
    counted = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            for sample in family.samples:
                if sample.name == "nexus_http_requests_total" and sample.labels == {
                    "method": "GET",
                    "route": route,
                    "status": str(status),
                }:
                    counted[pid] = sample.value
    return counted


def test_metrics_under_gunicorn_are_the_sum_of_both_workers(served, session):
    server, metrics_dir = served
    product = ProductFactory()
    paths = [f"/api/v1/products/{product.id}"] * 40 + [f"/api/v1/products/{product.id + 1000 + n}" for n in range(20)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda path: server.call("GET", path).status, paths))
    assert statuses.count(200) == 40 and statuses.count(404) == 20

    scraped = server.call("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert scraped.status == 200
    found = counted_by_each_process(metrics_dir, PRODUCT_ROUTE, 200)
    assert len(found) == 2 and all(found.values()), f"not both workers served: {found}"
    assert sum(found.values()) == 40
    assert requests_counted(scraped.text, PRODUCT_ROUTE, 200) == 40
    assert requests_counted(scraped.text, PRODUCT_ROUTE, 404) == 20
    assert not any(str(product.id + 1000) in value for value in label_values(scraped.text))
    assert not (metrics_dir / "counter_1.db").exists()


def test_metrics_under_gunicorn_refuse_a_scrape_without_the_token(served):
    server, _ = served
    refused = server.call("GET", "/metrics")

    assert refused.status == 401
    assert refused.body["message"] == "Metrics need the bearer token METRICS_TOKEN."
