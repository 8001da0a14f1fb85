"""Code-sending requests are limited per email and per client IP, the catalog's lists per client IP
(429 + Retry-After)."""

import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from flask.testing import FlaskClient
from flask_limiter import ApplicationLimit
from limits.storage import storage_from_string

from nexus import create_app
from nexus.extensions import MemoryStorage, limiter
from tests.conftest import app_environ, eventually, free_port, within
from tests.factories import ProductFactory, StoreFactory

REGISTER = "/api/v1/auth/register"
REQUEST = "/api/v1/auth/otp/request"


def from_ip(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def assert_limited(response) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert (body["code"], body["status"]) == (429, "Too Many Requests")


def test_register_and_otp_request_share_the_per_email_budget(client, outbox):
    for sent, path in enumerate((REGISTER, REQUEST, REGISTER, REQUEST, REGISTER), start=1):
        assert client.post(path, json={"email": "ada@example.com"}).status_code == 202
        assert len(outbox) == sent  # each job done before the next request (the first creates the account)

    assert_limited(client.post(REQUEST, json={"email": "ada@example.com"}))
    assert_limited(client.post(REGISTER, json={"email": "ada@example.com"}))
    assert len(outbox) == 5


def test_the_per_email_budget_ignores_case_and_spares_other_addresses(client):
    for _ in range(5):
        client.post(REGISTER, json={"email": "ada@example.com"})

    assert_limited(client.post(REGISTER, json={"email": "ADA@Example.com"}))
    assert client.post(REGISTER, json={"email": "bob@example.com"}).status_code == 202


def test_the_per_email_budget_counts_unknown_addresses_too(client):
    for _ in range(5):
        assert client.post(REQUEST, json={"email": "nobody@example.com"}).status_code == 202

    assert_limited(client.post(REQUEST, json={"email": "nobody@example.com"}))


def test_the_per_ip_budget_spans_addresses_and_spares_other_ips(client):
    for n in range(30):
        assert (
            client.post(REGISTER, json={"email": f"user{n}@example.com"}, **from_ip("203.0.113.7")).status_code == 202
        )

    assert_limited(client.post(REQUEST, json={"email": "fresh@example.com"}, **from_ip("203.0.113.7")))
    assert client.post(REQUEST, json={"email": "fresh@example.com"}, **from_ip("198.51.100.1")).status_code == 202


def test_the_limits_come_from_the_environment(database_url):
    app = create_app(
        app_environ(database_url, OTP_RATE_LIMIT_PER_EMAIL="2 per hour", OTP_RATE_LIMIT_PER_IP="3 per hour")
    )
    client = app.test_client()

    assert client.post(REQUEST, json={"email": "a@example.com"}).status_code == 202
    assert client.post(REQUEST, json={"email": "a@example.com"}).status_code == 202
    assert_limited(client.post(REQUEST, json={"email": "a@example.com"}))
    assert_limited(client.post(REQUEST, json={"email": "b@example.com"}))


def test_only_a_429_of_a_rate_limited_route_speaks_of_its_budget(client):
    """No Retry-After and no X-RateLimit-* on an answer that is not a refusal: Flask-Limiter's
    headers would read each window back from the storage after every hit."""
    answered = client.post(REQUEST, json={"email": "ada@example.com"})

    assert answered.status_code == 202
    assert [name for name, _ in answered.headers if name.lower().startswith(("x-ratelimit", "retry-after"))] == []


@pytest.fixture
def own_redis(tmp_path) -> Iterator[redis.Redis]:
    """A Redis of this test's own on a free loopback port, so that it counts only our commands."""
    port = free_port()
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def answers() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        eventually(answers)
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def limited_on(database_url) -> Iterator[Callable[..., FlaskClient]]:
    """Clients of apps whose rate limits count in the storage at a given URL (with `settings`)."""

    def client(storage: str, **settings: str) -> FlaskClient:
        return create_app(app_environ(database_url, RATELIMIT_STORAGE_URI=storage, **settings)).test_client()

    yield client
    # Flask-Limiter's extension is one per process and takes the storage of the last app made:
    # give it back a memory storage before the test's Redis goes.
    create_app(app_environ(database_url))


def commands_by_name(server: redis.Redis) -> Counter:
    """What the server has run, by command (those a script runs counted too), INFO left out."""
    stats = server.info("commandstats")
    return Counter(
        {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items() if name != "cmdstat_info"}
    )


def test_a_catalog_page_costs_its_rate_limit_one_redis_round_trip(limited_on, own_redis, session):
    """The hit, one script that counts and sets the window's expiry; no reading back of the
    window for headers (Flask-Limiter's X-RateLimit-* would add a GET and a TTL per page)."""
    StoreFactory()
    client = limited_on(f"redis://127.0.0.1:{own_redis.connection_pool.connection_kwargs['port']}/0")
    assert client.get("/api/v1/products").status_code == 200  # connects, loads the script

    before = commands_by_name(own_redis)
    for _ in range(5):
        assert client.get("/api/v1/products").status_code == 200
    ran = commands_by_name(own_redis) - before

    assert ran == Counter({"evalsha": 5, "incrby": 5})  # the script, and the INCRBY inside it


CATALOG_LISTS = ("/api/v1/products", "/api/v1/stores", "/api/v1/stores/{store}/products")


def test_the_catalog_lists_share_a_per_ip_budget_from_the_environment(database_url, session):
    store = StoreFactory()
    client = create_app(app_environ(database_url, CATALOG_RATE_LIMIT_PER_IP="3 per minute")).test_client()

    for url in CATALOG_LISTS:
        assert client.get(url.format(store=store.id), **from_ip("203.0.113.7")).status_code == 200
    for url in CATALOG_LISTS:
        assert_limited(client.get(url.format(store=store.id), **from_ip("203.0.113.7")))


def test_a_catalog_429_spares_other_ips_and_single_products(database_url, session):
    product = ProductFactory()
    client = create_app(app_environ(database_url, CATALOG_RATE_LIMIT_PER_IP="1 per minute")).test_client()
    assert client.get("/api/v1/products", **from_ip("203.0.113.7")).status_code == 200
    assert_limited(client.get("/api/v1/products", **from_ip("203.0.113.7")))

    assert client.get("/api/v1/products", **from_ip("198.51.100.1")).status_code == 200
    assert client.get(f"/api/v1/products/{product.id}", **from_ip("203.0.113.7")).status_code == 200


def test_a_429_says_in_words_when_to_try_again(client):
    for _ in range(5):
        client.post(REGISTER, json={"email": "ada@example.com"})

    response = client.post(REGISTER, json={"email": "ada@example.com"})

    assert_limited(response)
    message = response.get_json()["message"]
    assert message.startswith("Too many requests: at most 5 per hour; try again in ")
    found = re.search(r"; try again in (\d+) (minute|minutes|second|seconds)\.$", message)
    assert found, message
    seconds = int(found[1]) * (60 if found[2].startswith("minute") else 1)
    assert abs(seconds - int(response.headers["Retry-After"])) <= 60


@pytest.mark.parametrize("redis_is", ["hung", "gone"])
def test_a_hung_or_gone_rate_limit_redis_neither_holds_nor_fails_the_catalog(
    limited_on, silent_server, session, redis_is, caplog
):
    """Each process counts in memory while the storage is away (warned once in the log): the
    budget still holds, and no answer waits more than the storage's short time limit."""
    StoreFactory()
    storage = f"redis://127.0.0.1:{silent_server.port if redis_is == 'hung' else free_port()}/0"
    client = limited_on(storage, CATALOG_RATE_LIMIT_PER_IP="2 per minute")

    answers = [within(2.5, lambda: client.get("/api/v1/products")) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text


def test_the_memory_storage_starts_no_thread_per_hit_and_forgets_counters_past_their_window(monkeypatch):
    """`memory://` counts in line: limits' own storage starts a thread 10 ms after a hit, and
    another after that one ends (a tenth of a catalog page's CPU under load)."""
    storage = storage_from_string("memory://")
    assert isinstance(storage, MemoryStorage)
    started = storage.timer  # the one limits' constructor starts, once
    started.join()

    for hit in range(200):
        storage.incr(f"ip-{hit % 10}", expiry=60)
        time.sleep(0.0005)  # limits' storage would start a thread now and then

    assert storage.timer is started
    assert storage.get("ip-3") == 20
    storage.incr("gone", expiry=0.01)
    time.sleep(0.02)
    assert storage.get("gone") == 0  # past its window, swept or not
    storage.incr("gone-too", expiry=0.01)
    time.sleep(0.02)
    monkeypatch.setattr(MemoryStorage, "SWEEP_SECONDS", 0.0)
    storage.incr("ip-new", expiry=60)
    assert "gone-too" not in storage.storage and storage.get("ip-3") == 20


def test_sweeping_while_other_threads_count_raises_nothing(monkeypatch):
    """The sweep runs in the request that triggers it: a counter that another thread drops
    (read past its window) or starts meanwhile must not fail that request."""
    monkeypatch.setattr(MemoryStorage, "SWEEP_SECONDS", 0.0)  # every hit sweeps
    storage = storage_from_string("memory://")
    failures = []

    def count(worker: int) -> None:
        try:
            for hit in range(3000):
                key = f"ip-{worker}-{hit % 50}"
                storage.incr(key, expiry=0.001)
                storage.get(key)
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=count, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []


def test_an_application_wide_limit_stops_the_app_at_start_instead_of_being_ignored(database_url, monkeypatch):
    """Limits are checked in their views only (nexus.extensions.init_limiter): one that only
    Flask-Limiter's before-request pass would check must not pass silently."""
    wide = ApplicationLimit("1000 per second").bind(limiter)
    monkeypatch.setattr(limiter.limit_manager, "_application_limits", [wide])

    with pytest.raises(RuntimeError, match="per view"):
        create_app(app_environ(database_url))
