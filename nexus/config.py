"""Settings: every environment variable of the contract, read once, with development defaults.

`load_settings()` turns the environment into the Flask config mapping; `check_production()`
refuses to start a production app that is missing what it needs, naming the problem in one line.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

VERSION = "0.1.0"
ENVIRONMENTS = ("development", "test", "production")
MIN_SECRET_LENGTH = 32
READS = "reads"  # the bind key of the autocommit engine lists read through
DEV_SECRET = "development-only-secret-do-not-use-in-production"  # noqa: S105 (refused in production)
ONE_MIB = 1024 * 1024
# A rate-limit count is one Redis round trip (well under a millisecond to Render's Key Value in
# the same region): a Redis that does not answer within this is treated as away.
RATE_LIMIT_REDIS_OPTIONS = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


class ConfigError(RuntimeError):
    """The environment cannot run the app; the message says which setting to fix."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value


def _not_negative(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or a positive integer, got {value}")
    return value


def _within(env: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high} ({unit}), got {value}")
    return value


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def normalise_database_url(url: str) -> str:
    """Point every Postgres URL at psycopg2, the driver we install.

    Render hands out `postgres://`; SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def load_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Read the contract's environment variables into Flask config keys."""
    environment = env.get("ENVIRONMENT", "development").strip().lower() or "development"
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    production = environment == "production"
    rate_limit_storage = env.get("RATELIMIT_STORAGE_URI", "").strip() or "memory://"
    dev_secret = None if production else DEV_SECRET
    database_url = env.get("DATABASE_URL", "").strip() or (None if production else "sqlite:///nexus.db")
    allowed_hosts = _csv(env.get("ALLOWED_HOSTS"))
    default_origins = "" if production else "http://localhost:3000,http://localhost:5173"

    settings = {
        "ENVIRONMENT": environment,
        "TESTING": environment == "test",
        "SECRET_KEY": env.get("SECRET_KEY") or dev_secret,
        "JWT_SECRET_KEY": env.get("JWT_SECRET_KEY") or dev_secret,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url) if database_url else None,
        "CORS_ALLOWED_ORIGINS": _csv(env.get("CORS_ALLOWED_ORIGINS", default_origins)),
        "TRUSTED_HOSTS": allowed_hosts or None,
        "MAIL_SERVER": env.get("MAIL_SERVER", "").strip() or None,
        "MAIL_PORT": _int(env, "MAIL_PORT", 587),
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), default=True),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER")
        or ("Nexus <no-reply@localhost>" if not production else None),
        # Seconds SMTP may keep us waiting (to connect, or for any answer); nexus.extensions.Mail.
        "MAIL_TIMEOUT": _positive(env, "MAIL_TIMEOUT", 10),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE") or None,
        # Seller payouts (Stripe Connect): the Connect webhook's own signing secret, the platform's
        # fee in basis points of what the buyer kept paid (1000 = 10%), and the frontend Stripe
        # sends sellers back to after onboarding.
        "STRIPE_CONNECT_WEBHOOK_SECRET": env.get("STRIPE_CONNECT_WEBHOOK_SECRET") or None,
        "PLATFORM_FEE_BPS": _within(env, "PLATFORM_FEE_BPS", 1000, 0, 10_000, "basis points: 1000 is 10%"),
        "FRONTEND_URL": (env.get("FRONTEND_URL", "").strip().rstrip("/") or None),
        "RATELIMIT_STORAGE_URI": rate_limit_storage,
        "RATELIMIT_STORAGE_OPTIONS": RATE_LIMIT_REDIS_OPTIONS if rate_limit_storage.startswith("redis") else {},
        # A storage that fails or times out: each process counts in its own memory meanwhile
        # (Flask-Limiter warns, and tries the storage again now and then), rather than failing
        # every limited request.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Prepended to every rate-limit key: deployments (or test runs) sharing one Redis keep apart.
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", "").strip(),
        "OTP_TTL_SECONDS": _int(env, "OTP_TTL_SECONDS", 600),
        "OTP_MAX_ATTEMPTS": _int(env, "OTP_MAX_ATTEMPTS", 5),
        "OTP_RATE_LIMIT_PER_EMAIL": env.get("OTP_RATE_LIMIT_PER_EMAIL", "").strip() or "5 per hour",
        "OTP_RATE_LIMIT_PER_IP": env.get("OTP_RATE_LIMIT_PER_IP", "").strip() or "30 per hour",
        "CATALOG_RATE_LIMIT_PER_IP": env.get("CATALOG_RATE_LIMIT_PER_IP", "").strip() or "600 per minute",
        "JWT_ACCESS_TOKEN_EXPIRES_SECONDS": _int(env, "JWT_ACCESS_TOKEN_EXPIRES_SECONDS", 900),
        "JWT_REFRESH_TOKEN_EXPIRES_SECONDS": _int(env, "JWT_REFRESH_TOKEN_EXPIRES_SECONDS", 2592000),
        # A rotated refresh token presented again this soon after its rotation (two tabs refreshing
        # at once) gets a fresh pair; later, reuse signs the user out everywhere (nexus.auth.tokens).
        "JWT_REFRESH_REUSE_GRACE_SECONDS": _not_negative(env, "JWT_REFRESH_REUSE_GRACE_SECONDS", 10),
        "ORDER_PAYMENT_TIMEOUT_MINUTES": _int(env, "ORDER_PAYMENT_TIMEOUT_MINUTES", 30),
        "ORDER_MAX_OPEN_PER_BUYER": _int(env, "ORDER_MAX_OPEN_PER_BUYER", 5),
        "ORDER_RATE_LIMIT_PER_USER": env.get("ORDER_RATE_LIMIT_PER_USER", "").strip() or "60 per hour",
        # The job queue (Redis); without it (development, tests) jobs run on threads in-process.
        "BROKER_URL": env.get("BROKER_URL", "").strip() or None,
        # Prefixes the queue's Redis keys: deployments (or test runs) sharing one Redis keep apart.
        "BROKER_NAMESPACE": env.get("BROKER_NAMESPACE", "").strip() or "nexus",
        "LOG_LEVEL": (env.get("LOG_LEVEL", "").strip() or "INFO").upper(),
        "PORT": _int(env, "PORT", 5000),
        # gunicorn.conf.py serves with WEB_CONCURRENCY processes of WEB_THREADS threads each;
        # each process's database pools are sized to its threads.
        "WEB_CONCURRENCY": _positive(env, "WEB_CONCURRENCY", 2),
        "WEB_THREADS": _positive(env, "WEB_THREADS", 4),
        "DATABASE_STATEMENT_TIMEOUT_MS": _positive(env, "DATABASE_STATEMENT_TIMEOUT_MS", 5000),
        # Observability (nexus.observability): each part on only when configured. Metrics are on
        # unless METRICS_ENABLED=false (the benchmark's baseline), and in production only with a token.
        "METRICS_TOKEN": env.get("METRICS_TOKEN", "").strip() or None,
        "METRICS_ENABLED": _bool(env.get("METRICS_ENABLED"), default=True),
        "SENTRY_DSN": env.get("SENTRY_DSN", "").strip() or None,
        "OTEL_EXPORTER_OTLP_ENDPOINT": env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or None,
        "RELEASE_COMMIT": env.get("RENDER_GIT_COMMIT", "").strip() or None,  # Render sets it on deploys
    }
    settings.update(_derived(settings))
    return settings


# Past one connection per thread: a report streams its rows on a second connection while its
# session holds the first, and a readiness probe left waiting on a hung database holds one.
POOL_OVERFLOW = 2


def _engine_options(settings: Mapping[str, Any], postgres: bool) -> dict[str, Any]:
    if not postgres:
        return {}
    # A dead database fails a request in seconds instead of hanging it; idle connections are
    # pinged before use (nexus.database.ping_after_idle), not every one on every request.
    # Sessions run in UTC, so timestamps arrive as UTC (nexus.database.UTCDateTime), and cancel
    # any statement that runs past DATABASE_STATEMENT_TIMEOUT_MS (a 503, nexus.errors); both are
    # set when the connection opens, at no cost per request. Commands that legitimately run long
    # statements (migrations, demo seed) lift the limit in their own transaction.
    # Each gunicorn process runs WEB_THREADS requests at once, each mostly using one connection
    # of an engine at a time: a pool of that many, plus a little overflow (README, "Time limits
    # and connections").
    # Last in, first out: the connections in use stay warm and the spare ones age out idle.
    options = f"-c timezone=UTC -c statement_timeout={settings['DATABASE_STATEMENT_TIMEOUT_MS']}"
    return {
        "pool_size": settings["WEB_THREADS"],
        "max_overflow": POOL_OVERFLOW,
        "pool_use_lifo": True,
        "connect_args": {"connect_timeout": 3, "options": options, "application_name": "nexus"},
    }


def _derived(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Flask and extension settings that follow from the environment ones."""
    database_url = settings["SQLALCHEMY_DATABASE_URI"] or ""
    postgres = database_url.startswith("postgresql")
    return {
        "MAX_CONTENT_LENGTH": ONE_MIB,
        "PROPAGATE_EXCEPTIONS": False,  # every crash becomes a JSON 500, in tests too
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings["JWT_ACCESS_TOKEN_EXPIRES_SECONDS"]),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=settings["JWT_REFRESH_TOKEN_EXPIRES_SECONDS"]),
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_COOKIE_CSRF_PROTECT": False,  # bearer headers only: no cookies, no CSRF claim
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(settings, postgres),
        # Lists read through their own pool in autocommit: no BEGIN and ROLLBACK round trips
        # (nexus.pagination). Postgres gives each statement a consistent snapshot anyway.
        "SQLALCHEMY_BINDS": {
            READS: {"url": database_url, "isolation_level": "AUTOCOMMIT", **_engine_options(settings, postgres)}
        }
        if database_url
        else {},
        "MAIL_SUPPRESS_SEND": settings["ENVIRONMENT"] == "test" and not settings["MAIL_SERVER"],
        "API_TITLE": "Nexus API",
        "API_VERSION": VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Marketplace API: passwordless sign-in, stores, products, orders and "
                "Stripe payments. Errors always have the shape {code, status, message, errors?}.",
                "contact": {"name": "Nexus API team", "email": "api@nexus.example"},
            },
            # Relative, so the committed openapi.json is the same for every deployment: Swagger UI
            # resolves it against the document's own URL (it tries requests on the host serving
            # it), and generated clients take the base URL as a setting.
            "servers": [{"url": "/", "description": "The host serving this document."}],
        },
    }


def check_production(settings: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first setting a production app cannot run without."""
    if settings["ENVIRONMENT"] != "production":
        return
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        value = settings.get(name) or ""
        if len(value) < MIN_SECRET_LENGTH or value == DEV_SECRET:
            raise ConfigError(f"{name} must be set to a random string of at least {MIN_SECRET_LENGTH} characters")
    database_url = settings.get("SQLALCHEMY_DATABASE_URI") or ""
    if not database_url or database_url.startswith("sqlite"):
        raise ConfigError("DATABASE_URL must point at Postgres in production (it is missing or SQLite)")
    if "*" in settings.get("CORS_ALLOWED_ORIGINS", []):
        raise ConfigError("CORS_ALLOWED_ORIGINS must list the frontend origins, not '*'")
    if not settings.get("MAIL_SERVER") or not settings.get("MAIL_DEFAULT_SENDER"):
        raise ConfigError("MAIL_SERVER and MAIL_DEFAULT_SENDER must be set in production (sign-in codes go by email)")
    if not settings.get("BROKER_URL"):
        raise ConfigError("BROKER_URL must point at Redis in production (emails and reports are jobs on its queue)")
