"""REST calls and time per round against the fake GitHub with an injected per-call latency.

Publishes the sample task's rounds 1 and 2 through the real service (instant
scripted model, self-check off) and prints, per round, the REST calls GitHub
would see (Pages status polls counted apart) and the request time. Prints
numbers; never passes or fails on time. Run: uv run python -m bench.github_rounds
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import requests

from main import create_app
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from utils.config import load_config


def run(latency: float, write_interval: float) -> list[tuple[int, int, int, float]]:
    """(round, REST calls without polls, Pages polls, seconds) for rounds 1 and 2."""
    rows = []
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            FakeGitHub(validate=False) as github:
        github.latency = latency
        config = load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                              "DATA_DIR": data, "GITHUB_TOKEN": github.token, "GITHUB_API_URL": github.api_url,
                              "GITHUB_WRITE_INTERVAL": str(write_interval), "GITHUB_POLL_INTERVAL": "0.2",
                              "SELF_CHECK": "off"})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every GitHub call")
    parser.add_argument("--write-interval", type=float, default=1.0, help="spacing of mutating calls (GitHub's guidance: 1 s)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    print(f"fake GitHub latency {args.latency * 1000:.0f} ms per call, write interval {args.write_interval} s")
    print(f"{'round':>5} {'REST calls':>10} {'Pages polls':>11} {'seconds':>8}")
    for round_number, calls, polls, seconds in run(args.latency, args.write_interval):
        print(f"{round_number:>5} {calls:>10} {polls:>11} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
