"""Concurrent builds: /health latency while 10 builds run at once, and the builds' own latency.

Starts the real entry point (`python main.py`, gunicorn, one worker)
with MAX_CONCURRENT_BUILDS=10 and WEB_THREADS=16, the local publisher and a
scripted model that waits a fixed delay (2 s by default) before each reply, so
the builds overlap. After one warm-up build (the first build of a process pays
the `openai` import), /health is polled every 50 ms for one second with nothing
running, then while 10 builds of different tasks are posted at once. Prints the
/health percentiles in both phases, the build latencies, how many builds
succeeded and the wall time of the batch. Prints numbers; never passes or fails
on time. Run: uv run --dev python -m bench.concurrency [--builds 10] [--delay 2]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

import requests

from bench.report import SPREAD_HEADERS, SummaryRow, machine, percentile, spread_ms, table
from bench.service import ServedProcess, sample_build, served
from tests.conftest import MODEL_KEY
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Delay
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_REPLY

HEALTH_INTERVAL = 0.05
IDLE_SECONDS = 1.0
WEB_THREADS = 16


@dataclass(frozen=True)
class Result:
    """Seconds per /health call (idle, under load), per build, the batch's wall time, and successes."""

    idle: tuple[float, ...]
    loaded: tuple[float, ...]
    health_failures: int
    builds: tuple[float, ...]
    succeeded: int
    wall: float


class HealthPoller:
    """GET /health every HEALTH_INTERVAL on a new connection until stopped; records each latency."""

    def __init__(self, url: str):
        self.url = url
        self.seconds: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                ok = requests.get(f"{self.url}/health", timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            self.seconds.append(elapsed)
            self.failures += not ok
            self._stop.wait(max(0.0, HEALTH_INTERVAL - elapsed))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed_build(service: ServedProcess, body: dict) -> tuple[float, bool]:
    """Seconds to answer one build, and whether it succeeded."""
    started = time.perf_counter()
    try:
        response = service.post(body, timeout=300)
        ok = response.status_code == 200 and response.json().get("status") == "success"
    except requests.RequestException:
        ok = False
    return time.perf_counter() - started, ok


def measure(builds: int, delay: float) -> Result:
    """Warm up, poll /health idle, then run ``builds`` builds at once while polling."""
    with ScriptedModel(api_key=MODEL_KEY) as model, EvaluationReceiver() as receiver, \
            served(model.base_url, MAX_CONCURRENT_BUILDS=str(builds), WEB_THREADS=str(max(WEB_THREADS, builds + 4)),
                   WEB_CONCURRENCY="1") as service:
        model.enqueue(ROUND1_REPLY)
        timed_build(service, sample_build(-1, 1, receiver.notify_url))
        with HealthPoller(service.url) as idle:
            time.sleep(IDLE_SECONDS)
        model.default_reply = lambda body: Delay(delay, ROUND1_REPLY)
        bodies = [sample_build(index, 1, receiver.notify_url) for index in range(builds)]
        with HealthPoller(service.url) as loaded, ThreadPoolExecutor(max_workers=builds) as pool:
            started = time.perf_counter()
            outcomes = list(pool.map(lambda body: timed_build(service, body), bodies))
            wall = time.perf_counter() - started
    return Result(tuple(idle.seconds), tuple(loaded.seconds), idle.failures + loaded.failures,
                  tuple(s for s, _ in outcomes), sum(ok for _, ok in outcomes), wall)


def report(result: Result, builds: int, delay: float) -> str:
    """/health and build latencies as a table."""
    rows = [[f"/health, idle ({len(result.idle)} calls)", *spread_ms(result.idle)],
            [f"/health, {builds} builds running ({len(result.loaded)} calls)", *spread_ms(result.loaded)],
            [f"build, request to response ({builds} at once)", *spread_ms(result.builds)]]
    return (f"Concurrency ({builds} builds at once, model delay {delay:g} s, 1 worker x "
            f"{max(WEB_THREADS, builds + 4)} threads; {machine()})\n\n" + table(["measure", *SPREAD_HEADERS], rows)
            + f"\n\nbuilds succeeded: {result.succeeded} of {builds}; batch wall time {result.wall:.2f} s "
              f"(all serialized would be >= {builds * delay:g} s); /health failures: {result.health_failures}")


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (quick mode: a 1 s model delay)."""
    builds, delay = 10, (1.0 if quick else 2.0)
    result = measure(builds, delay)
    print(report(result, builds, delay))
    health = result.loaded
    return [SummaryRow(f"/health p50/p95/p99/max, {builds} builds running",
                       "/".join(spread_ms(health)) + " ms" if health else "-",
                       f"- (idle p95 {percentile(result.idle, 95) * 1000:.1f} ms)"),
            SummaryRow(f"{builds} concurrent builds, model delay {delay:g} s: ok, p50, wall",
                       f"{result.succeeded}/{builds}, {statistics.median(result.builds):.2f} s, {result.wall:.2f} s",
                       f"- ({builds}/{builds} ok, overlapping)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=10)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the model waits before each reply")
    args = parser.parse_args()
    print(report(measure(args.builds, args.delay), args.builds, args.delay))


if __name__ == "__main__":
    main()
