"""REST calls and time per round against the fake GitHub with an injected per-call latency, in both ROUND_REPO modes.

Publishes the sample task's rounds 1 and 2 through the real service (instant
scripted model, self-check off) with ``ROUND_REPO=new`` and ``same`` and prints,
per round, the REST calls GitHub would see (Pages status and workflow run polls
counted apart) and the request time. Then, with Pages never finishing, prints
the time from request to notification against the deadline and the
notification's reserve (the first attempt should start at deadline - reserve).
Prints numbers; never passes or fails on time.
Run: uv run --dev python -m bench.github_rounds [--stuck-deadline 20]
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
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from utils.config import load_config
from utils.deadline import notify_reserve

# Issue 14's goals for round 2 (round 1: the count measured when the publisher was written).
REFERENCE = {("new", 1): "- (5 so far)", ("new", 2): "<= 7", ("same", 1): "- (5 so far)", ("same", 2): "<= 5"}
MODES = ("new", "same")


def service_config(data: str, model: ScriptedModel, github: FakeGitHub, write_interval: float, **extra: str):
    """The service's configuration against the fake GitHub."""
    return load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                        "DATA_DIR": data, "GITHUB_TOKEN": github.token, "GITHUB_API_URL": github.api_url,
                        "GITHUB_WRITE_INTERVAL": str(write_interval), "GITHUB_POLL_INTERVAL": "0.2",
                        "SELF_CHECK": "off", "LOG_LEVEL": "ERROR", **extra}, dotenv=False)


def run(latency: float, write_interval: float, mode: str = "new") -> list[tuple[int, int, int, float]]:
    """(round, REST calls without polls, Pages polls, seconds) for rounds 1 and 2 with ROUND_REPO=``mode``."""
    rows = []
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            FakeGitHub(validate=False) as github:
        github.latency = latency
        config = service_config(data, model, github, write_interval, ROUND_REPO=mode)
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


def stuck_pages(deadline: float) -> tuple[float, float]:
    """(seconds from request to the notification's arrival, the reserve) with Pages never finishing."""
    arrivals: list[float] = []
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            FakeGitHub(validate=False) as github, \
            EvaluationReceiver(on_receive=lambda _payload: arrivals.append(time.perf_counter())) as receiver:
        github.default_build_script = ["building"]
        config = service_config(data, model, github, 0.0, DEADLINE_SECONDS=str(deadline))
        with LocalServer(create_app(config)) as service:
            model.enqueue(ROUND1_REPLY)
            started = time.perf_counter()
            answer = requests.post(f"{service.url}/api-endpoint", json=request_body(1, receiver.notify_url),
                                   timeout=deadline + 60).json()
            assert answer["notified"] and arrivals, answer
    return arrivals[0] - started, notify_reserve(deadline)


def report(rows: list[tuple[int, int, int, float]], latency: float, write_interval: float, mode: str = "new") -> str:
    """The per-round table as text."""
    return (f"ROUND_REPO={mode}, fake GitHub latency {latency * 1000:.0f} ms per call, "
            f"write interval {write_interval:g} s\n"
            + table(["round", "REST calls", "Pages polls", "seconds"],
                    [[n, calls, polls, f"{seconds:.2f}"] for n, calls, polls, seconds in rows]))


def stuck_report(deadline: float, seconds: float, reserve: float) -> str:
    """The stuck-Pages line as text."""
    return (f"Pages stuck, deadline {deadline:g} s, reserve {reserve:g} s: notification arrived after "
            f"{seconds:.2f} s (deadline - reserve = {deadline - reserve:g} s)")


def summary(quick: bool) -> list[SummaryRow]:
    """REST calls per round in both modes (no injected latency or spacing: the count does not depend on them),
    and request-to-notification with Pages stuck."""
    rows = []
    for mode in MODES:
        measured = run(0.0, 0.0, mode)
        print("GitHub rounds\n\n" + report(measured, 0.0, 0.0, mode))
        rows += [SummaryRow(f"GitHub REST calls, ROUND_REPO={mode}, round {n}", f"{calls} (+{polls} polls)",
                            REFERENCE[mode, n]) for n, calls, polls, _ in measured]
    deadline = 10.0
    seconds, reserve = stuck_pages(deadline)
    print(stuck_report(deadline, seconds, reserve))
    rows.append(SummaryRow(f"request to notification, Pages stuck, deadline {deadline:g} s", f"{seconds:.2f} s",
                           f"{deadline - reserve:g} s (deadline - reserve)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every GitHub call")
    parser.add_argument("--write-interval", type=float, default=1.0,
                        help="spacing of mutating calls (GitHub's guidance: 1 s)")
    parser.add_argument("--stuck-deadline", type=float, default=20.0,
                        help="DEADLINE_SECONDS of the build whose Pages never finish")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    for mode in MODES:
        print(report(run(args.latency, args.write_interval, mode), args.latency, args.write_interval, mode))
    print(stuck_report(args.stuck_deadline, *stuck_pages(args.stuck_deadline)))


if __name__ == "__main__":
    main()
