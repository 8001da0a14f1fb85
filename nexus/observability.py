"""Metrics, Sentry and OpenTelemetry: each on only when configured.

- Metrics (`GET /metrics`, Prometheus text): requests by method, route template and status, their
  latency by route template, the database pools of each process, and the jobs waiting in the
  outbox (read at scrape time: the job worker takes no inbound traffic, so its backlog is seen
  from here). Under gunicorn every process writes its figures to files in
  PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets and wipes it) and a scrape, whichever process
  answers it, sums them; elsewhere (flask run, tests) the app keeps its own registry. Routes are
  labelled by template (`/api/v1/products/<id:product_id>`), never by the raw path, so ids cannot
  grow the number of series. With METRICS_TOKEN set a scrape needs it as a bearer token; a
  production app without one does not serve metrics at all (404), and does not count them.
- Sentry (SENTRY_DSN): unexpected errors (Flask, SQLAlchemy, Dramatiq jobs) with no personal data:
  no request bodies, cookies, query strings, authorization headers or local variables, and any
  email address or token left in a message replaced (`scrubbed`).
- OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT): traces of requests, their SQL statements and their
  outbound HTTP calls (Stripe), sent over OTLP/HTTP in batches. The batch exporter's thread does
  not survive a fork, so under gunicorn the tracer provider is built in each worker (`post_fork`)
  and, everywhere else, once when the first app is created; the instrumentation itself is
  installed with the app and reaches the provider through OpenTelemetry's global proxy.
"""

import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from nexus.config import VERSION
from nexus.database import read
from nexus.errors import Unauthorized
from nexus.extensions import db
from nexus.jobs.outbox import FAILED, PENDING, OutboxJob

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Metrics

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"  # the route label of a request no route took (404, 405)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds. A catalog page takes a few milliseconds, a payment waits on Stripe for up to a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
METRICS_KEY = "nexus.metrics"
POOL_SAMPLE_SECONDS = 1.0
TOKEN_REFUSED = "Metrics need the bearer token METRICS_TOKEN."  # noqa: S105 (a message, not a secret)


def multiprocess_dir() -> str | None:
    """Where the processes of a gunicorn server write their figures; None for a lone process."""
    return os.environ.get(MULTIPROC_DIR) or None


def metrics_served(settings: Mapping[str, Any]) -> bool:
    """Metrics are on unless turned off (METRICS_ENABLED=false) or nobody could read them: a
    production app without METRICS_TOKEN would have to publish them to the world."""
    if not settings["METRICS_ENABLED"]:
        return False
    return settings["ENVIRONMENT"] != "production" or bool(settings["METRICS_TOKEN"])


class Metrics:
    """An app's metrics. Under gunicorn they are written to its processes' files (the registry
    then only names them); a lone process serves them from `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nexus_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "nexus_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Per process, sampled each second; summed over the live gunicorn processes (a dead one's
        # files are dropped).
        self.pool_checked_out = Gauge(
            "nexus_db_pool_checked_out",
            "Database connections in use, by pool.",
            ("pool",),
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "nexus_db_pool_size",
            "Database connections each pool keeps, by pool.",
            ("pool",),
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.pool_overflow = Gauge(
            "nexus_db_pool_overflow",
            "Database connections in use past the pool's size (its overflow), by pool.",
            ("pool",),
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        # (method, route, status) -> (the counter's child, the histogram's child): a label lookup
        # takes a lock and builds a tuple, several times the cost of counting itself.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._pools: list[tuple[Any, Any, Any, Any]] = []
        self._sampler_pid: int | None = None
        self._sampler_lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def watch_pool(self, name: str, engine: Engine) -> None:
        """Report `engine`'s pool (one without a size, SQLite's in-memory one, is left out)."""
        pool = engine.pool
        if all(hasattr(pool, figure) for figure in ("checkedout", "size", "overflow")):
            gauges = (self.pool_checked_out.labels(name), self.pool_size.labels(name), self.pool_overflow.labels(name))
            self._pools.append((pool, *gauges))

    def sample_pools(self) -> None:
        for pool, checked_out, size, overflow in self._pools:
            # QueuePool derives it from its queue and overflow, read unlocked: a connection given
            # back by another thread meanwhile can make it -1 for an instant.
            checked_out.set(max(0, pool.checkedout()))
            size.set(pool.size())
            overflow.set(max(0, pool.overflow()))  # QueuePool counts up from -size

    def keep_sampling_pools(self) -> None:
        """Sample this process's pools every POOL_SAMPLE_SECONDS on a thread of its own, started
        by its first request (a thread of gunicorn's master is not in the forked workers). Pool
        events would keep the gauges exact but cost as much per request as counting it."""
        pid = os.getpid()
        if self._sampler_pid == pid:
            return
        with self._sampler_lock:
            if self._sampler_pid != pid:
                self._sampler_pid = pid
                threading.Thread(target=self._sample_pools_forever, name="nexus-pool-metrics", daemon=True).start()

    def _sample_pools_forever(self) -> None:
        while True:
            self.sample_pools()
            time.sleep(POOL_SAMPLE_SECONDS)


class OutboxBacklog:
    """`nexus_outbox_jobs{status}`: jobs not done, read from the database when scraped (one
    count on the outbox's status index). Omitted, with a warning, while the database is down."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statement = (
            select(OutboxJob.status, func.count())
            .where(OutboxJob.status.in_((PENDING, FAILED)))
            .group_by(OutboxJob.status)
        )
        try:
            counts = dict(read(statement))
        except (OperationalError, InterfaceError) as error:
            log.warning("metrics: the outbox could not be counted (%s)", type(error).__name__)
            return
        family = GaugeMetricFamily(
            "nexus_outbox_jobs",
            "Background jobs waiting in the outbox (pending) or given up on (failed).",
            labels=("status",),
        )
        for status in (PENDING, FAILED):
            family.add_metric((status,), counts.get(status, 0))
        yield family


def _request_counter(metrics: Metrics):
    """The after-request hook that counts and times each request in `metrics`."""

    def count(response: Response) -> Response:
        current = request._get_current_object()  # one proxy lookup, not four
        rule, method = current.url_rule, current.method
        started = g.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        route = rule.rule if rule is not None else UNMATCHED
        metrics.observe(method if method in METHODS else "OTHER", route, response.status_code, elapsed)
        metrics.keep_sampling_pools()
        return response

    return count


def _token_given(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_view() -> Response:
    """The Prometheus exposition of this server: every process's figures, summed."""
    token = current_app.config["METRICS_TOKEN"]
    if token and not _token_given(token):
        raise Unauthorized(TOKEN_REFUSED, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    metrics: Metrics = current_app.extensions[METRICS_KEY]
    metrics.sample_pools()  # this process's figures as of now; the others' are at most a second old
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(metrics.registry)
    registry.register(OutboxBacklog())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(registry), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_metrics(app: Flask) -> None:
    """Count every request and serve `/metrics`, unless metrics are off (`metrics_served`)."""
    if not metrics_served(app.config):
        return
    disable_created_metrics()  # `_created` series, which the multiprocess files do not keep either
    metrics = Metrics()
    app.extensions[METRICS_KEY] = metrics
    with app.app_context():
        engines = dict(db.engines)
    for name, engine in engines.items():
        metrics.watch_pool(name or "default", engine)
    app.after_request(_request_counter(metrics))
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


# ---------------------------------------------------------------------------------------------
# Sentry

# Headers that identify or authorize the caller (Sentry keeps the rest, to tell requests apart).
PRIVATE_HEADERS = frozenset(
    {"authorization", "cookie", "stripe-signature", "idempotency-key", "x-forwarded-for", "x-real-ip", "forwarded"}
)
# What a message, a log line or an exception text may still carry.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
TOKEN = re.compile(r"(?i)\bbearer\s+\S+|\beyJ[\w-]+\.[\w-]+\.[\w-]+|\b(?:sk|rk|pk|whsec)_\w+")


# What Sentry's integrations may collect: nothing that identifies a person. This is
# `send_default_pii=False` as sentry-sdk 2.75 spells it (it deprecates that flag), and stricter:
# no bodies, cookies, query strings or stack-frame variables (a frame's locals hold the very
# emails and tokens above) either.
NO_PERSONAL_DATA = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist"}},  # Authorization and its kin: "[Filtered]", then dropped
    "http_bodies": [],
    "url_query_params": {"mode": "off"},
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return TOKEN.sub("[token]", EMAIL.sub("[email]", value))
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def scrubbed(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's `before_send`: the event without request bodies, cookies, query strings or
    authorization headers, and with email addresses and tokens blanked wherever else they are."""
    data = event.get("request")
    if isinstance(data, dict):
        for part in ("data", "cookies", "query_string", "env"):
            data.pop(part, None)
        headers = data.get("headers")
        if isinstance(headers, dict):
            data["headers"] = {name: value for name, value in headers.items() if name.lower() not in PRIVATE_HEADERS}
    event.pop("user", None)
    return _redacted(event)


def release(settings: Mapping[str, Any]) -> str:
    """`nexus@<version>`, and the commit Render deployed (RENDER_GIT_COMMIT) when known."""
    commit = settings.get("RELEASE_COMMIT")
    return f"nexus@{VERSION}+{commit[:12]}" if commit else f"nexus@{VERSION}"


def init_sentry(settings: Mapping[str, Any]) -> None:
    """Report unexpected errors to Sentry, if SENTRY_DSN is set. Before the job broker is built:
    the Dramatiq integration hooks into every broker made after it."""
    if not settings["SENTRY_DSN"]:
        return
    import sentry_sdk
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    sentry_sdk.init(
        dsn=settings["SENTRY_DSN"],
        release=release(settings),
        environment=settings["ENVIRONMENT"],
        integrations=[FlaskIntegration(transaction_style="url"), SqlalchemyIntegration(), DramatiqIntegration()],
        data_collection=NO_PERSONAL_DATA,
        before_send=scrubbed,
        shutdown_timeout=2,
    )


# ---------------------------------------------------------------------------------------------
# OpenTelemetry

OTLP_TIMEOUT_SECONDS = 10
UNTRACED_PATHS = "/health,/api/v1/health,/metrics"  # probes and scrapes, every few seconds
TRACING: dict[str, Any] = {"after_fork": False, "provider": None}


def trace_after_fork() -> None:
    """Called by gunicorn.conf.py: the tracer provider is built in each worker (`start_tracing`
    from `post_fork`), not when the app is created in the master."""
    TRACING["after_fork"] = True


def start_tracing(settings: Mapping[str, Any], *, exporter: Any = None) -> Any:
    """The process's tracer provider, exporting in batches over OTLP/HTTP (or to `exporter`):
    built once, on the first call; None without OTEL_EXPORTER_OTLP_ENDPOINT."""
    endpoint = settings.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if TRACING["provider"] is not None or not endpoint:
        return TRACING["provider"]
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": "nexus", "service.version": VERSION, "deployment.environment": settings["ENVIRONMENT"]}
    )
    provider = TracerProvider(resource=resource)
    if exporter is None:
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=OTLP_TIMEOUT_SECONDS)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    TRACING["provider"] = provider
    return provider


def init_tracing(app: Flask) -> None:
    """Trace the app's requests, its engines' statements and outbound HTTP (stripe-python's
    requests), if OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if not app.config["OTEL_EXPORTER_OTLP_ENDPOINT"]:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter
    from opentelemetry.trace import get_tracer

    FlaskInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS, enable_commenter=False)
    # The instrumentor's own per-engine tracer, for this app's engines only: its `instrument()`
    # would also patch every create_engine of the process, once for all apps.
    tracer = get_tracer("nexus.sql", VERSION)
    connections = get_meter("nexus.sql", VERSION).create_up_down_counter("db.client.connections.usage")
    with app.app_context():
        engines = list(db.engines.values())
    app.extensions["nexus.sql_tracers"] = [EngineTracer(tracer, engine, connections) for engine in engines]
    requests_instrumentor = RequestsInstrumentor()
    if not requests_instrumentor.is_instrumented_by_opentelemetry:
        requests_instrumentor.instrument()
    if not TRACING["after_fork"]:
        start_tracing(app.config)


def stop_tracing() -> None:
    """Send what is buffered and stop exporting (a test's end; a process exits on its own)."""
    provider = TRACING["provider"]
    if provider is not None:
        provider.shutdown()
