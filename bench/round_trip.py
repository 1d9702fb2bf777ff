"""Round-trip time of the service with an instant scripted model (no browser stage).

Posts the sample graded task (round 1, then round 2) N times to the real service
on loopback, with the local publisher and an evaluation receiver, and prints
the request time and the per-stage timings the service reports. Prints numbers;
never passes or fails on time. Run: uv run python -m bench.round_trip [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import requests

from main import create_app
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from utils.config import load_config


def measure(runs: int) -> dict[str, list[float]]:
    """Seconds per round and per stage over ``runs`` two-round builds."""
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            EvaluationReceiver() as receiver:
        config = load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                              "DATA_DIR": str(Path(data)), "SELF_CHECK": "off"})
        with LocalServer(create_app(config)) as service:
            for run in range(runs):
                for round_number, reply in ((1, ROUND1_REPLY), (2, ROUND2_REPLY)):
                    model.enqueue(reply)
                    body = request_body(round_number, receiver.notify_url, nonce=f"bench-{run}-{round_number}")
                    body["task"] = f"bench-task-{run}"
                    started = time.perf_counter()
                    answer = requests.post(f"{service.url}/api-endpoint", json=body, timeout=60).json()
                    samples.setdefault(f"round {round_number} request", []).append(time.perf_counter() - started)
                    for stage, seconds in answer["timings"].items():
                        samples.setdefault(f"round {round_number} {stage}", []).append(seconds)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import logging

    samples = measure(args.runs)
    logging.disable(logging.CRITICAL)
    print(f"{'measure':28} {'median ms':>10} {'p95 ms':>10} {'max ms':>10}   ({args.runs} runs)")
    for name, values in samples.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"{name:28} {statistics.median(values) * 1000:10.1f} {p95 * 1000:10.1f} {ordered[-1] * 1000:10.1f}")


if __name__ == "__main__":
    main()
