"""The durable build queue: what the durable write adds per build, and how long a takeover takes.

Durable write: in-process against each store (SQLite in a temporary DATA_DIR;
PostgreSQL when BENCH_DATABASE_URL or TEST_DATABASE_URL is set, e.g. from
`.ci/postgres start DIR`), the store work of one build as before the queue
(claim the nonce, record the result) against the work now (the claim also
stores the attachments, deadline and public URL; two milestone marks; the
result, which deletes the attachments), with the sample task's attachment and
with a 1 MB one; plus one lease renewal (one every third of a lease, 20 s by
default).

Takeover: the real service (`python main.py`) in early mode with
DEADLINE_SECONDS=60 (a 6 s lease, the queue looked at every 2 s), its process
group SIGKILLed when the model is first asked; then (1) a restart on the same
DATA_DIR (SQLite): seconds from starting the new process, and from its /health,
to the resumed build's model call; (2) with PostgreSQL, another instance
already running: seconds from the kill to its model call when the dead owner
is on this host, and when the owner looks like another machine (its hostname
rewritten in the row), so only the lease can tell. Prints numbers; never
passes or fails on time.
Run: uv run python -m bench.durable_queue [--builds 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import SPREAD_HEADERS, SummaryRow, machine, spread_ms, table
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_REPLY, SALES_CSV
from tests.service_process import ServiceProcess, free_port
from utils.records import Attachment, Attachments, TaskRequest
from utils.store.base import BuildStore, lease_seconds

DEADLINE = 60
RESULT = {"http_status": 200, "body": {"status": "success", "commit_sha": "a" * 40, "timings": {"generation": 1.0}}}


def database_url() -> str:
    """The PostgreSQL to measure against, or ""."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL", "")


def sample_request(nonce: str) -> TaskRequest:
    """A request like the sample task's."""
    return TaskRequest(email="a@example.com", task="bench", round=1, nonce=nonce, brief="Summarize sales " * 40)


def attachments(size: int) -> Attachments:
    """The sample task's CSV, or ``size`` bytes of CSV."""
    data = SALES_CSV if size == 0 else (b"product,region,sales\n" + b"widget,north,10.00\n" * (size // 19))[:size]
    return Attachments(files=(Attachment("data.csv", "data.csv", data, "text/csv", data[:200].decode()),))


def before(store: BuildStore, nonce: str, _files: Attachments) -> None:
    """A build's store work before the durable queue: claim the nonce, record the result."""
    store.claim(sample_request(nonce), "bench", 600)
    store.finish(nonce, "success", RESULT)


def now(store: BuildStore, nonce: str, files: Attachments) -> None:
    """A build's store work now: the durable claim, two milestone marks, the result."""
    store.claim(sample_request(nonce), "bench", 60, attachments=files, deadline_at=time.time() + 600,
                public_url="http://127.0.0.1:5000")
    store.mark_milestone(nonce, "generated")
    store.mark_milestone(nonce, "committed")
    store.finish(nonce, "success", RESULT)


def timed_pairs(store: BuildStore, files: Attachments, builds: int, label: str) -> tuple[list[float], list[float]]:
    """Seconds of ``before`` and ``now`` for ``builds`` new nonces each, interleaved so load hits both alike."""
    old, new = [], []
    for index in range(builds):
        for step, seconds in ((before, old), (now, new)):
            started = time.perf_counter()
            step(store, f"{label}-{step.__name__}-{index}", files)
            seconds.append(time.perf_counter() - started)
    return old, new


def open_stores(workdir: Path) -> dict[str, Callable[[], BuildStore]]:
    """The stores to measure: SQLite always, PostgreSQL when a URL is given."""
    from utils.store.sqlite import SQLiteStore

    stores: dict[str, Callable[[], BuildStore]] = {"sqlite": lambda: SQLiteStore(workdir / "ledger.sqlite3")}
    if database_url():
        from utils.store.postgres import PostgresStore

        stores["postgres"] = lambda: PostgresStore(database_url())
    return stores


def write_latency(builds: int) -> list[SummaryRow]:
    """Median store time per build before and now, per store and attachment size."""
    rows, printed = [], []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as workdir:
        for name, opener in open_stores(Path(workdir)).items():
            store = opener()
            run_id = f"{name}-{time.time_ns()}"
            for size, size_name in ((0, "sample csv"), (1 << 20, "1 MB")):
                files = attachments(size)
                old, new = timed_pairs(store, files, builds, f"{run_id}-{size}")
                printed.append([name, size_name, "before", *spread_ms(old)])
                printed.append([name, size_name, "durable", *spread_ms(new)])
                added = (statistics.median(new) - statistics.median(old)) * 1000
                rows.append(SummaryRow(f"durable write added per build ({name}, {size_name})", f"{added:.1f} ms",
                                       "< 20 ms"))
            store.claim(sample_request(f"{run_id}-renew"), "bench", 60)
            renew_nonce = f"{run_id}-renew"
            renewals = [_timed_call(lambda store=store, nonce=renew_nonce: store.renew(nonce, 60))
                        for _ in range(builds)]
            printed.append([name, "-", "lease renewal", *spread_ms(renewals)])
    print(table(["store", "attachment", "work", *SPREAD_HEADERS], printed, left=3))
    return rows


def _timed_call(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- takeover ----------------------------------------------------------------------------------------------------


class Harness:
    """A scripted model that kills the first instance on its first call and records when each call came."""

    def __init__(self) -> None:
        self.model = ScriptedModel().__enter__()
        self.victim: ServiceProcess | None = None
        self.killed_at = 0.0
        self.calls: list[float] = []
        self._called = threading.Event()
        self.model.default_reply = self._reply

    def _reply(self, _body: dict) -> str:
        self.calls.append(time.perf_counter())
        if self.victim is not None and len(self.calls) == 1:
            self.killed_at = time.perf_counter()
            self.victim.kill()
        self._called.set()
        return ROUND1_REPLY

    def wait_for_call(self, count: int, seconds: float = 120) -> float:
        """The time of model call number ``count``."""
        until = time.monotonic() + seconds
        while len(self.calls) < count and time.monotonic() < until:
            time.sleep(0.01)
        if len(self.calls) < count:
            raise RuntimeError("the build was never resumed")
        return self.calls[count - 1]

    def start(self, workdir: Path, name: str, **extra: str) -> ServiceProcess:
        """`python main.py` in early mode on ``workdir/name``."""
        cwd = workdir / f"run-{name}-{time.time_ns()}"
        cwd.mkdir(parents=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY,
               "OPENAI_BASE_URL": self.model.base_url, "LLM_MODEL": "scripted-model", "PORT": str(free_port()),
               "DATA_DIR": str(workdir / f"data-{name}"), "SELF_CHECK": "off", "RESPONSE_MODE": "early",
               "DEADLINE_SECONDS": str(DEADLINE), **extra}
        return ServiceProcess(cwd, env)

    def close(self) -> None:
        """Stop the model server."""
        self.model.__exit__(None, None, None)


def crash_first_build(harness: Harness, service: ServiceProcess, nonce: str) -> None:
    """Send one early build to ``service`` and let the model's first call kill it."""
    from tests.sample_task import request_body

    harness.victim = service
    service.post(request_body(1, None, nonce=nonce))
    harness.wait_for_call(1)
    service.process.wait(timeout=30)
    harness.victim = None


def restart_takeover(workdir: Path) -> tuple[float, float]:
    """Seconds from a restarted process's start, and from its /health, to the resumed model call (SQLite)."""
    harness = Harness()
    try:
        crash_first_build(harness, harness.start(workdir, "a").wait_until_healthy(), "restart-1")
        started = time.perf_counter()
        restarted = harness.start(workdir, "a").wait_until_healthy()
        healthy = time.perf_counter()
        called = harness.wait_for_call(2)
        restarted.stop()
        return called - started, max(0.0, called - healthy)
    finally:
        harness.close()


def other_instance_takeover(workdir: Path, url: str, foreign: bool) -> float:
    """Seconds from the kill to another running instance's model call (``foreign``: owner on another host)."""
    import psycopg

    harness = Harness()
    nonce = f"takeover-{time.time_ns()}"
    try:
        scenario = "foreign" if foreign else "local"  # each instance gets its own DATA_DIR (local repositories)
        other = harness.start(workdir, f"{scenario}-b", DATABASE_URL=url).wait_until_healthy()
        victim = harness.start(workdir, f"{scenario}-a", DATABASE_URL=url).wait_until_healthy()
        crash_first_build(harness, victim, nonce)
        if foreign:  # as if the dead owner ran on another machine: only the lease can tell
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("UPDATE builds SET owner = 'another-host' || substr(owner, strpos(owner, '|'))"
                           " WHERE nonce = %s", (nonce,))
        called = harness.wait_for_call(2)
        other.stop()
        return called - harness.killed_at
    finally:
        harness.close()


def takeover_delays() -> list[SummaryRow]:
    """The takeover measurements as summary rows."""
    lease = lease_seconds(DEADLINE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as name:
        workdir = Path(name)
        from_start, from_health = restart_takeover(workdir)
        print(f"restart on the same DATA_DIR: {from_start:.2f} s from process start, {from_health:.2f} s after "
              f"/health answered, to the resumed build's model call")
        rows.append(SummaryRow("takeover after a restart (process start to resumed build)", f"{from_start:.2f} s",
                               f"< {lease:.0f} s"))
        url = database_url()
        if url:
            local = other_instance_takeover(workdir, url, foreign=False)
            foreign = other_instance_takeover(workdir, url, foreign=True)
            print(f"another instance (PostgreSQL): {local:.2f} s after the kill when the owner is on this host, "
                  f"{foreign:.2f} s when it is on another (lease {lease:.0f} s, queue looked at every "
                  f"{lease / 3:.0f} s)")
            rows.append(SummaryRow("takeover by another instance, owner on this host", f"{local:.2f} s",
                                   f"~{lease / 3:.0f} s (the queue is looked at every third of a lease)"))
            rows.append(SummaryRow("takeover by another instance, owner on another host", f"{foreign:.2f} s",
                                   f"~{lease * 4 / 3:.0f} s (the lease, then a third of it)"))
        else:
            print("no BENCH_DATABASE_URL or TEST_DATABASE_URL: the PostgreSQL takeovers are not measured")
    print(f"with the default DEADLINE_SECONDS=600 the lease is {lease_seconds(600):.0f} s: a takeover comes at "
          f"most {lease_seconds(600) / 3:.0f} s (dead owner here) or {lease_seconds(600) * 4 / 3:.0f} s "
          "(another machine) after the crash")
    return rows


def summary(quick: bool) -> list[SummaryRow]:
    """Run both parts and return the summary rows."""
    return write_latency(50 if quick else 300) + takeover_delays()


def main() -> None:
    """Command line: print the details and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200, help="builds per store and attachment size")
    args = parser.parse_args()
    print(machine())
    rows = write_latency(args.builds) + takeover_delays()
    print(table(["measure", "value", "target"], [[r.measure, r.value, r.target] for r in rows], left=1))


if __name__ == "__main__":
    main()
