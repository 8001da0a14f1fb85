"""gunicorn settings (Render and anywhere else): bind to $PORT, run $WEB_CONCURRENCY workers."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Build the app once in the master: a bad production setting stops the service with one clear
# line instead of every worker crashing on boot. No connections are opened before the fork.
preload_app = True
# No access log: the app writes one JSON line per request itself (gunicorn's default).
