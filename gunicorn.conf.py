"""gunicorn settings (Render and anywhere else): bind to $PORT, run $WEB_CONCURRENCY processes of
$WEB_THREADS threads each, within time limits derived from the app's own, logging JSON lines."""

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn import glogging

# Metrics: every process writes its figures to files in one directory, and /metrics sums them
# (prometheus_client's multiprocess mode, nexus.observability). prometheus_client picks the mode
# when it is first imported, so the directory is named before anything of the app is.
METRICS_DIR_CREATED = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if METRICS_DIR_CREATED:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nexus-metrics-")
METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from nexus import observability  # noqa: E402 (after the metrics directory is set)
from nexus.config import ConfigError, load_settings  # noqa: E402
from nexus.logs import GunicornJsonFormatter  # noqa: E402
from nexus.payments import gateway  # noqa: E402

try:
    settings = load_settings(os.environ)
except ConfigError as error:  # the same one line as wsgi.py's, not gunicorn's traceback
    sys.exit(f"nexus: refusing to start: {error}")

bind = f"0.0.0.0:{settings['PORT']}"
# Threads: a request waiting on Stripe or SMTP holds one thread, not a whole process, so one hung
# dependency never stalls the requests that do not use it. An explicit `--worker-class sync`
# (command line or GUNICORN_CMD_ARGS) still gets sync workers (on_starting).
worker_class = "gthread"
workers = settings["WEB_CONCURRENCY"]
threads = settings["WEB_THREADS"]
# A process takes a connection only while it has a thread free for it; otherwise the other
# processes take it. gthread would otherwise accept up to 1000 and queue them behind busy
# threads (a catalog page stuck behind four payments waiting on a hung Stripe). So no
# keep-alive either (a kept connection is tied to its process): each request is a connection
# of its own, as with gunicorn's sync workers, and Render's proxy keeps the clients'.
worker_connections = threads
keepalive = 0

# The slowest a request can be, from the limits of what it waits on: its Stripe calls (at most
# gateway.CALLS_PER_REQUEST, each at most gateway.CALL_WORST_CASE_SECONDS with its retries: 126 s),
# or a sign-in's SMTP (MAIL_TIMEOUT per wait, far less), plus one statement run up to
# DATABASE_STATEMENT_TIMEOUT_MS. The worker timeout is past it, so every limit of the app is
# strictly smaller and its own JSON 502 or 503 always answers first: gunicorn never kills a
# request the app would have answered (the client would get a dropped connection). A gthread
# worker's main loop reports alive while its threads wait, so there the timeout catches only a
# process that stopped altogether; with sync workers it bounds each request.
SLOWEST_REQUEST_SECONDS = (
    max(gateway.REQUEST_WORST_CASE_SECONDS, settings["MAIL_TIMEOUT"]) + settings["DATABASE_STATEMENT_TIMEOUT_MS"] / 1000
)
timeout = math.ceil(SLOWEST_REQUEST_SECONDS) + 10
# A stop (a deploy, SIGTERM) lets requests in flight finish as long as their slowest takes.
graceful_timeout = timeout

# Build the app once in the master: a bad production setting stops the service with one clear
# line instead of every worker crashing on boot. No connections are opened before the fork.
preload_app = True
# The tracer provider's batch exporter runs a thread, which a fork does not copy: each worker
# builds its own (post_fork), while the app built in the master only installs the instrumentation.
observability.trace_after_fork()


def on_starting(server) -> None:
    honour_sync_workers(server)
    wipe_metrics()


def on_reload(server) -> None:
    honour_sync_workers(server)  # a reload (SIGHUP) resolves the worker class again


def honour_sync_workers(server) -> None:
    """`--worker-class sync` means sync workers, one request per process at a time: gunicorn
    would run gthread all the same, since `threads` above is more than 1 (its rule for sync)."""
    chosen = server.cfg.settings["worker_class"].get()
    sync = isinstance(chosen, str) and (chosen == "sync" or chosen.endswith("SyncWorker"))
    if sync and server.cfg.threads > 1:
        server.cfg.set("threads", 1)
        server.worker_class = server.cfg.worker_class


def wipe_metrics() -> None:
    """Wipe the metrics directory: figures of an earlier server there would be summed in."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for leftover in METRICS_DIR.iterdir():
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()


def post_fork(server, worker) -> None:
    observability.start_tracing(settings)


def child_exit(server, worker) -> None:
    """A worker that exited takes its gauges (its pool figures) out of the sum; its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if METRICS_DIR_CREATED:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


class JsonLogger(glogging.Logger):
    """gunicorn's own lines (starting, booting workers, a WORKER TIMEOUT) as JSON, like the app's.

    No access log: the app writes one JSON line per request itself (gunicorn's default)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(GunicornJsonFormatter())


logger_class = JsonLogger
