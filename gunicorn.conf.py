"""gunicorn settings (Render and anywhere else): bind to $PORT, run $WEB_CONCURRENCY workers,
logging JSON lines."""

import os

from gunicorn import glogging

from nexus.logs import GunicornJsonFormatter

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Build the app once in the master: a bad production setting stops the service with one clear
# line instead of every worker crashing on boot. No connections are opened before the fork.
preload_app = True


class JsonLogger(glogging.Logger):
    """gunicorn's own lines (starting, booting workers, a WORKER TIMEOUT) as JSON, like the app's.

    No access log: the app writes one JSON line per request itself (gunicorn's default)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(GunicornJsonFormatter())


logger_class = JsonLogger
