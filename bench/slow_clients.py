"""Slow clients against the real service: does `/health` keep answering while connections trickle in?

Starts `python main.py` (gunicorn, 1 worker, `WEB_THREADS` threads) and opens
`--slow` connections that each send a request one byte per second: half
trickle their headers (slowloris), half send full headers and then trickle a
body. Meanwhile `/health` is probed every 0.25 s on fresh connections with a
3 s timeout, and one real build is sent. Prints `/health` latency
percentiles (and timeouts) with and without the slow clients, and whether the
build succeeded. Numbers only; never passes or fails.
Run: uv run python -m bench.slow_clients [--slow 40] [--seconds 15]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import requests

from bench.report import SummaryRow, machine, percentile, spread_ms, table
from bench.service import sample_build, served
from tests.conftest import MODEL_KEY
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_REPLY

PROBE_INTERVAL = 0.25
PROBE_TIMEOUT = 3.0


def trickle(port: int, count: int, stop: threading.Event) -> None:
    """Hold ``count`` connections open, each sending its request one byte per second until ``stop``."""
    head = b"POST /api-endpoint HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    requests_bytes = []
    for index in range(count):
        if index % 2:  # full headers, then a body that never finishes
            requests_bytes.append(head + b"Content-Length: 100000\r\n\r\n" + b"{" + b" " * 99_999)
        else:  # headers that never finish
            requests_bytes.append(head + b"X-Padding: " + b"a" * 100_000)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sockets.append(sock)
    sent = [0] * count
    try:
        while not stop.wait(1.0):
            for index, sock in enumerate(sockets):
                try:
                    sock.send(requests_bytes[index][sent[index]:sent[index] + 1])
                    sent[index] += 1
                except OSError:
                    pass  # the server closed it: that is a fine answer to a slow client
    finally:
        for sock in sockets:
            sock.close()


def probe(url: str, seconds: float) -> tuple[list[float], int]:
    """Latencies of /health probes over ``seconds`` and the number that timed out or failed."""
    latencies, failed = [], 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            ok = requests.get(f"{url}/health", timeout=PROBE_TIMEOUT, headers={"Connection": "close"}).ok
        except requests.RequestException:
            ok = False
        if ok:
            latencies.append(time.monotonic() - started)
        else:
            failed += 1
        time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))
    return latencies, failed


def measure(slow: int, seconds: float, threads: int) -> dict[str, object]:
    """Probe /health without, then with ``slow`` slow clients; one build during the slow phase."""
    with ScriptedModel(api_key=MODEL_KEY) as model, served(model.base_url, WEB_THREADS=str(threads)) as service:
        quiet = probe(service.url, min(5.0, seconds))
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(service.port, slow, stop), daemon=True)
        trickler.start()
        time.sleep(2.0)  # let every slow connection be accepted
        model.enqueue(ROUND1_REPLY)
        build: list[str] = []

        def one_build() -> None:
            try:
                response = service.post(sample_build(0, 1, None), timeout=seconds + 30)
                build.append(f"HTTP {response.status_code} {response.json().get('status')}")
            except requests.RequestException as exc:
                build.append(type(exc).__name__)

        builder = threading.Thread(target=one_build)
        builder.start()
        loaded = probe(service.url, seconds)
        builder.join(seconds + 30)
        stop.set()
        trickler.join(10)
    return {"quiet": quiet, "slow": loaded, "build": build[0] if build else "no answer"}


def row(label: str, latencies: list[float], failed: int) -> list[str]:
    """One table row: probes, failures and latency spread."""
    spread = spread_ms(latencies) if latencies else ["-"] * 4
    return [label, str(len(latencies) + failed), str(failed), *spread]


def summary(quick: bool) -> list[SummaryRow]:
    """Run with the defaults (fewer seconds when ``quick``) and return the summary rows."""
    return report(measure(40, 8.0 if quick else 15.0, 8), 40)


def report(result: dict[str, object], slow: int) -> list[SummaryRow]:
    """Print the table; the summary rows."""
    quiet_latencies, quiet_failed = result["quiet"]  # type: ignore[misc]
    slow_latencies, slow_failed = result["slow"]  # type: ignore[misc]
    print(machine())
    print(table(["phase", "probes", "timed out", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                [row("no slow clients", quiet_latencies, quiet_failed),
                 row(f"{slow} slow clients", slow_latencies, slow_failed)]))
    print(f"build during the slow phase: {result['build']}")
    p95 = f"{percentile(slow_latencies, 95) * 1000:.1f} ms" if slow_latencies else "none answered"
    return [SummaryRow(f"/health p95 with {slow} slow clients", p95, "< 100 ms"),
            SummaryRow(f"/health probes timed out with {slow} slow clients", str(slow_failed), "0"),
            SummaryRow("build during slow clients", str(result["build"]), "HTTP 200 success")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=40, help="slow connections")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to probe with slow clients")
    parser.add_argument("--threads", type=int, default=8, help="WEB_THREADS")
    args = parser.parse_args()
    report(measure(args.slow, args.seconds, args.threads), args.slow)


if __name__ == "__main__":
    main()
