"""`flask --app wsgi worker`: run background jobs from the Redis queue (Render's `nexus-worker`).

Every few seconds it also has the queue hand back the jobs of workers that died (their
heartbeat stopped) and sweeps the outbox for jobs a crash or a queue outage left behind.
SIGTERM (Render's stop, 30 s before SIGKILL) stops taking jobs and lets running ones finish
for up to 25 s; a job cut short is delivered again and, being idempotent, has its effect once.
"""

import logging
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from nexus.jobs.broker import SWEEP_EVERY_SECONDS, jobs, sweep_once

log = logging.getLogger(__name__)

STOP_GRACE_MS = 25_000


def maintain_queues(broker) -> None:
    """Queue maintenance (`RedisBroker.maintain`); Redis away is logged, and tried again next time."""
    try:
        broker.maintain()
    except Exception as error:
        log.warning("queue maintenance failed (%s); trying again shortly", type(error).__name__)


@click.command("worker")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 32), help="Jobs run at once.")
@with_appcontext
def worker_command(threads: int) -> None:
    """Run background jobs (needs BROKER_URL)."""
    if not current_app.config["BROKER_URL"]:
        raise click.ClickException("BROKER_URL is not set: a worker needs the Redis queue to take jobs from.")
    worker = jobs().worker(threads)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    worker.start()
    log.info("worker started with %s threads", threads)
    app = current_app._get_current_object()
    while not stopping.wait(SWEEP_EVERY_SECONDS):
        maintain_queues(jobs().broker)
        sweep_once(app)
    log.info("worker stopping: letting running jobs finish")
    worker.stop(timeout=STOP_GRACE_MS)
    log.info("worker stopped")
