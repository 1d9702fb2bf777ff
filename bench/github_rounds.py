"""REST calls and time per round against the fake GitHub with an injected per-call latency.

Publishes the sample task's rounds 1 and 2 through the real service (instant
scripted model, self-check off) and prints, per round, the REST calls GitHub
would see (Pages status polls counted apart) and the request time. Prints
numbers; never passes or fails on time. Run: uv run --dev python -m bench.github_rounds
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import requests

from bench.report import SummaryRow, table
from main import create_app
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from utils.config import load_config

# No target in the issue: the counts measured when the publisher was written, to spot a regression.
REFERENCE = {1: "- (5 so far)", 2: "- (14 so far)"}


def run(latency: float, write_interval: float) -> list[tuple[int, int, int, float]]:
    """(round, REST calls without polls, Pages polls, seconds) for rounds 1 and 2."""
    rows = []
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            FakeGitHub(validate=False) as github:
        github.latency = latency
        config = load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                              "DATA_DIR": data, "GITHUB_TOKEN": github.token, "GITHUB_API_URL": github.api_url,
                              "GITHUB_WRITE_INTERVAL": str(write_interval), "GITHUB_POLL_INTERVAL": "0.2",
                              "SELF_CHECK": "off", "LOG_LEVEL": "ERROR"})
        with LocalServer(create_app(config)) as service:
            for round_number, reply in ((1, ROUND1_REPLY), (2, ROUND2_REPLY)):
                model.enqueue(reply)
                before_calls, before_polls = len(github.api_calls()), len(github.api_calls(polling=True))
                started = time.perf_counter()
                answer = requests.post(f"{service.url}/api-endpoint", json=request_body(round_number, None),
                                       timeout=300).json()
                seconds = time.perf_counter() - started
                assert answer["status"] == "success", answer
                calls = len(github.api_calls()) - before_calls
                polls = len(github.api_calls(polling=True)) - before_polls - calls
                rows.append((round_number, calls, polls, seconds))
    return rows


def report(rows: list[tuple[int, int, int, float]], latency: float, write_interval: float) -> str:
    """The per-round table as text."""
    return (f"fake GitHub latency {latency * 1000:.0f} ms per call, write interval {write_interval:g} s\n"
            + table(["round", "REST calls", "Pages polls", "seconds"],
                    [[n, calls, polls, f"{seconds:.2f}"] for n, calls, polls, seconds in rows]))


def summary(quick: bool) -> list[SummaryRow]:
    """REST calls per round (no injected latency or spacing: the count does not depend on them)."""
    rows = run(0.0, 0.0)
    print("GitHub rounds\n\n" + report(rows, 0.0, 0.0))
    return [SummaryRow(f"GitHub REST calls, round {n}", f"{calls} (+{polls} Pages polls)", REFERENCE[n])
            for n, calls, polls, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every GitHub call")
    parser.add_argument("--write-interval", type=float, default=1.0,
                        help="spacing of mutating calls (GitHub's guidance: 1 s)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    print(report(run(args.latency, args.write_interval), args.latency, args.write_interval))


if __name__ == "__main__":
    main()
