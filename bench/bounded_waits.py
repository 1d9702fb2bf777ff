"""Bounded waits: how long the service takes to give up on a slow or refusing upstream, measured.

These numbers used to be timed assertions in tests (``elapsed < 1.0`` and the
like), which fail on a busy machine without any bug; the tests now assert the
behaviour (the fake saw no retry, the attempt ended in a timeout) and this
module prints the times, read against the bounds the tests used to enforce:
the model chain moving on after a 429 whose Retry-After is past the deadline,
an attempt cut by the client's timeout, a call capped by the deadline, the
GitHub publisher giving up on Pages at its deadline and, in the full run (it
needs Chromium), a check that never passes and a page that never loads.

Prints numbers; never passes or fails on time. Offline: every server binds to 127.0.0.1.
Run: uv run --dev python -m bench.bounded_waits [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import time
from collections.abc import Callable, Sequence

from flask import Flask

from bench.report import SummaryRow, machine, table
from tests.fakes.faults import Delay, Fail
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from utils.checks.browser import find_chromium, run_checks
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.model.llm import ModelClient, ProvidersFailed
from utils.publishers.base import commit_message
from utils.publishers.github import GitHubPublisher
from utils.publishers.github_api import GitHubTransport
from utils.records import Check

MESSAGES = [{"role": "user", "content": "Build a page"}]
NEVER = Check("Never", "document.querySelector('#never') !== null")
Measure = Callable[[], float]


def model_chain(primary: ScriptedModel, backup: ScriptedModel, timeout: float) -> ModelClient:
    """A client over the primary then the backup, with the tests' limits."""
    specs = [ProviderSpec(name, server.base_url, "sk-bench", "scripted-model", f"{name.upper()}_API_KEY")
             for name, server in (("openai", primary), ("aipipe", backup))]
    return ModelClient(specs, timeout=timeout, max_tokens=256)


def model_measures(primary: ScriptedModel, backup: ScriptedModel) -> dict[str, tuple[Measure, str]]:
    """Name: (one measurement in seconds, the bound a test used to assert)."""
    def after_unusable_retry_after() -> float:
        primary.enqueue(Fail(429, retry_after=30.0))
        started = time.monotonic()
        model_chain(primary, backup, 0.5).complete(MESSAGES, Deadline(2.0))
        return time.monotonic() - started

    def attempt_past_client_timeout() -> float:
        primary.enqueue(Delay(1.5, then="too late"))
        return model_chain(primary, backup, 0.3).complete(MESSAGES, Deadline(5.0)).attempts[0].seconds

    def call_capped_by_deadline() -> float:
        primary.enqueue(Delay(1.5))
        started = time.monotonic()
        try:
            model_chain(primary, backup, 10).complete(MESSAGES, Deadline(0.3))
        except ProvidersFailed:
            pass
        return time.monotonic() - started

    return {
        "model: 429 with Retry-After past the deadline, to the next provider": (after_unusable_retry_after, "< 1 s"),
        "model: attempt past the 0.3 s client timeout": (attempt_past_client_timeout, "< 1 s"),
        "model: 10 s call timeout capped by a 0.3 s deadline": (call_capped_by_deadline, "< 1 s"),
    }


def pages_never_built(github: FakeGitHub) -> Measure:
    """wait_until_live with a 0.6 s deadline while Pages never finishes building."""
    publisher = GitHubPublisher(GitHubTransport(github.token, github.api_url, write_interval=0.0),
                                poll_interval=0.01, rebuild_after=0.2)
    github.default_build_script = ["building"]
    runs = iter(range(10**6))

    def measure() -> float:
        name = f"bounded-wait-{next(runs)}"
        target = publisher.prepare(name, "A page.", nonce=name)
        sha = publisher.commit(target, {"index.html": b"<!doctype html><title>x</title>"},
                               commit_message("Round 1", name, 1, name), None)
        started = time.monotonic()
        publisher.wait_until_live(target, sha, Deadline(0.6))
        return time.monotonic() - started

    return measure


def browser_measures(chromium: str, page_url: str, closed_url: str) -> dict[str, tuple[Measure, str]]:
    """The browser's bounded waits (each launches Chromium)."""
    def never_true_check() -> float:
        started = time.monotonic()
        run_checks(page_url, [NEVER], chromium_path=chromium, check_timeout=1)
        return time.monotonic() - started

    def unreachable_page() -> float:
        return run_checks(closed_url, [NEVER], chromium_path=chromium, check_timeout=5).seconds

    return {
        "browser: never-true check (check_timeout 1 s), whole run": (never_true_check, "< 10 s"),
        "browser: unreachable page (check_timeout 5 s), report": (unreachable_page, "< 5 s"),
    }


def page_server() -> LocalServer:
    """A one-page site on loopback."""
    app = Flask("bounded_waits")
    app.add_url_rule("/", "page", lambda: "<!doctype html><title>Page</title><p>Nothing here</p>")
    return LocalServer(app)


def closed_url() -> str:
    """An http URL on a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def measure(repeats: int, browser: bool) -> list[tuple[str, list[float], str]]:
    """Each bounded wait ``repeats`` times: (name, seconds, former bound)."""
    rows = []
    with ScriptedModel() as primary, ScriptedModel() as backup, FakeGitHub() as github:
        measures = model_measures(primary, backup)
        measures["GitHub: Pages never built, wait_until_live with a 0.6 s deadline"] = (pages_never_built(github),
                                                                                      "< 1.5 s")
        for name, (run, bound) in measures.items():
            rows.append((name, [run() for _ in range(repeats)], bound))
            primary.reset()  # wake delayed answers nobody waits for any more
    chromium = find_chromium()
    if browser and chromium:
        with page_server() as site:
            for name, (run, bound) in browser_measures(chromium, site.url + "/", closed_url()).items():
                rows.append((name, [run() for _ in range(repeats)], bound))
    return rows


def report(rows: list[tuple[str, list[float], str]], repeats: int) -> str:
    """The table as text."""
    body = [[name, f"{statistics.median(s):.2f}", f"{max(s):.2f}", bound] for name, s, bound in rows]
    return (f"Bounded waits ({repeats} runs each; {machine()})\n\n"
            + table(["wait", "median s", "max s", "former test bound"], body))


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return one summary row per wait (the browser's only in the full run)."""
    repeats = 3 if quick else 5
    rows = measure(repeats, browser=not quick)
    print(report(rows, repeats))
    return [SummaryRow(f"bounded wait, {name}", f"{max(s):.2f} s max", bound) for name, s, bound in rows]


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every bounded wait and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the waits that need Chromium")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    print(report(measure(args.repeats, browser=not args.no_browser), args.repeats))


if __name__ == "__main__":
    main()
