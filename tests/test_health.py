"""Liveness touches nothing; readiness checks the database and never hangs."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from nexus import create_app
from nexus.config import VERSION
from tests.conftest import app_environ


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word, like a hung database."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in [*held, listener]:
        connection.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_liveness_is_ok(client):
    response = client.get("/health")

    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readiness_reports_the_database_and_version(client):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok"}, "version": VERSION}


def test_database_refusing_connections_makes_readiness_503_and_leaves_liveness_alone():
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{closed_port()}/nexus"))
    client = app.test_client()

    ready = client.get("/api/v1/health")

    assert ready.status_code == 503
    assert ready.get_json()["status"] == "error"
    assert ready.get_json()["checks"] == {"database": "error"}
    assert client.get("/health").status_code == 200


def test_a_hung_database_gets_a_503_within_three_seconds(silent_server):
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{silent_server}/nexus"))

    started = time.monotonic()
    response = app.test_client().get("/api/v1/health")

    assert response.status_code == 503
    assert time.monotonic() - started < 3.0


def test_other_endpoints_answer_a_json_503_when_the_database_is_down():
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{closed_port()}/nexus"))

    response = app.test_client().post("/api/v1/auth/otp/request", json={"email": "ada@example.com"})

    assert response.status_code == 503
    assert response.get_json()["message"] == "The database is unavailable; try again shortly."
