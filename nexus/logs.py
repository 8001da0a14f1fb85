"""JSON log lines on stderr: one object per line, ready for Render's log search.

The app's loggers go through `configure_logging`; gunicorn's own (its error log: starting,
booting workers, a WORKER TIMEOUT) through `gunicorn.conf.py`'s logger class, with the same
formatter, so every line the service writes is one JSON object.
"""

import logging
import re
from datetime import UTC, datetime

import orjson

# gunicorn names the worker a line is about in its message: "Booting worker with pid: %s",
# "WORKER TIMEOUT (pid:%s)", "Worker (pid:%s) exited with code %s".
WORKER_PID = re.compile(r"pid: ?%s")
PLACEHOLDER = re.compile(r"%[sdr]")
# Terminal colour codes (werkzeug's development server paints its warnings and status codes):
# a JSON line is read by a log search, not a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The development server's own access line, `127.0.0.1 - - [01/Dec/2026 10:00:34] "GET / HTTP/1.1" 200 -`:
# nexus.access already writes one line per request, with more in it.
WERKZEUG_ACCESS = re.compile(r'^\S+ - - \[[^\]]*\] "')


def _not_werkzeug_access(record: logging.LogRecord) -> bool:
    return not (record.levelno == logging.INFO and WERKZEUG_ACCESS.match(record.getMessage()))


class JsonFormatter(logging.Formatter):
    """Time, level, logger, message and the writing process's pid, plus the record's `fields`
    (pass `extra={"fields": {...}}`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": ANSI.sub("", record.getMessage()),
            "pid": record.process,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class GunicornJsonFormatter(JsonFormatter):
    """gunicorn's lines, with the pid of the worker a line is about as `worker_pid`."""

    def format(self, record: logging.LogRecord) -> str:
        found = WORKER_PID.search(record.msg) if isinstance(record.msg, str) else None
        if found and isinstance(record.args, tuple) and not hasattr(record, "fields"):
            position = len(PLACEHOLDER.findall(record.msg, 0, found.start()))
            if position < len(record.args):
                record.fields = {"worker_pid": record.args[position]}
        return super().format(record)


def configure_logging(level: str) -> None:
    """Send every logger through one JSON handler on the root logger (added once per process)."""
    # One line per request: skip what a record costs to build and no line of ours shows, where
    # skipping it leaves a value every format can still print (the logging HOWTO's
    # "Optimization"): the caller's file and line (findCaller walks the stack; formats then
    # print "(unknown file)" and 0) and the multiprocessing name ("MainProcess"). The process
    # and thread ids stay: they cost a call each, and skipped they are None, which breaks any
    # format that prints them as numbers (gunicorn's own: "[%(process)d]").
    logging._srcfile = None
    logging.logMultiprocessing = False
    logging.captureWarnings(True)  # a Python warning is a JSON line too, not raw text on stderr
    root = logging.getLogger()
    if not any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    # `flask run`: werkzeug's request lines would repeat nexus.access's (its other lines stay).
    werkzeug = logging.getLogger("werkzeug")
    if _not_werkzeug_access not in werkzeug.filters:
        werkzeug.addFilter(_not_werkzeug_access)
    # stripe-python logs whole API responses at DEBUG, client secrets included: never below INFO.
    logging.getLogger("stripe").setLevel(max(logging.getLevelName(level), logging.INFO))
