"""Settings from the environment, and a production app that refuses to start without what it needs."""

import subprocess
import sys
from pathlib import Path

import pytest

from nexus import create_app
from nexus.config import ConfigError, load_settings, normalise_database_url
from tests.conftest import PRODUCTION

ROOT = Path(__file__).resolve().parent.parent


def test_a_complete_production_environment_starts():
    app = create_app(PRODUCTION)

    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://nexus:pw@db.internal:5432/nexus"
    assert app.config["CORS_ALLOWED_ORIGINS"] == ["https://shop.example.com"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///prod.db"}, "DATABASE_URL"),
        ({"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS"),
        ({"MAIL_SERVER": ""}, "MAIL_SERVER"),
        ({"BROKER_URL": ""}, "BROKER_URL"),
        ({"MAIL_DEFAULT_SENDER": ""}, "MAIL_DEFAULT_SENDER"),
    ],
)
def test_production_refuses_to_start_naming_the_problem(change, named):
    with pytest.raises(ConfigError, match=named):
        create_app({**PRODUCTION, **change})


def test_the_refusal_is_one_clear_line_on_stderr():
    environ = {**PRODUCTION, "CORS_ALLOWED_ORIGINS": "*", "PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "nexus: refusing to start: CORS_ALLOWED_ORIGINS must list the frontend origins, not '*'"
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_are_normalised_to_psycopg2(url, expected):
    assert normalise_database_url(url) == expected


def test_development_defaults_need_no_environment():
    settings = load_settings({})

    assert settings["ENVIRONMENT"] == "development"
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert settings["OTP_TTL_SECONDS"] == 600
    assert settings["OTP_MAX_ATTEMPTS"] == 5
    assert settings["JWT_ACCESS_TOKEN_EXPIRES_SECONDS"] == 900
    assert settings["JWT_REFRESH_TOKEN_EXPIRES_SECONDS"] == 2592000
    assert settings["ORDER_PAYMENT_TIMEOUT_MINUTES"] == 30
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"


def test_order_limits_default_to_5_open_orders_and_60_an_hour_and_read_the_environment():
    defaults = load_settings({})
    chosen = load_settings({"ORDER_MAX_OPEN_PER_BUYER": "2", "ORDER_RATE_LIMIT_PER_USER": "10 per minute"})

    assert (defaults["ORDER_MAX_OPEN_PER_BUYER"], defaults["ORDER_RATE_LIMIT_PER_USER"]) == (5, "60 per hour")
    assert (chosen["ORDER_MAX_OPEN_PER_BUYER"], chosen["ORDER_RATE_LIMIT_PER_USER"]) == (2, "10 per minute")


def test_the_catalog_limit_defaults_to_600_a_minute_per_ip_and_reads_the_environment():
    assert load_settings({})["CATALOG_RATE_LIMIT_PER_IP"] == "600 per minute"
    assert load_settings({"CATALOG_RATE_LIMIT_PER_IP": "10 per second"})["CATALOG_RATE_LIMIT_PER_IP"] == "10 per second"


def test_the_refresh_reuse_grace_defaults_to_10_seconds_reads_the_environment_and_refuses_a_negative():
    assert load_settings({})["JWT_REFRESH_REUSE_GRACE_SECONDS"] == 10
    assert load_settings({"JWT_REFRESH_REUSE_GRACE_SECONDS": "0"})["JWT_REFRESH_REUSE_GRACE_SECONDS"] == 0
    with pytest.raises(ConfigError, match="JWT_REFRESH_REUSE_GRACE_SECONDS"):
        load_settings({"JWT_REFRESH_REUSE_GRACE_SECONDS": "-1"})


def test_time_limits_and_threads_default_to_the_contract_and_read_the_environment():
    defaults = load_settings({})
    chosen = load_settings(
        {
            "DATABASE_URL": "postgres://nexus@db:5432/nexus",
            "MAIL_TIMEOUT": "3",
            "WEB_THREADS": "8",
            "DATABASE_STATEMENT_TIMEOUT_MS": "250",
        }
    )

    assert [defaults[key] for key in ("MAIL_TIMEOUT", "WEB_CONCURRENCY", "WEB_THREADS")] == [10, 2, 4]
    assert defaults["DATABASE_STATEMENT_TIMEOUT_MS"] == 5000
    assert (chosen["MAIL_TIMEOUT"], chosen["WEB_THREADS"]) == (3, 8)
    for options in (chosen["SQLALCHEMY_ENGINE_OPTIONS"], chosen["SQLALCHEMY_BINDS"]["reads"]):
        assert (options["pool_size"], options["max_overflow"]) == (8, 2)  # each of the 8 threads has its own
        assert "-c statement_timeout=250" in options["connect_args"]["options"]


def test_payouts_default_to_a_10_percent_fee_and_read_the_environment():
    defaults = load_settings({})
    chosen = load_settings(
        {"PLATFORM_FEE_BPS": "250", "FRONTEND_URL": "https://shop.example.com/", "STRIPE_CONNECT_WEBHOOK_SECRET": "w"}
    )

    assert (defaults["PLATFORM_FEE_BPS"], defaults["FRONTEND_URL"], defaults["STRIPE_CONNECT_WEBHOOK_SECRET"]) == (
        1000,
        None,
        None,
    )
    assert (chosen["PLATFORM_FEE_BPS"], chosen["FRONTEND_URL"], chosen["STRIPE_CONNECT_WEBHOOK_SECRET"]) == (
        250,
        "https://shop.example.com",
        "w",
    )


@pytest.mark.parametrize(
    "environ",
    [
        {"ENVIRONMENT": "staging"},
        {"OTP_TTL_SECONDS": "ten"},
        {"WEB_THREADS": "0"},
        {"MAIL_TIMEOUT": "-1"},
        {"PLATFORM_FEE_BPS": "10001"},
        {"PLATFORM_FEE_BPS": "-1"},
    ],
)
def test_malformed_settings_are_refused_by_name(environ):
    with pytest.raises(ConfigError, match=next(iter(environ))):
        load_settings(environ)
