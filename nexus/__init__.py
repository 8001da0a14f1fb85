"""Nexus, a marketplace backend. `create_app()` is the one place that wires it together."""

import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from nexus.admin.routes import blp as admin_blp
from nexus.auth.routes import blp as auth_blp
from nexus.auth.tokens import init_jwt
from nexus.cli import register_commands
from nexus.config import VERSION, check_production, load_settings
from nexus.database import configure_engines
from nexus.errors import ErrorSchema, register_error_handlers
from nexus.extensions import api, cors, db, init_limiter, jwt, mail, migrate
from nexus.health.routes import blp as health_blp
from nexus.ids import IdConverter
from nexus.jobs.broker import init_jobs
from nexus.logs import configure_logging
from nexus.notifications.service import init_notifications
from nexus.observability import init_metrics, init_sentry, init_tracing
from nexus.openapi import BodyErrors, init_openapi
from nexus.orders.routes import blp as orders_blp
from nexus.payments.routes import blp as payments_blp
from nexus.payouts.routes import blp as payouts_blp
from nexus.profile.routes import blp as profile_blp
from nexus.reports.routes import blp as reports_blp
from nexus.serialization import OrjsonProvider
from nexus.stores.routes import products as products_blp
from nexus.stores.routes import stores as stores_blp
from nexus.web import register_request_hooks

__version__ = VERSION
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BLUEPRINTS = (
    health_blp,
    auth_blp,
    profile_blp,
    stores_blp,
    products_blp,
    orders_blp,
    payments_blp,
    payouts_blp,
    reports_blp,
    admin_blp,
)
# CORS headers go only on answers to cross-origin requests (those with an `Origin`): a request
# without one is no browser's cross-origin call, and flask-cors would otherwise list every
# allowed origin on it. So a public read that caches differs by Origin: `cacheable` says so.
CORS_OPTIONS = {
    "allow_headers": ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
    "expose_headers": ["X-Request-ID", "Retry-After", "Idempotent-Replayed", "Content-Disposition"],
    "always_send": False,
}


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `environ` (default: the process environment).

    Raises ConfigError when ENVIRONMENT=production lacks a setting it cannot run without.
    """
    settings = load_settings(os.environ if environ is None else environ)
    check_production(settings)
    configure_logging(settings["LOG_LEVEL"])
    init_sentry(settings)

    app = Flask(__name__, static_folder=None)
    app.json = OrjsonProvider(app)
    app.config.update(settings)
    app.url_map.strict_slashes = False
    app.url_map.converters["id"] = IdConverter
    if settings["ENVIRONMENT"] == "production":
        # Render's proxy is the one hop in front of us: trust its client IP and scheme.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    db.init_app(app)
    with app.app_context():
        configure_engines(db.engines)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    jwt.init_app(app)
    init_jwt(jwt)
    mail.init_app(app)
    init_jobs(app)
    init_notifications()
    cors.init_app(app, resources={r"/api/*": {"origins": settings["CORS_ALLOWED_ORIGINS"]}}, **CORS_OPTIONS)
    init_limiter(app)
    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app, spec_kwargs={"extra_plugins": [BodyErrors()]})
    init_openapi(app, api)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)

    register_error_handlers(app)
    register_request_hooks(app)
    init_metrics(app)
    init_tracing(app)
    register_commands(app)
    return app
