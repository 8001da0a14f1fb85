"""Liveness touches nothing; readiness checks the database and never hangs."""

import socket
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from nexus import create_app, database
from nexus.config import VERSION
from nexus.extensions import db
from tests.conftest import app_environ, free_port


class Outage:
    """A TCP door to the real Postgres that the test can shut and open again, as an outage
    would: shut, it refuses new connections and cuts the open ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open_sockets: list[socket.socket] = []

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def shut(self) -> None:
        self.listener.close()
        for held in self.open_sockets:
            held.close()
        self.open_sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client = listener.accept()[0]
            except OSError:  # shut
                return
            server = socket.create_connection(self.upstream)
            self.open_sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()


def test_liveness_is_ok(client):
    response = client.get("/health")

    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readiness_reports_the_database_and_version(client):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok"}, "version": VERSION}


def test_database_refusing_connections_makes_readiness_503_and_leaves_liveness_alone():
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{free_port()}/nexus"))
    client = app.test_client()

    ready = client.get("/api/v1/health")

    assert ready.status_code == 503
    assert ready.get_json()["status"] == "error"
    assert ready.get_json()["checks"] == {"database": "error"}
    assert client.get("/health").status_code == 200


def test_a_hung_database_gets_a_503_within_three_seconds(silent_server):
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{silent_server.port}/nexus"))

    started = time.monotonic()
    response = app.test_client().get("/api/v1/health")

    assert response.status_code == 503
    assert time.monotonic() - started < 3.0


def test_other_endpoints_answer_a_json_503_when_the_database_is_down():
    app = create_app(app_environ(f"postgresql://postgres@127.0.0.1:{free_port()}/nexus"))

    response = app.test_client().post("/api/v1/auth/otp/request", json={"email": "ada@example.com"})

    assert response.status_code == 503
    assert response.get_json()["message"] == "The database is unavailable; try again shortly."


@pytest.mark.postgres
def test_when_the_database_comes_back_the_app_recovers_without_a_restart(database_url):
    url = make_url(database_url)
    outage = Outage((url.host, url.port or 5432))
    outage.open()
    try:
        app = create_app(app_environ(url.set(host="127.0.0.1", port=outage.port).render_as_string(hide_password=False)))
        client = app.test_client()
        assert client.get("/api/v1/health").status_code == 200
        assert client.get("/api/v1/products").status_code == 200

        outage.shut()

        assert client.get("/api/v1/health").status_code == 503
        down = client.get("/api/v1/products")
        assert (down.status_code, down.get_json()["message"]) == (
            503,
            "The database is unavailable; try again shortly.",
        )

        outage.open()

        assert client.get("/api/v1/health").status_code == 200
        assert client.get("/api/v1/products").status_code == 200
    finally:
        outage.shut()


@pytest.fixture
def cut_connections(app, session):
    """Cuts every connection of the app to the database, as a database restart would; the app's
    pools are emptied afterwards so later tests start clean."""

    def cut() -> None:
        session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'nexus'"
            )
        )

    yield cut
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.postgres
def test_connections_cut_while_idle_are_replaced_before_a_request_uses_them(client, cut_connections, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert client.get("/api/v1/products").status_code == 200
    assert client.post("/api/v1/auth/otp/request", json={"email": "a@example.com"}).status_code == 202

    cut_connections()

    assert client.get("/api/v1/products").status_code == 200
    assert client.post("/api/v1/auth/otp/request", json={"email": "b@example.com"}).status_code == 202


@pytest.mark.postgres
def test_a_connection_cut_while_in_use_fails_at_most_one_request_and_the_app_recovers(client, cut_connections):
    assert client.get("/api/v1/products").status_code == 200

    cut_connections()

    answers = [client.get("/api/v1/products") for _ in range(3)]
    assert [a.status_code for a in answers].count(503) <= 1
    assert answers[-1].status_code == 200
    for answer in answers:
        if answer.status_code == 503:
            assert answer.get_json()["message"] == "The database is unavailable; try again shortly."
