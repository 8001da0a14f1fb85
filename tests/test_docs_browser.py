"""/api/docs works in a real browser: headless Chromium, offline, under the app's own Content-Security-Policy.

Chromium (Debian's `chromium` package; `.ci/run` installs it) loads the page from the live server with
`--dump-dom` and no way out of the machine: every host name but the docs one resolves to nothing. A
test passes only if Swagger UI rendered every operation of the OpenAPI document, the browser logged
nothing to its console (a script or style blocked by the CSP is logged there, and so is an uncaught
error), every request the page made to the app was answered 200, and nothing on the page comes from
another origin.
"""

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask, request, request_finished

CHROMIUM = os.environ.get("CHROMIUM", "chromium")
DOCS_HOST = "nexus-docs.test"  # not localhost: Swagger UI treats loopback hosts specially
VIRTUAL_TIME_BUDGET_MS = 10_000  # page time, fast-forwarded while the page waits on nothing
TIMEOUT_SECONDS = 60  # wall-clock bound on one browser run
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
# A line Chromium writes to stderr for each console message: `[...:INFO:CONSOLE:12] "message", source: url (12)`
# (older versions wrote `CONSOLE(12)]`).
CONSOLE_LINE = re.compile(r":CONSOLE(?::\d+|\(\d+\))\] (.*)")
OPERATION = re.compile(
    r'opblock-summary-method">(\w+)</span>\s*<span class="opblock-summary-path[^"]*" data-path="([^"]+)"'
)
LOADED_URL = re.compile(r'<(?:script|img|iframe|frame|embed|source|audio|video|track|input)\b[^>]*?\ssrc="([^"]*)"')
LINKED_URL = re.compile(r'<link\b[^>]*?\shref="([^"]*)"')


@dataclass
class BrowserRun:
    dom: str  # the DOM after the page's scripts ran
    console: list[str]  # every console message, CSP violations and uncaught errors included


def chromium() -> str:
    """The browser's path. Without it the test fails in CI (CI=true: a skip would hide that the docs
    went untested) and is skipped elsewhere, saying how to install it, so `make test` on a machine
    without a browser stays green."""
    path = shutil.which(CHROMIUM)
    if path is None:
        missing = (
            f"headless Chromium ({CHROMIUM!r}) is not installed: `apt-get install -y chromium` "
            "(.ci/run installs it), or set CHROMIUM to a Chromium binary"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return path


def load_in_chromium(url: str, profile: Path) -> BrowserRun:
    """Load `url` in headless Chromium with a throwaway profile and no network but the local server."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-proxy-server",
        f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1, MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        url,
    ]
    # Its own session, so a browser that hangs goes down with its renderer and GPU processes.
    browser = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        dom, log = browser.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.communicate()
        pytest.fail(f"Chromium did not finish loading {url} within {TIMEOUT_SECONDS}s", pytrace=False)
    assert browser.returncode == 0, f"Chromium exited with {browser.returncode}:\n{log}"
    return BrowserRun(dom=dom, console=CONSOLE_LINE.findall(log))


@contextmanager
def requests_answered(app: Flask) -> Iterator[list[tuple[str, int]]]:
    """Every (path, status) the app answers meanwhile: the live server runs in this process."""
    answered: list[tuple[str, int]] = []

    def record(sender: Flask, response, **extra) -> None:
        answered.append((request.path, response.status_code))

    request_finished.connect(record, app)
    try:
        yield answered
    finally:
        request_finished.disconnect(record, app)


def test_the_console_of_the_browser_is_read(tmp_path):
    """The console check below is not vacuous: a CDN script blocked by a CSP is seen here."""
    page = (
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'self'\">"
        "<script src='https://cdn.example.com/lib.js'></script><p>canary</p>"
    )

    run = load_in_chromium(f"data:text/html,{quote(page)}", tmp_path / "profile")

    assert "canary" in run.dom
    assert any(
        "https://cdn.example.com/lib.js" in line and "Content Security Policy" in line for line in run.console
    ), f"Chromium's console messages were not found in its log (has the log format changed?): {run.console}"


def test_swagger_ui_renders_every_operation_offline_under_the_csp(app, client, live_server, tmp_path):
    spec = client.get("/api/openapi.json").get_json()
    documented = {
        (method.upper(), path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS
    }
    page = client.get("/api/docs").get_data(as_text=True)
    assets = set(re.findall(r'(?:src|href)="([^"]+)"', page))
    port = urlsplit(live_server).port

    with requests_answered(app) as answered:
        run = load_in_chromium(f"http://{DOCS_HOST}:{port}/api/docs", tmp_path / "profile")

    # Nothing was blocked or broke: a CSP violation or an uncaught error is a console message.
    assert run.console == [], "the browser's console:\n" + "\n".join(run.console)

    # No script, stylesheet, image or frame of the rendered page is from another origin.
    for url in LOADED_URL.findall(run.dom) + LINKED_URL.findall(run.dom):
        origin = urlsplit(url)
        assert url.startswith("data:") or not (origin.scheme or origin.netloc), f"{url} is not served by the app"

    # The page, its stylesheet and scripts, and the document came from the app, all answered 200.
    # (/favicon.ico is the browser's own request, not the page's.)
    fetched = {path: status for path, status in answered if path != "/favicon.ico"}
    assert {"/api/docs", "/api/openapi.json", *assets} <= fetched.keys(), f"the browser fetched only {fetched}"
    assert all(status == 200 for status in fetched.values()), f"the browser was answered {fetched}"

    # Swagger UI ran: the API's title and every documented operation are on the page.
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", run.dom))[:1000]
    title = spec["info"]["title"]
    heading = re.search(rf'class="title">{re.escape(title)}\b', run.dom)
    assert heading, f"Swagger UI did not render: no {title!r} heading; the page's text: {text}"
    rendered = set(OPERATION.findall(run.dom))
    examples = {("GET", "/api/v1/products"), ("POST", "/api/v1/orders"), ("GET", "/api/v1/orders")}
    assert examples <= rendered, f"Swagger UI rendered {len(rendered)} operations; the page's text: {text}"
    assert rendered == documented, f"missing: {documented - rendered}, unexpected: {rendered - documented}"
