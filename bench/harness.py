"""What every benchmark of bench/ shares, so that each script holds only what it measures.

- the command line: `parser()` adds --harness and --database-url, `database_url()` resolves
  them (the shared harness's Postgres unless a URL is given);
- the app in this process, for preparing data and checking it afterwards (`app_for`);
- the project under gunicorn, started as the shared harness runs it (`serve`, `stop`), or with
  gunicorn.conf.py's gthread workers as deployed (`serve(..., threads=4)`); the environment it
  runs in, for other processes of the project (`environ`); all with the per-buyer order limits
  and the catalog's per-IP limit raised (`RAISED_LIMITS`);
- wrk loading a list of raw HTTP requests, one Lua script for all (`raw`, `wrk`, `result`);
- Stripe webhook signing with the secret the served project is given (`signed`, `STRIPE`);
- the shipping address bench orders are placed with (`SHIPPING_ADDRESS`, as the API answers it).

Run the benchmarks as modules from the project root (`python -m bench.orders`), as
`make bench` does, so that `nexus` and `bench` import without touching `sys.path`.
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

from flask import Flask

from nexus import create_app

PROJECT = Path(__file__).resolve().parent.parent
# --threads 1: gunicorn.conf.py (read from the project directory) sets WEB_THREADS threads, which
# would turn the sync workers the shared harness runs into gthread ones.
GUNICORN = ["--workers", "2", "--worker-class", "sync", "--threads", "1", "--backlog", "2048", "--timeout", "30"]
GUNICORN += ["--graceful-timeout", "10", "--log-level", "warning", "--no-control-socket"]
# As deployed: gunicorn.conf.py's gthread workers, timeouts and no keep-alive; the processes and
# threads come from WEB_CONCURRENCY and WEB_THREADS (serve's `threads`).
DEPLOYED = ["--backlog", "2048", "--log-level", "warning", "--no-control-socket"]
WEBHOOK_SECRET = "whsec_nexus_bench"
STRIPE = {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}  # serve(..., env=STRIPE) for `signed` events to verify
# A few bench buyers place thousands of orders, and wrk reads the catalog from one IP thousands of
# times a second: the limits are tested, not benchmarked. They still count every request, so
# their bookkeeping is in the numbers.
# Every field filled in, as a buyer's order carries it (and a report row, an email, shows it).
SHIPPING_ADDRESS = {
    "name": "Bench Buyer",
    "line1": "Marina Walk 12",
    "line2": "Apartment 804",
    "city": "Dubai",
    "region": "Dubai",
    "postal_code": "00000",
    "country": "AE",
    "phone": "+971 50 123 4567",
}
RAISED_LIMITS = {
    "ORDER_MAX_OPEN_PER_BUYER": "1000000000",
    "ORDER_RATE_LIMIT_PER_USER": "1000000000 per hour",
    "CATALOG_RATE_LIMIT_PER_IP": "1000000000 per minute",
}


def parser(doc: str) -> argparse.ArgumentParser:
    """A parser showing the script's docstring, with the two options that say which database."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness = PROJECT.parent / "shared/bench"
    parser.add_argument("--harness", type=Path, default=harness, metavar="DIR", help=f"the shared harness ({harness})")
    parser.add_argument("--database-url", metavar="URL", help="a seeded Postgres (default: the harness's, `pg.sh url`)")
    return parser


def database_url(args: argparse.Namespace) -> str:
    """--database-url, else the URL of the Postgres the harness keeps (`pg.sh url`)."""
    if args.database_url:
        return args.database_url
    pg = subprocess.run([str(args.harness / "pg.sh"), "url"], capture_output=True, text=True, check=True)
    return pg.stdout.strip()


def app_for(database_url: str) -> Flask:
    """The project's app on `database_url`, to prepare and check data in this process."""
    return create_app({**os.environ, **RAISED_LIMITS, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})


def environ(database_url: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `serve` runs the project in, with `env` added: for other processes of it
    (a job worker) to run in the same."""
    return {**os.environ, **RAISED_LIMITS, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", **(env or {})}


def serve(port: int, database_url: str, env: dict[str, str] | None = None, *, threads: int = 1) -> subprocess.Popen:
    """Start gunicorn on 127.0.0.1:`port` with `env` added to its settings; wait until /health answers.

    threads=1: 2 sync workers, as the shared harness runs the project; more: as deployed, 2
    gthread processes (WEB_CONCURRENCY) of `threads` threads (WEB_THREADS), gunicorn.conf.py's.
    Its output goes to a log file whose tail is shown if it stops or does not answer in 30 s.
    """
    options, settings = GUNICORN, environ(database_url, env)
    if threads > 1:
        options = DEPLOYED
        settings |= {"WEB_CONCURRENCY": "2", "WEB_THREADS": str(threads)}
    command = [str(PROJECT / ".venv/bin/gunicorn"), *options, "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    with tempfile.NamedTemporaryFile("w", prefix=f"nexus-bench-{port}-", suffix=".log", delete=False) as log:
        server = subprocess.Popen(command, cwd=PROJECT, env=settings, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(150):
        if server.poll() is not None:
            _failed(f"gunicorn exited ({server.returncode}) while starting", log.name)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    server.wait()
    _failed("the project did not answer /health in 30 s", log.name)


def _failed(what: str, log: str) -> NoReturn:
    tail = "".join(Path(log).read_text().splitlines(keepends=True)[-20:])
    sys.exit(f"bench: {what}; the end of {log}:\n{tail}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def raw(method: str, path: str, body: dict | bytes | None = None, headers: dict | None = None, *, port: int) -> str:
    """One HTTP/1.1 request as wrk sends it to 127.0.0.1:`port`; a dict body is sent as JSON."""
    payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if payload:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return "\r\n".join(lines) + "\r\n\r\n" + payload.decode()


# Cycles through the requests on every connection, counts answers by status across threads and
# ends with one RESULT line that `result` reads.
LUA = r"""
local requests = {%(requests)s}
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
n, counts = 0, {}
request = function()
  n = n %% #requests + 1
  return requests[n]
end
response = function(status)
  counts[status] = (counts[status] or 0) + 1
end
done = function(summary, latency)
  local totals, parts = {}, {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do totals[status] = (totals[status] or 0) + count end
  end
  for status, count in pairs(totals) do parts[#parts + 1] = status .. ":" .. count end
  io.write(string.format(
    "RESULT seconds=%%.2f p50_ms=%%.2f p90_ms=%%.2f p99_ms=%%.2f max_ms=%%.2f errors=%%d statuses=%%s\n",
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ",")))
end
"""


def wrk(requests: list[str], port: int, connections: int, seconds: int) -> subprocess.Popen:
    """Start wrk (1 thread) sending `requests` in turn to 127.0.0.1:`port`; read it with `result`."""
    script = Path(tempfile.mkdtemp()) / "requests.lua"
    # A JSON string literal is a valid Lua string literal here (the requests are ASCII).
    script.write_text(LUA % {"requests": ",\n".join(json.dumps(request) for request in requests)})
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    return subprocess.Popen([*command, f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen, seconds: int) -> dict:
    """The RESULT line of a wrk started for `seconds`: its fields, with `statuses` as {status: count}."""
    output = process.communicate(timeout=seconds + 60)[0]
    if process.returncode:
        sys.exit(f"bench: wrk failed ({process.returncode}):\n{output}")
    fields = dict(re.findall(r"(\w+)=([^\s]+)", output.splitlines()[-1]))
    fields["statuses"] = {
        int(s): int(c) for s, c in (pair.split(":") for pair in fields["statuses"].split(",") if pair)
    }
    return fields


def signed(event: dict) -> tuple[bytes, str]:
    """The event's body and its Stripe-Signature header, made now with WEBHOOK_SECRET.

    Stripe accepts a signature for 5 minutes: sign just before sending.
    """
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={signature}"
