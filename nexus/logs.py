"""JSON log lines on stderr: one object per line, ready for Render's log search."""

import logging
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    """Time, level, logger and message, plus the record's `fields` (pass `extra={"fields": {...}}`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every logger through one JSON handler on the root logger (added once per process)."""
    # One line per request: skip the record attributes our lines never show (the logging
    # HOWTO's "Optimization" switches), a third of what a log call costs.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    if not any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    # stripe-python logs whole API responses at DEBUG, client secrets included: never below INFO.
    logging.getLogger("stripe").setLevel(max(logging.getLevelName(level), logging.INFO))
