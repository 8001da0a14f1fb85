"""The queue: Dramatiq on Redis (`BROKER_URL`), or, without it in development and tests, an
in-memory broker whose jobs run on threads of the web process itself (nothing else to start).

Each app builds its own broker and its one actor, `run_job`, which runs an outbox row by id
inside that app's context with a session of its own (`AppContext`), so several apps in one
process (tests) never share a queue.
"""

import logging
import os
import threading
import time

import dramatiq
import dramatiq.brokers.redis
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from flask import Flask, current_app
from sqlalchemy.exc import OperationalError

from nexus.extensions import db
from nexus.jobs import outbox

log = logging.getLogger(__name__)

QUEUE = "nexus"
MIN_BACKOFF_MS, MAX_BACKOFF_MS = 1_000, 300_000
JOB_TIME_LIMIT_MS = 5 * 60_000  # a report of a year of a busy store takes seconds; an SMTP call 10 s at most
IN_PROCESS_THREADS = 2
SWEEP_EVERY_SECONDS = 5
# Redis: a worker silent this long is taken for dead and its unfinished messages go back on
# the queue (Dramatiq's default is 60 s) by the next maintenance, which `flask worker` runs
# every SWEEP_EVERY_SECONDS (RedisBroker.maintain); each Redis call waits at most REDIS_TIMEOUT_S.
HEARTBEAT_TIMEOUT_MS = 15_000
REDIS_TIMEOUT_S = 5


class RedisBroker(dramatiq.brokers.redis.RedisBroker):
    """Dramatiq's Redis broker, its queue maintenance done when asked (`maintain`).

    Dramatiq does maintenance (a dead worker's unacknowledged messages back on their queue, old
    dead letters dropped) on a random share of broker calls (`maintenance_chance` per million,
    one in a thousand by default), and only for the queue of that call: a killed worker's job
    could wait many minutes, and even at one call in twenty one waited past a minute. Here no
    call does it by chance; `flask worker` maintains every queue every SWEEP_EVERY_SECONDS.
    """

    def __init__(self, **options) -> None:
        super().__init__(maintenance_chance=0, **options)
        self._maintaining = threading.local()

    def maintain(self) -> None:
        """Maintain every queue this broker declared, the delay queues of retries included, now."""
        self._maintaining.now = True
        try:
            for queue in sorted(self.get_declared_queues() | self.get_declared_delay_queues()):
                self.do_qsize(queue)
        finally:
            self._maintaining.now = False

    def _should_do_maintenance(self, command: str) -> int:
        return int(getattr(self._maintaining, "now", False) and command not in MAINTENANCE_COMMAND_BLACKLIST)


class AppContext(Middleware):
    """Each job runs in the app's context with a database session of its own."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.contexts = threading.local()

    def before_process_message(self, broker, message) -> None:
        self.contexts.current = self.app.app_context()
        self.contexts.current.push()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        db.session.remove()
        self.contexts.current.pop()

    after_skip_message = after_process_message


class Jobs:
    """An app's broker and actor, and, without Redis, the threads that run its jobs."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        url = app.config["BROKER_URL"]
        if url:
            self.broker = RedisBroker(
                url=url,
                namespace=app.config["BROKER_NAMESPACE"],
                heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
        else:
            self.broker = StubBroker()
        self.broker.add_middleware(AppContext(app))
        self.actor = dramatiq.Actor(
            outbox.run,
            broker=self.broker,
            actor_name="run_job",
            queue_name=QUEUE,
            priority=0,
            options={
                "max_retries": outbox.MAX_ATTEMPTS,
                "min_backoff": MIN_BACKOFF_MS,
                "max_backoff": MAX_BACKOFF_MS,
                "time_limit": JOB_TIME_LIMIT_MS,
            },
        )
        self.in_process = not url
        self._worker: dramatiq.Worker | None = None
        self._worker_pid: int | None = None
        self._lock = threading.Lock()

    def send(self, outbox_id: int) -> None:
        if self.in_process:
            self._start_in_process_worker()
        self.actor.send(outbox_id)

    def _start_in_process_worker(self) -> None:
        """Threads in this process run the jobs, and one sweeps the outbox (started on first use,
        and again after a fork: gunicorn's workers do not inherit the master's threads)."""
        with self._lock:
            if self._worker_pid == os.getpid():
                return
            self._worker = dramatiq.Worker(self.broker, worker_threads=IN_PROCESS_THREADS, worker_timeout=100)
            self._worker.start()
            threading.Thread(target=self._sweep_forever, name="outbox-sweep", daemon=True).start()
            self._worker_pid = os.getpid()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_EVERY_SECONDS)
            sweep_once(self.app)

    def worker(self, threads: int) -> dramatiq.Worker:
        """A worker of its own for `flask worker` (Redis only)."""
        return dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=1000)


def sweep_once(app: Flask) -> None:
    """Hand the outbox's stranded jobs to the queue, in a context of its own; a failure is logged."""
    with app.app_context():
        try:
            if swept := outbox.sweep():
                log.info("swept %s stranded jobs onto the queue", swept)
        except OperationalError as error:  # the database is away: nothing to hand over until it is back
            log.warning("sweeping the outbox failed (%s); trying again shortly", type(error).__name__)
        except Exception:
            log.exception("sweeping the outbox failed; trying again shortly")
        finally:
            db.session.remove()


def init_jobs(app: Flask) -> None:
    app.extensions["jobs"] = Jobs(app)


def jobs() -> Jobs:
    return current_app.extensions["jobs"]


def send(outbox_id: int) -> None:
    """Put the job on the current app's queue."""
    jobs().send(outbox_id)
