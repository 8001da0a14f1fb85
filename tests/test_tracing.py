"""OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT): a request, its SQL statements and its Stripe call
are spans of one trace, exported over OTLP/HTTP; under gunicorn each worker exports its own."""

import gzip
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from nexus import create_app, observability
from tests.conftest import app_environ, eventually
from tests.stripe_helpers import STRIPE_WEBHOOK_SECRET
from tests.test_serving import serve


class OtlpCollector:
    """An OTLP/HTTP trace receiver on a local port: keeps the spans of every export it is sent."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.paths.append(self.path)
                collector.requests.append(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def spans(self) -> list[tuple[dict, object]]:
        """(the resource's attributes, the span) of every span received."""
        received = []
        for export in list(self.requests):
            for resource_spans in export.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                received += [(resource, span) for scope in resource_spans.scope_spans for span in scope.spans]
        return received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def traced(app: Flask, database_url: str, localstripe: str) -> Iterator[tuple[Flask, InMemorySpanExporter, object]]:
    """An app with OTEL_EXPORTER_OTLP_ENDPOINT set (tracing set up by create_app itself), on the
    test database and localstripe; its spans are also kept in memory for the test to read."""
    collector = OtlpCollector()
    traced_app = create_app(
        app_environ(
            database_url,
            STRIPE_SECRET_KEY="sk_test_nexus",
            STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
            STRIPE_API_BASE=localstripe,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        )
    )
    provider = observability.start_tracing(traced_app.config)  # the one create_app built
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield traced_app, memory, (provider, collector)
    observability.stop_tracing()
    RequestsInstrumentor().uninstrument()
    EngineTracer.remove_all_event_listeners()
    collector.close()


def in_trace_of(server: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.context.trace_id == server.context.trace_id and span is not server]


def test_a_payment_is_one_trace_of_its_request_its_sql_and_its_stripe_call(traced, buyer, order, localstripe):
    traced_app, memory, _ = traced
    memory.clear()

    response = traced_app.test_client().post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers)

    assert response.status_code == 201
    spans = memory.get_finished_spans()
    servers = [span for span in spans if span.kind == SpanKind.SERVER]
    assert [span.name for span in servers] == ["POST /api/v1/orders/<id:order_id>/payment"]
    server = servers[0]
    children = in_trace_of(server, spans)
    sql = [span for span in children if any(key.startswith("db.") for key in span.attributes)]
    stripe = [span for span in children if str(span.attributes.get("url.full", span.attributes.get("http.url", "")))]
    assert sql, "no SQL spans in the request's trace"
    assert any(
        str(span.attributes.get("url.full", span.attributes.get("http.url"))).startswith(localstripe) for span in stripe
    ), "no span of the call to Stripe in the request's trace"
    assert all(span.parent is not None and span.parent.span_id == server.context.span_id for span in sql + stripe)


def test_spans_are_exported_over_otlp_to_the_endpoint(traced):
    traced_app, _, (provider, collector) = traced

    assert traced_app.test_client().get("/api/v1/products").status_code == 200
    provider.force_flush()

    assert "/v1/traces" in collector.paths
    names = [(resource.get("service.name"), span.name) for resource, span in collector.spans()]
    assert ("nexus", "GET /api/v1/products") in names


def test_health_probes_are_not_traced(traced):
    traced_app, memory, _ = traced
    memory.clear()

    assert traced_app.test_client().get("/health").status_code == 200

    assert not [span for span in memory.get_finished_spans() if span.kind == SpanKind.SERVER]


def test_each_gunicorn_worker_builds_its_tracer_after_the_fork_and_exports(app, database_url, tmp_path):
    collector = OtlpCollector()
    environ = app_environ(
        database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds between the batch exporter's sends
        WEB_CONCURRENCY="2",
        RATELIMIT_KEY_PREFIX=f"nexus-test-{uuid.uuid4().hex[:12]}",
    )
    server = serve(environ, tmp_path)
    try:
        assert server.call("GET", "/api/v1/products").status == 200

        def exported() -> list:
            return [span for _, span in collector.spans() if span.name == "GET /api/v1/products"]

        spans = eventually(exported, seconds=15)
    finally:
        server.stop()
        collector.close()
    assert len(spans) == 1
