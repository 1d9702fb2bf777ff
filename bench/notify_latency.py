"""Time from request to notification, with a scripted model delay, answering synchronously or early.

Starts the real entry point (`python main.py`, gunicorn, one worker) with the
local publisher, the self-check off, an evaluation receiver that timestamps
each notification as it arrives, and a scripted model that waits a fixed delay
(0, 1 and 3 s by default) before replying. Each build is posted plainly (sync:
the answer comes after the notification) and with `Prefer: respond-async`
(early: the same code path as RESPONSE_MODE=early, a 200 `accepted` at once and
the build in the background). One warm-up build first pays the `openai` import.
Prints, per mode and delay, the median request-to-response and
request-to-notification times and the overhead beyond the model's delay.
Prints numbers; never passes or fails on time.
Run: uv run --dev python -m bench.notify_latency [--delays 0,1,3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import dataclass

from bench.report import SummaryRow, machine, table
from bench.service import ServedProcess, sample_build, served
from tests.conftest import MODEL_KEY
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Delay
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_REPLY

MODES = {"sync": {}, "early": {"Prefer": "respond-async"}}
NOTIFY_WAIT_SECONDS = 60


@dataclass(frozen=True)
class Sample:
    """One build: its mode, the model delay, and seconds from the request to the response and to the notification."""

    mode: str
    delay: float
    response: float
    notification: float

    @property
    def overhead(self) -> float:
        """Request to notification beyond the model's delay."""
        return self.notification - self.delay


class Arrivals:
    """When each nonce's notification reached the receiver (perf_counter seconds)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._arrived = threading.Condition()

    def record(self, payload: dict) -> None:
        """The receiver's callback."""
        with self._arrived:
            self.times[payload["nonce"]] = time.perf_counter()
            self._arrived.notify_all()

    def wait(self, nonce: str) -> float:
        """The arrival time of ``nonce``'s notification; raise if none comes in time."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: nonce in self.times, timeout=NOTIFY_WAIT_SECONDS):
                raise RuntimeError(f"no notification for {nonce} within {NOTIFY_WAIT_SECONDS} s")
            return self.times[nonce]


def one_build(service: ServedProcess, model: ScriptedModel, arrivals: Arrivals, notify_url: str,
              index: int, mode: str, delay: float) -> Sample:
    """Post one build in ``mode`` with the model waiting ``delay`` seconds; time the answer and the notification."""
    model.enqueue(Delay(delay, ROUND1_REPLY) if delay else ROUND1_REPLY)
    body = sample_build(index, 1, notify_url)
    started = time.perf_counter()
    response = service.post(body, headers=MODES[mode])
    answered = time.perf_counter()
    expected = "success" if mode == "sync" else "accepted"
    if response.status_code != 200 or response.json().get("status") != expected:
        raise RuntimeError(f"{mode} build answered {response.status_code}: {response.text[:300]}")
    return Sample(mode, delay, answered - started, arrivals.wait(body["nonce"]) - started)


def measure(delays: list[float], repeats: int) -> list[Sample]:
    """``repeats`` builds per mode and delay, after one warm-up build."""
    arrivals = Arrivals()
    samples = []
    with ScriptedModel(api_key=MODEL_KEY) as model, EvaluationReceiver(on_receive=arrivals.record) as receiver, \
            served(model.base_url, WEB_CONCURRENCY="1") as service:
        one_build(service, model, arrivals, receiver.notify_url, 0, "sync", 0.0)
        index = 1
        for delay in delays:
            for mode in MODES:
                for _ in range(repeats):
                    samples.append(one_build(service, model, arrivals, receiver.notify_url, index, mode, delay))
                    index += 1
    return samples


def medians(samples: list[Sample]) -> list[tuple[str, float, float, float, float]]:
    """(mode, delay, median response s, median notification s, median overhead s) per mode and delay."""
    groups: dict[tuple[str, float], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.mode, sample.delay), []).append(sample)
    return [(mode, delay, statistics.median(s.response for s in group),
             statistics.median(s.notification for s in group), statistics.median(s.overhead for s in group))
            for (mode, delay), group in groups.items()]


def report(samples: list[Sample], repeats: int) -> str:
    """Median times per mode and delay as a table."""
    rows = [[mode, f"{delay:g}", f"{response * 1000:.0f}", f"{notification * 1000:.0f}", f"{overhead * 1000:.0f}"]
            for mode, delay, response, notification, overhead in medians(samples)]
    headers = ["mode", "model delay s", "request->response ms", "request->notification ms", "overhead ms"]
    return (f"Notification latency (median of {repeats} per row; {machine()})\n\n" + table(headers, rows)
            + "\n\noverhead: request->notification minus the model delay")


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (quick mode: delays 0 and 1 s, one build each)."""
    delays, repeats = ([0.0, 1.0], 1) if quick else ([0.0, 1.0, 3.0], 3)
    samples = measure(delays, repeats)
    print(report(samples, repeats))
    rows = medians(samples)
    worst = {mode: max(overhead for m, _, _, _, overhead in rows if m == mode) for mode in MODES}
    early_answer = max(response for m, _, response, _, _ in rows if m == "early")
    shown = "/".join(f"{d:g}" for d in delays)
    return [SummaryRow(f"request -> notification minus model delay, {mode} (worst of {shown} s)",
                       f"{worst[mode] * 1000:.0f} ms") for mode in MODES] \
        + [SummaryRow("early mode: request -> 'accepted' answer", f"{early_answer * 1000:.0f} ms")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="0,1,3", help="model delays in seconds, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(report(measure([float(d) for d in args.delays.split(",")], args.repeats), args.repeats))


if __name__ == "__main__":
    main()
