"""Failover cost: the latency a failing primary adds to model requests, with and without cool-down.

Sends 20 requests (the sample task's real prompt) through ``ModelClient`` to two
local scripted OpenAI-compatible servers, a primary and a backup that answer
instantly with the sample app. On a fixed, seeded half of the requests the
primary fails, either with HTTP 500 or by answering later than the client's
per-call timeout. Each failure mode runs with no cool-down (the primary is
tried first on every request) and with the default cool-down (a primary that
failed is tried after the healthy providers). Prints one table; never passes or
fails on time. Offline: every server binds to 127.0.0.1.

Run: uv run --dev python -m bench.failover [--requests N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import SummaryRow, machine
from bench.report import table as report_table
from tests.conftest import SECRET
from tests.fakes.faults import Delay, Fail
from tests.fakes.openai_server import Item, ScriptedModel
from tests.sample_task import ROUND1_REPLY, request_body
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.intake.attachments import decode_attachments
from utils.intake.validation import validate_request
from utils.model.llm import ModelClient
from utils.model.prompt import build_messages
from utils.records import RepoTarget

PRIMARY_KEY = "sk-bench-primary"
BACKUP_KEY = "sk-bench-backup"
DEFAULT_COOLDOWN = 120.0  # ModelClient's default
SEED = 7341


@dataclass(frozen=True)
class Scenario:
    """How the primary misbehaves on its bad requests, and the client's cool-down."""

    name: str
    fault: str  # "none", "500" or "timeout"
    cooldown: float


@dataclass(frozen=True)
class Result:
    """Per-request latencies and who served what, for one scenario."""

    scenario: Scenario
    seconds: tuple[float, ...]
    primary_calls: int
    served_by_backup: int


SCENARIOS = (
    Scenario("healthy primary", "none", 0.0),
    Scenario("primary 500 half the time", "500", 0.0),
    Scenario("primary 500 half the time", "500", DEFAULT_COOLDOWN),
    Scenario("primary timeout half the time", "timeout", 0.0),
    Scenario("primary timeout half the time", "timeout", DEFAULT_COOLDOWN),
)


def sample_messages() -> list[dict]:
    """The real round-1 prompt of the sample task."""
    request = validate_request(request_body(1, None), SECRET)
    target = RepoTarget("sales-summary-7341-r1", "http://127.0.0.1/git/r1", "http://127.0.0.1/pages/r1/")
    return build_messages(request, decode_attachments(request.attachments), target)


def make_client(primary: ScriptedModel, backup: ScriptedModel, timeout: float, cooldown: float) -> ModelClient:
    """A fresh client (empty cool-down state) over primary then backup."""
    specs = [ProviderSpec("openai", primary.base_url, PRIMARY_KEY, "primary-model", "OPENAI_API_KEY"),
             ProviderSpec("aipipe", backup.base_url, BACKUP_KEY, "backup-model", "AIPIPE_TOKEN")]
    return ModelClient(specs, timeout=timeout, max_tokens=4096, cooldown_seconds=cooldown)


def fault_item(fault: str, timeout: float) -> Item:
    """What the primary answers on a bad request."""
    if fault == "500":
        return Fail(500)
    return Delay(timeout * 4, then=ROUND1_REPLY)


def run_scenario(scenario: Scenario, servers: tuple[ScriptedModel, ScriptedModel], down: set[int],
                 requests: int, timeout: float, messages: list[dict]) -> Result:
    """Send ``requests`` requests; the primary fails on the indices in ``down`` (unless healthy)."""
    primary, backup = servers
    for server in servers:
        server.reset()
    backup.default_reply = lambda body: ROUND1_REPLY
    client = make_client(primary, backup, timeout, scenario.cooldown)
    for spec in client.providers:
        client._client(spec)  # build both openai clients now: their set-up is not failover cost
    seconds, by_backup = [], 0
    for index in range(requests):
        bad = scenario.fault != "none" and index in down
        item = fault_item(scenario.fault, timeout) if bad else ROUND1_REPLY
        primary.default_reply = lambda body, item=item: item
        started = time.perf_counter()
        completion = client.complete(messages, Deadline(60))
        seconds.append(time.perf_counter() - started)
        by_backup += completion.provider == "aipipe"
    return Result(scenario, tuple(seconds), len(primary.history), by_backup)


def warm_up(servers: tuple[ScriptedModel, ScriptedModel], messages: list[dict]) -> None:
    """Import the openai package and open both servers once, so the first measured request is not special."""
    for server, key in zip(servers, (PRIMARY_KEY, BACKUP_KEY), strict=True):
        server.reset()
        server.default_reply = lambda body: ROUND1_REPLY
        spec = ProviderSpec("warm-up", server.base_url, key, "warm-up-model", "NONE")
        ModelClient([spec], timeout=5.0, max_tokens=4096).complete(messages, Deadline(30))


def table(results: Sequence[Result], down: int) -> str:
    """The results as a fixed-width text table (milliseconds)."""
    baseline = statistics.mean(results[0].seconds)
    rows = []
    for result in results:
        mean = statistics.mean(result.seconds)
        added = mean - baseline
        per_failure = added * len(result.seconds) / down if result.scenario.fault != "none" else 0.0
        rows.append([result.scenario.name, f"{result.scenario.cooldown:.0f} s", f"{mean * 1000:.1f}",
                     f"{added * 1000:.1f}", f"{per_failure * 1000:.1f}", f"{max(result.seconds) * 1000:.1f}",
                     result.primary_calls, result.served_by_backup])
    return report_table(["scenario", "cool-down", "mean ms", "added ms", "added/fail ms", "max ms", "primary calls",
                         "by backup"], rows)


def measure(requests: int, timeout: float) -> tuple[list[Result], set[int], float]:
    """Every scenario's result, the bad request indices, and the total seconds."""
    logging.getLogger("utils").setLevel(logging.WARNING)  # one line per attempt would bury the table
    down = set(random.Random(SEED).sample(range(requests), requests // 2))
    messages = sample_messages()
    started = time.perf_counter()
    with ScriptedModel(api_key=PRIMARY_KEY) as primary, ScriptedModel(api_key=BACKUP_KEY) as backup:
        servers = (primary, backup)
        warm_up(servers, messages)
        results = [run_scenario(s, servers, down, requests, timeout, messages) for s in SCENARIOS]
        primary.reset()  # wake the primary's pending delayed answers before shutting down
    return results, down, time.perf_counter() - started


def report(results: list[Result], down: set[int], total: float, requests: int, timeout: float) -> str:
    """The header, the table and the reading notes as text."""
    return (f"Failover: {requests} requests, primary bad on {len(down)} (seed {SEED}: {sorted(down)}), "
            f"client timeout {timeout:g} s\n{machine()}; total {total:.1f} s\n\n{table(results, len(down))}\n\n"
            "added ms: mean per request over the healthy primary; added/fail ms: the same per bad request;\n"
            "primary calls: requests the primary received; by backup: requests the backup answered.")


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (quick mode: 10 requests)."""
    requests, timeout = (10 if quick else 20), 0.5
    results, down, total = measure(requests, timeout)
    print(report(results, down, total, requests, timeout))
    baseline = statistics.mean(results[0].seconds)
    rows = []
    for result in results[1:]:
        if result.scenario.cooldown == DEFAULT_COOLDOWN:
            added = statistics.mean(result.seconds) - baseline
            rows.append(SummaryRow(f"failover, {result.scenario.name}: added per request", f"{added * 1000:.1f} ms",
                                   f"- (cool-down {DEFAULT_COOLDOWN:g} s, timeout {timeout:g} s)"))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=0.5, help="client per-call timeout, seconds")
    args = parser.parse_args(argv)
    print(report(*measure(args.requests, args.timeout), args.requests, args.timeout))


if __name__ == "__main__":
    main()
