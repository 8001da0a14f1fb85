"""What the metrics and tracing hooks cost on the catalog's first page.

Run by `make bench` after `../shared/bench/run.sh --project . --keep-pg`, on the database it
seeded (or --database-url). Serves the project as the shared harness does (gunicorn, 2 sync
workers, gunicorn.conf.py: so metrics in multiprocess mode) three ways, in turn, for --rounds
rounds, and loads `GET /api/v1/products?limit=20` with the harness's `load.sh` (wrk, 16
connections):

- off:     METRICS_ENABLED=false, no OTEL_EXPORTER_OTLP_ENDPOINT: no hooks at all;
- metrics: the default: every request counted and timed (no exporter endpoint, so no tracing);
- traced:  metrics, and OpenTelemetry exporting to a local OTLP/HTTP receiver that this script
           runs (answers 200 and drops the spans): every request, statement and export paid for.

Prints, per way (medians over the rounds), req/s, p50 and p99, and the CPU time gunicorn's
workers spent per request (from /proc: what the hooks cost, and far less swayed than req/s by
other processes on a shared machine), each against `off`. Goal: metrics cost under 5%
(metrics/off >= 0.95 in req/s, <= 1.05 in CPU per request).

usage: python -m bench.observability [--harness DIR] [--database-url URL] [--seconds S] [--rounds R]
"""

import os
import statistics
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import harness
from bench.catalog_filters import load

PORT = 18006
PAGE = "/api/v1/products?limit=20"


class _Drop(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(server: subprocess.Popen) -> float:
    """User and system CPU time of the gunicorn master's children (its workers) so far."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    total = 0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    database_url = harness.database_url(args)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Drop)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    ways = {
        "off": {"METRICS_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        "metrics": {"METRICS_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        "traced": {
            "METRICS_ENABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
        },
    }
    measured: dict[str, list[dict[str, str]]] = {way: [] for way in ways}
    try:
        for _ in range(args.rounds):
            for way, env in ways.items():
                server = harness.serve(PORT, database_url, env)
                try:
                    url = f"http://127.0.0.1:{PORT}{PAGE}"
                    load(args.harness, url, 2, args.connections)  # warm-up
                    before = cpu_seconds(server)
                    run = load(args.harness, url, args.seconds, args.connections)
                    run["cpu_ms"] = 1000 * (cpu_seconds(server) - before) / max(1, int(run["requests"]))
                    measured[way].append(run)
                finally:
                    harness.stop(server)
    finally:
        receiver.shutdown()

    print(
        f"\n== observability hooks: GET {PAGE}, 2 sync gunicorn workers, {args.connections} connections, "
        f"{args.seconds} s x {args.rounds} rounds (medians)"
    )
    columns = ("req/s", "p50 ms", "p99 ms", "cpu ms/req", "errors", "rps/off", "cpu/off")
    print(f"{'way':10s} " + " ".join(f"{column:>10s}" for column in columns))

    def median(way: str, field: str) -> float:
        return statistics.median(float(run[field]) for run in measured[way])

    rps = {way: median(way, "rps") for way in ways}
    cpu = {way: median(way, "cpu_ms") for way in ways}
    for way, runs in measured.items():
        errors = sum(int(run["non2xx"]) + int(run["sock_errors"]) for run in runs)
        cells = (rps[way], median(way, "p50_ms"), median(way, "p99_ms"), cpu[way])
        print(
            f"{way:10s} "
            + " ".join(f"{cell:10.2f}" for cell in cells)
            + f" {errors:10d} {rps[way] / rps['off']:10.3f} {cpu[way] / cpu['off']:10.3f}"
        )
    print(
        f"ratio metrics/off: rps={rps['metrics'] / rps['off']:.3f} cpu={cpu['metrics'] / cpu['off']:.3f}; "
        f"traced/off: rps={rps['traced'] / rps['off']:.3f} cpu={cpu['traced'] / cpu['off']:.3f}"
    )


if __name__ == "__main__":
    main()
