"""The web service as Render runs it: the Blueprint's start command (gunicorn with
gunicorn.conf.py) with the Blueprint's environment, on the test database, over real HTTP.

Every line it writes is one JSON object, gunicorn's own included, down to a worker that times out;
and a Stripe that accepts connections and never answers costs the payments that wait on it their
own JSON 502, within the time the gateway documents, while the catalog keeps answering."""

import http.client
import json
import shlex
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import func, select

from nexus import create_app
from nexus.extensions import db
from nexus.payments import gateway
from nexus.payments.models import Payment
from nexus.users.models import User
from tests.conftest import app_environ, eventually, free_port
from tests.factories import ProductFactory, StoreFactory, shipping_address
from tests.test_deploy import ROOT, WEB, blueprint_environ

CATALOG_REQUESTS = 200


@dataclass
class Answer:
    status: int
    body: dict | None  # a JSON answer
    text: str
    seconds: float


@dataclass
class Served:
    """The start command, running; what it writes to stdout and to stderr goes to two files."""

    process: subprocess.Popen
    port: int
    stdout: Path
    stderr: Path

    def call(
        self, method: str, path: str, body: dict | None = None, *, headers: dict | None = None, timeout: float = 10
    ) -> Answer:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        sent = {"Content-Type": "application/json", **(headers or {})}
        payload = json.dumps(body or {}).encode() if method != "GET" else None
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return Answer(response.status, json.loads(raw) if is_json else None, raw.decode(), time.monotonic() - started)

    def lines(self) -> list[str]:
        return self.stdout.read_text().splitlines() + self.stderr.read_text().splitlines()

    def entries(self) -> list[dict]:
        """Every line written so far, each parsed as the JSON object it must be."""
        entries = []
        for line in self.lines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pytest.fail(f"a line that is not JSON: {line!r}", pytrace=False)
        return entries

    def stop(self) -> int:
        """SIGTERM, as Render stops a service; gunicorn's exit code."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def production_environ(database_url: str, **overrides: str) -> dict[str, str]:
    """The web service's Blueprint environment on the test database; its rate-limit keys are
    this test's own."""
    return {
        **blueprint_environ(database_url),
        "RATELIMIT_KEY_PREFIX": f"nexus-test-{uuid.uuid4().hex[:12]}",
        **overrides,
    }


def serve(environ: dict[str, str], logs: Path) -> Served:
    port = free_port()
    command = shlex.split(WEB["startCommand"])
    command[0] = str(Path(sys.executable).parent / command[0])  # the gunicorn of this venv
    stdout, stderr = logs / "stdout", logs / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, env={**environ, "PORT": str(port)}, stdout=out, stderr=err)
    served = Served(process, port, stdout, stderr)
    deadline = time.monotonic() + 30
    while True:
        try:
            if served.call("GET", WEB["healthCheckPath"], timeout=2).status == 200:
                return served
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            pytest.fail("the start command did not serve:\n" + "\n".join(served.lines()[-40:]), pytrace=False)
        time.sleep(0.1)


def bad_request_line(port: int) -> bytes:
    """What gunicorn itself answers a request line that is not HTTP."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return connection.recv(1024)


@pytest.mark.postgres
def test_every_line_the_start_command_writes_is_one_json_object(app, database_url, tmp_path):
    served = serve(production_environ(database_url), tmp_path)
    try:
        statuses = [
            served.call("GET", "/health").status,
            served.call("GET", "/api/v1/health").status,
            served.call("GET", "/api/v1/products").status,
            served.call("GET", "/api/v1/products/999999").status,
            served.call("POST", "/api/v1/orders", {"items": []}).status,
        ]
        refused = bad_request_line(served.port)
    finally:
        exit_code = served.stop()

    assert statuses == [200, 200, 200, 404, 401]
    assert refused.startswith(b"HTTP/1.1 400")
    assert exit_code == 0
    entries = served.entries()  # every line, or the test fails naming the first that is not JSON
    assert all(isinstance(entry, dict) and isinstance(entry["pid"], int) for entry in entries)
    messages = [entry["message"] for entry in entries]
    for said in ("Starting gunicorn", "Using worker: gthread", "Booting worker with pid", "Invalid request from ip"):
        assert any(said in message for message in messages), said
    assert any("Handling signal: term" in message for message in messages)
    assert any("Shutting down: Master" in message for message in messages)
    requests = [entry for entry in entries if entry["logger"] == "nexus.access"]
    assert [entry["status"] for entry in requests if entry["path"] != "/health"] == [200, 200, 404, 401]
    booted = [entry for entry in entries if "Booting worker" in entry["message"]]
    assert len(booted) == int(blueprint_environ("postgresql:///unused")["WEB_CONCURRENCY"])
    assert all(entry["worker_pid"] == entry["pid"] for entry in booted)  # each worker says it booted


@pytest.mark.postgres
def test_a_worker_that_times_out_says_so_in_one_json_line_naming_its_pid(
    database_url, client, owner, buyer, session, silent_server, tmp_path
):
    # A sync worker serves one request at a time and must report alive between them (gthread
    # workers report from their own loop while threads wait), so a payment start whose Stripe
    # never answers holds it past a 2 s timeout, and gunicorn kills it. `--worker-class sync`
    # alone must give sync workers (gunicorn would run gthread, WEB_THREADS being 4), as it
    # must for the shared benchmark, which serves every server so.
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    product = ProductFactory(store=store, price=1500, stock=1)
    body = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": shipping_address()}
    order = client.post("/api/v1/orders", headers=buyer.headers, json=body).get_json()["id"]
    environ = production_environ(
        database_url,
        STRIPE_API_BASE=silent_server.url,
        GUNICORN_CMD_ARGS="--worker-class sync --workers 1 --timeout 2",
    )
    bearer = {"Authorization": f"Bearer {access_token_for(environ, database_url, buyer.user['id'])}"}
    served = serve(environ, tmp_path)
    try:
        answer = served.call("POST", f"/api/v1/orders/{order}/payment", headers=bearer, timeout=30)
        eventually(lambda: sum("Booting worker" in line for line in served.lines()) == 2)  # its replacement
    finally:
        served.stop()

    # What the client gets from a killed worker is gunicorn's bare HTML page, not the app's JSON:
    # why every time limit of the app is smaller than gunicorn's (gunicorn.conf.py).
    assert (answer.status, answer.body) == (500, None)
    assert "<title>Internal Server Error</title>" in answer.text
    entries = served.entries()
    [timed_out] = [entry for entry in entries if "WORKER TIMEOUT" in entry["message"]]
    first_worker = next(entry["pid"] for entry in entries if "Booting worker" in entry["message"])
    assert timed_out["level"] == "CRITICAL"
    assert timed_out["worker_pid"] == first_worker
    assert timed_out["message"] == f"WORKER TIMEOUT (pid:{first_worker})"
    assert any(entry.get("worker_pid") == first_worker and "exit" in entry["message"] for entry in entries)


def access_token_for(environ: dict[str, str], database_url: str, user_id: int) -> str:
    """An access token the served app accepts: signed with its JWT_SECRET_KEY."""
    minting = create_app(app_environ(database_url, JWT_SECRET_KEY=environ["JWT_SECRET_KEY"]))
    with minting.app_context():
        token = create_access_token(identity=str(user_id))
        for engine in db.engines.values():
            engine.dispose()
    return token


@pytest.mark.postgres
def test_a_hung_stripe_answers_payments_a_json_502_in_time_and_the_catalog_keeps_answering(
    database_url, client, owner, buyer, session, silent_server, tmp_path
):
    store = StoreFactory(owner=session.get(User, owner.user["id"]), currency="usd")
    product = ProductFactory(store=store, price=1500, stock=10)
    line = {"items": [{"product_id": product.id, "quantity": 1}], "shipping_address": shipping_address()}
    orders = [client.post("/api/v1/orders", headers=buyer.headers, json=line).get_json()["id"] for _ in range(4)]
    environ = production_environ(database_url, STRIPE_API_BASE=silent_server.url)
    bearer = {"Authorization": f"Bearer {access_token_for(environ, database_url, buyer.user['id'])}"}
    served = serve(environ, tmp_path)
    try:
        with ThreadPoolExecutor(len(orders)) as pool:
            paying = [
                pool.submit(served.call, "POST", f"/api/v1/orders/{order}/payment", headers=bearer, timeout=60)
                for order in orders
            ]
            eventually(lambda: silent_server.accepted >= len(orders))  # all four wait on Stripe now
            catalog = [served.call("GET", "/api/v1/products?limit=20") for _ in range(CATALOG_REQUESTS)]
            still_waiting = sum(not payment.done() for payment in paying)
            payments = [payment.result() for payment in paying]
    finally:
        served.stop()

    latencies = [answer.seconds for answer in catalog]
    p99 = statistics.quantiles(latencies, n=100)[98]
    attempt = gateway.TIMEOUT_SECONDS - gateway.CONNECT_TIMEOUT_SECONDS  # a silent peer: connecting is instant
    print(  # the numbers, for the record (pytest -s)
        f"\npayments answered after {sorted(round(p.seconds, 2) for p in payments)} s "
        f"(budget {gateway.CALL_WORST_CASE_SECONDS} s); catalog p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms over {len(catalog)} requests"
    )
    assert still_waiting == len(orders)  # the catalog was served while every payment waited
    assert {answer.status for answer in catalog} == {200}
    assert p99 < 0.25
    for answer in payments:
        assert answer.status == 502
        assert answer.body == {
            "code": 502,
            "status": "Bad Gateway",
            "message": "Stripe could not be reached to start the payment; try again shortly.",
        }
        # every attempt waited out its timeout, and the retries stopped where the gateway says
        assert (gateway.MAX_NETWORK_RETRIES + 1) * attempt <= answer.seconds < gateway.CALL_WORST_CASE_SECONDS
    assert silent_server.accepted == len(orders) * (gateway.MAX_NETWORK_RETRIES + 1)
    assert session.scalar(select(func.count()).select_from(Payment)) == 0  # nothing was left half-started
