"""Round-trip time of the service with an instant scripted model (no browser stage).

Posts the sample graded task (round 1, then round 2) N times to the real service
on loopback, with the local publisher and an evaluation receiver, and prints
the request time and the per-stage timings the service reports. Prints numbers;
never passes or fails on time. Run: uv run --dev python -m bench.round_trip [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.report import SPREAD_HEADERS, SummaryRow, machine, spread_ms, table
from bench.service import sample_build
from main import create_app
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY
from utils.config import load_config

TARGET_MS = 150


def measure(runs: int) -> dict[str, list[float]]:
    """Seconds per round and per stage over ``runs`` two-round builds."""
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model, \
            EvaluationReceiver() as receiver:
        config = load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                              "DATA_DIR": str(Path(data)), "SELF_CHECK": "off", "LOG_LEVEL": "ERROR"})
        with LocalServer(create_app(config)) as service:
            for run in range(runs):
                for round_number, reply in ((1, ROUND1_REPLY), (2, ROUND2_REPLY)):
                    model.enqueue(reply)
                    started = time.perf_counter()
                    answer = requests.post(f"{service.url}/api-endpoint", timeout=60,
                                           json=sample_build(run, round_number, receiver.notify_url)).json()
                    samples.setdefault(f"round {round_number} request", []).append(time.perf_counter() - started)
                    for stage, seconds in answer["timings"].items():
                        samples.setdefault(f"round {round_number} {stage}", []).append(seconds)
    return samples


def report(samples: dict[str, list[float]], runs: int) -> str:
    """The per-measure spread as a table."""
    rows = [[name, *spread_ms(values)] for name, values in samples.items()]
    return f"Round trip ({runs} two-round builds; {machine()})\n\n" + table(["measure", *SPREAD_HEADERS], rows)


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows."""
    runs = 5 if quick else 20
    samples = measure(runs)
    print(report(samples, runs))
    return [SummaryRow(f"service overhead per round, round {n} (median of {runs})",
                       f"{statistics.median(samples[f'round {n} request']) * 1000:.1f} ms",
                       f"< {TARGET_MS} ms (no browser)")
            for n in (1, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(report(measure(args.runs), args.runs))


if __name__ == "__main__":
    main()
