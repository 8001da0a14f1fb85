"""Instructions the CPU runs for one catalog page in the app's own process: a measure that does not
drift with the host's speed or with other load, as req/s does (on a shared 2-core host, from one
10 s window to the next, by 15% and more). valgrind's callgrind counts instructions, not time:
the same code and data give the same count to a fraction of a percent, so a change of 1% shows.

For each page (first; deep, the cursor 200 pages in) it runs `python -m bench.instructions --serve
PAGE` under `valgrind --tool=callgrind --instr-atstart=no`. That process builds the app as
`wsgi.py` does, in the environment of the shared harness's run (development defaults, metrics
on, the catalog's rate limit counted but raised), answers warm-up requests uncounted, then
--requests more through the WSGI callable (as gunicorn calls it; no HTTP server, no socket)
while callgrind counts. Postgres's own work is in another process and not counted.

Run by `make bench` on the database the harness kept (or --database-url, seeded by `demo seed`).

usage: python -m bench.instructions [--harness DIR] [--database-url URL] [--requests N]
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import harness

PAGES = ("first", "deep")
WARM_UP = 30
DEEP_PAGES = 200
# As `make bench` runs the shared harness: the catalog's budget raised, everything else its defaults.
CATALOG_LIMIT = {"CATALOG_RATE_LIMIT_PER_IP": harness.RAISED_LIMITS["CATALOG_RATE_LIMIT_PER_IP"]}


def _wait_for(path: Path, process: subprocess.Popen | None = None) -> None:
    while not path.exists():
        if process is not None and process.poll() is not None:
            sys.exit(f"the measured process ended early (exit {process.returncode}); see {path.parent}/valgrind.log")
        time.sleep(0.05)


def serve(page: str, requests: int, signals: Path) -> None:
    """The measured process: warm up, say `ready`, wait for `go`, answer `requests`, say `done`."""
    from werkzeug.test import EnvironBuilder

    from wsgi import app

    client = app.test_client()
    url = "/api/v1/products?limit=20"
    if page == "deep":
        cursor = None
        for _ in range(DEEP_PAGES):
            cursor = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()["next_cursor"]
        url += f"&cursor={cursor}"
    path, _, query = url.partition("?")
    environ = EnvironBuilder(path=path, query_string=query, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        assert status.startswith("200"), status

    def answer() -> None:
        body = app({**environ, "wsgi.input": io.BytesIO()}, start_response)
        b"".join(body)
        body.close()

    for _ in range(WARM_UP):
        answer()
    (signals / "ready").touch()
    _wait_for(signals / "go")
    for _ in range(requests):
        answer()
    (signals / "done").touch()
    _wait_for(signals / "exit")


def control(flag: str, process: subprocess.Popen) -> None:
    """Tell callgrind in `process` to start counting, start again from zero, or write its count."""
    subprocess.run([shutil.which("callgrind_control"), flag, str(process.pid)], check=True, capture_output=True)


def count(page: str, requests: int, database_url: str) -> int:
    """Instructions a request of `page`, counted by callgrind over `requests` requests."""
    signals = Path(tempfile.mkdtemp(prefix=f"nexus-instructions-{page}-"))
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={signals}/callgrind.out",
        sys.executable,
        "-m",
        "bench.instructions",
        "--serve",
        page,
        "--requests",
        str(requests),
        "--signals",
        str(signals),
    ]
    environ = {**os.environ, **CATALOG_LIMIT, "DATABASE_URL": database_url}
    with open(signals / "valgrind.log", "w") as log:
        process = subprocess.Popen(command, cwd=harness.PROJECT, env=environ, stdout=log, stderr=log)
    try:
        _wait_for(signals / "ready", process)
        control("--instr=on", process)
        control("--zero", process)
        (signals / "go").touch()
        _wait_for(signals / "done", process)
        control("--dump", process)
        (signals / "exit").touch()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    dumps = sorted(signals.glob("callgrind.out.*"))
    totals = [line for line in dumps[0].read_text().splitlines() if line.startswith(("summary:", "totals:"))]
    shutil.rmtree(signals)
    return int(totals[0].split()[1]) // requests


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--requests", type=int, default=100, help="requests counted per page (100)")
    parser.add_argument("--serve", choices=PAGES, help=argparse.SUPPRESS)
    parser.add_argument("--signals", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.requests, args.signals)
        return
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"{', '.join(missing)} not found: install valgrind (Debian: apt-get install valgrind)")
    database_url = harness.database_url(args)
    print(f"== instructions per catalog request, in-process (callgrind, {args.requests} requests a page)")
    for page in PAGES:
        print(f"{page:>5} page: {count(page, args.requests, database_url):>12,}", flush=True)


if __name__ == "__main__":
    main()
