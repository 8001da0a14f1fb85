"""The WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import sys

from nexus import create_app
from nexus.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"nexus: refusing to start: {error}")
