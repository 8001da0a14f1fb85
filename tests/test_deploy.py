"""The Render Blueprint really deploys this app: its start command serves the health path with
exactly the environment the Blueprint provides, its pre-deploy command migrates Postgres, and
its cron job expires stale orders."""

import json
import os
import runpy
import secrets
import shlex
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from nexus import observability
from nexus.auth.models import RevokedToken
from nexus.config import load_settings
from nexus.database import utcnow
from nexus.orders.models import Order
from nexus.payments import gateway
from nexus.payments.models import Payment
from tests.conftest import eventually, free_port
from tests.payouts_helpers import opened_account, place_order
from tests.stripe_helpers import DownWebhook, intent_at_stripe, pay_at_stripe, register_webhook

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text())
SERVICES = {service["name"]: service for service in BLUEPRINT["services"]}
GROUPS = {group["name"]: group for group in BLUEPRINT.get("envVarGroups", [])}
WEB = next(service for service in BLUEPRINT["services"] if service["type"] == "web")
CRONS = {service["startCommand"]: service for service in BLUEPRINT["services"] if service["type"] == "cron"}
WORKER = next(service for service in BLUEPRINT["services"] if service["type"] == "worker")
CRON = CRONS["flask --app wsgi orders expire-stale"]
RECONCILE = CRONS["flask --app wsgi payments reconcile"]
PRUNE = CRONS["flask --app wsgi auth prune-tokens"]
PAYOUTS = CRONS["flask --app wsgi payouts reconcile"]
# Stand-ins for what Render fills in: generated secrets, dashboard values, linked resources.
DASHBOARD_VALUES = {
    "STRIPE_SECRET_KEY": "sk_test_nexus",
    "CORS_ALLOWED_ORIGINS": "https://shop.example.com",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_DEFAULT_SENDER": "Nexus <no-reply@example.com>",
}


GENERATED = {}  # one value per generated key, as Render keeps them


def blueprint_environ(database_url: str, service: dict = WEB) -> dict[str, str]:
    """A service's environment as Render would build it from the Blueprint (its groups' values
    first, then its own)."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    for var in service["envVars"]:
        if "fromGroup" in var:
            group = GROUPS[var["fromGroup"]]
            environ.update({var["key"]: _value(var, group["name"], database_url) for var in group["envVars"]})
        else:
            environ[var["key"]] = _value(var, service["name"], database_url)
    return environ


def _value(var: dict, owner: str, database_url: str) -> str:
    """What Render sets `var` of a service or group named `owner` to."""
    key, linked = var["key"], var.get("fromService", {})
    if "value" in var:
        return str(var["value"])
    if var.get("generateValue"):
        return GENERATED.setdefault((owner, key), secrets.token_urlsafe(32))
    if "fromDatabase" in var:
        return database_url
    if "envVarKey" in linked:
        return blueprint_environ(database_url, SERVICES[linked["name"]])[linked["envVarKey"]]
    if linked.get("type") == "keyvalue":
        return "redis://127.0.0.1:6379/15"
    return DASHBOARD_VALUES.get(key, "set-in-the-dashboard")  # sync: false


def run_blueprint_command(
    service: dict, command: str, database_url: str, *, stripe: str | None = None
) -> subprocess.CompletedProcess:
    """Run one of the Blueprint's commands for `service` as Render would, with this venv's tools;
    `stripe` stands in for Stripe's address (localstripe), nothing else is added."""
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).parent / argv[0])
    environ = {**blueprint_environ(database_url, service), **({"STRIPE_API_BASE": stripe} if stripe else {})}
    return subprocess.run(argv, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def test_the_blueprint_has_what_render_requires():
    for service in BLUEPRINT["services"]:
        assert service.get("type") and service.get("name"), service
        if service["type"] in ("web", "worker", "pserv", "cron"):
            assert service.get("runtime") == "python", service["name"]
            assert service.get("buildCommand") and service.get("startCommand"), service["name"]
        if service["type"] == "keyvalue":
            assert "ipAllowList" in service, service["name"]
    for database in BLUEPRINT["databases"]:
        assert database.get("name")
    names = {database["name"] for database in BLUEPRINT["databases"]} | set(SERVICES)
    for service in (WEB, WORKER, *CRONS.values()):
        for var in service["envVars"]:
            linked = var.get("fromDatabase") or var.get("fromService")
            assert linked is None or linked["name"] in names, f"{var.get('key')} points at an unknown resource"
            group = var.get("fromGroup")
            assert group is None or group in GROUPS, f"{service['name']} takes an unknown group {group}"
    for group in GROUPS.values():  # a group holds values: links to resources belong to each service
        assert all({"value", "generateValue", "sync"} & set(var) for var in group["envVars"]), group["name"]


def test_gunicorn_runs_threads_within_time_limits_past_every_limit_of_the_app(monkeypatch, tmp_path):
    environ = blueprint_environ("postgresql://nexus@127.0.0.1:5432/nexus")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    # What reading the file does to this process, undone after the test: it names the metrics
    # directory and has tracing wait for a fork.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setitem(observability.TRACING, "after_fork", False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    settings = load_settings(environ)

    assert (conf["worker_class"], conf["workers"], conf["threads"]) == ("gthread", 2, int(environ["WEB_THREADS"]))
    # a process takes a connection only with a thread free for it, so the other takes the rest
    assert (conf["worker_connections"], conf["keepalive"]) == (conf["threads"], 0)
    slowest = gateway.REQUEST_WORST_CASE_SECONDS + settings["DATABASE_STATEMENT_TIMEOUT_MS"] / 1000
    assert conf["timeout"] > slowest > settings["MAIL_TIMEOUT"]
    assert conf["graceful_timeout"] < WEB["maxShutdownDelaySeconds"] <= 300  # Render's maximum
    for options in (settings["SQLALCHEMY_ENGINE_OPTIONS"], settings["SQLALCHEMY_BINDS"]["reads"]):
        assert options["pool_size"] == conf["threads"]


def test_the_health_check_path_is_a_route_of_the_app(client):
    assert client.get(WEB["healthCheckPath"]).status_code == 200


def test_the_start_command_serves_the_health_path_with_the_blueprint_environment():
    """gunicorn builds the app before serving, so this also proves the Blueprint provides every
    setting a production app refuses to start without."""
    port = free_port()
    environ = {**blueprint_environ("postgresql://nexus@127.0.0.1:5432/nexus"), "PORT": str(port)}
    command = shlex.split(WEB["startCommand"])
    command[0] = str(Path(sys.executable).parent / command[0])  # the gunicorn of this venv
    server = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.monotonic() + 30
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{WEB['healthCheckPath']}", timeout=2) as answer:
                    body = (answer.status, json.loads(answer.read()))
            except OSError:
                time.sleep(0.2)
        assert body == (200, {"status": "ok"}), server.stdout.read1().decode() if server.poll() is not None else body
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.postgres
def test_the_pre_deploy_command_migrates_an_empty_database(database_url, tmp_path):
    url = make_url(database_url)
    scratch = f"{url.database}_predeploy"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        scratch_url = url.set(database=scratch).render_as_string(hide_password=False)
        upgrade = run_blueprint_command(WEB, WEB["preDeployCommand"], scratch_url)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        check = run_blueprint_command(WEB, "flask --app wsgi db check", scratch_url)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        server.dispose()


def test_the_cron_jobs_run_on_schedule():
    assert CRON["schedule"] == "*/5 * * * *"
    assert RECONCILE["schedule"] == "*/10 * * * *"
    assert PRUNE["name"] == "nexus-prune-tokens"
    assert PRUNE["schedule"] == "17 3 * * *"  # daily
    assert (PAYOUTS["name"], PAYOUTS["schedule"]) == ("nexus-payouts-reconcile", "23 * * * *")  # hourly


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("cron", "says"),
    [
        (CRON, "expired 0 orders unpaid for over 30 minutes"),
        (RECONCILE, "checked 0 payments"),
        (PRUNE, "pruned 0 revoked tokens"),
        (PAYOUTS, "checked 0 transfers due"),
    ],
    ids=["expire", "reconcile", "prune", "payouts"],
)
def test_the_cron_jobs_run_with_their_blueprint_environment(database_url, cron, says):
    result = run_blueprint_command(cron, cron["startCommand"], database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert says in result.stdout


@pytest.mark.postgres
def test_the_prune_cron_with_its_blueprint_environment_deletes_only_expired_revoked_tokens(
    database_url, client, sign_in, session
):
    ada = sign_in("ada@example.com")
    client.post("/api/v1/auth/logout", headers=ada.headers, json={"refresh_token": ada.refresh_token})
    session.execute(
        update(RevokedToken)
        .where(RevokedToken.token_type == "access")
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )

    result = run_blueprint_command(PRUNE, PRUNE["startCommand"], database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pruned 1 revoked tokens past their expiry" in result.stdout
    assert session.scalars(select(RevokedToken.token_type)).all() == ["refresh"]


def paying_order(client, buyer, order: dict, session, *, quiet_for_minutes: int) -> dict:
    """The order with its payment started (an open intent at localstripe), both as if made
    `quiet_for_minutes` ago; the payment."""
    payment = client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer.headers).get_json()["payment"]
    then = utcnow() - timedelta(minutes=quiet_for_minutes)
    session.execute(update(Order).where(Order.id == order["id"]).values(created_at=then))
    session.execute(update(Payment).where(Payment.id == payment["id"]).values(updated_at=then))
    return payment


@pytest.mark.postgres
def test_the_expire_cron_with_its_blueprint_environment_expires_an_order_and_cancels_its_intent(
    database_url, localstripe, client, buyer, order, session
):
    payment = paying_order(client, buyer, order, session, quiet_for_minutes=31)

    result = run_blueprint_command(CRON, CRON["startCommand"], database_url, stripe=localstripe)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "expired 1 orders" in result.stdout
    assert session.scalar(select(Order.status).where(Order.id == order["id"])) == "expired"
    assert intent_at_stripe(localstripe, payment["provider_payment_id"])["status"] == "canceled"


@pytest.mark.postgres
def test_the_reconcile_cron_with_its_blueprint_environment_settles_a_payment_whose_webhook_was_lost(
    database_url, localstripe, client, buyer, order, session
):
    lost = DownWebhook()
    register_webhook(localstripe, lost.url)
    try:
        payment = paying_order(client, buyer, order, session, quiet_for_minutes=6)
        pay_at_stripe(localstripe, payment["provider_payment_id"])
        eventually(lambda: lost.received("payment_intent.succeeded", payment["provider_payment_id"]))

        result = run_blueprint_command(RECONCILE, RECONCILE["startCommand"], database_url, stripe=localstripe)
    finally:
        lost.close()

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"payment {payment['id']}: payment_intent.succeeded applied" in result.stdout
    assert session.scalar(select(Order.status).where(Order.id == order["id"])) == "paid"


@pytest.mark.postgres
@pytest.mark.parametrize("cron", [CRON, RECONCILE], ids=["expire", "reconcile"])
def test_a_cron_that_cannot_reach_stripe_logs_each_item_goes_on_and_exits_1(
    database_url, cron, client, buyer, order, session
):
    paying_order(client, buyer, order, session, quiet_for_minutes=31)

    result = run_blueprint_command(cron, cron["startCommand"], database_url, stripe=f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 could not be" in result.stdout
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(entry["level"] == "ERROR" and "Stripe could not be reached" in entry["message"] for entry in logged)


@pytest.mark.postgres
def test_the_payouts_cron_with_its_blueprint_environment_makes_a_transfer_whose_account_news_was_lost(
    database_url, stripe_connect, client, owner, buyer, vase, session
):
    account_id = opened_account(client, owner, vase.store_id, session)
    order = place_order(client, buyer, vase)
    session.execute(update(Order).where(Order.id == order["id"]).values(status="shipped"))  # paid, and on its way
    moved = client.post(f"/api/v1/orders/{order['id']}/status", headers=owner.headers, json={"status": "delivered"})
    assert moved.status_code == 200, moved.get_json()
    stripe_connect.finish_onboarding(account_id)  # its account.updated never came

    result = run_blueprint_command(PAYOUTS, PAYOUTS["startCommand"], database_url, stripe=stripe_connect.url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"account {account_id}: applied" in result.stdout
    assert [t["amount"] for t in stripe_connect.transfers_to(account_id)] == [9000]
