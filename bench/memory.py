"""Resident memory per gunicorn worker: at start, after the first build, after N builds.

Starts the real entry point (`python main.py`, gunicorn, 2 workers by default)
with the local publisher, an instant scripted model, an evaluation receiver and
the self-check off, then runs N builds in sequence (the sample task's round 1
and round 2 for N/2 tasks), each on a new connection, so either worker may take
it. VmRSS of the master and of each worker comes from /proc (Linux only). The
first build in a worker pays the one-time import of the pipeline and the
`openai` package, which is most of the growth. Prints numbers; never passes or
fails on size. Run: uv run --dev python -m bench.memory [--builds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.report import SummaryRow, machine, table
from bench.service import ServedProcess, rss_mb, sample_build, served
from tests.conftest import MODEL_KEY
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY


@dataclass(frozen=True)
class Snapshot:
    """RSS in MiB of the master and of each worker (by pid) at one moment."""

    label: str
    master: float
    workers: dict[int, float]


def snapshot(service: ServedProcess, label: str) -> Snapshot:
    """Read the RSS of the master and every worker now."""
    return Snapshot(label, rss_mb(service.process.pid), {pid: rss_mb(pid) for pid in service.worker_pids()})


def measure(builds: int, workers: int) -> tuple[list[Snapshot], int]:
    """Snapshots at start, after one build and after ``builds`` builds; and how many builds succeeded."""
    ok = 0
    with ScriptedModel(api_key=MODEL_KEY) as model, EvaluationReceiver() as receiver, \
            served(model.base_url, WEB_CONCURRENCY=str(workers)) as service:
        snapshots = [snapshot(service, "at start")]
        for index in range(builds):
            round_number = 1 + index % 2
            model.enqueue(ROUND1_REPLY if round_number == 1 else ROUND2_REPLY)
            response = service.post(sample_build(index // 2, round_number, receiver.notify_url))
            ok += response.status_code == 200 and response.json().get("status") == "success"
            if index == 0:
                snapshots.append(snapshot(service, "after 1 build"))
        snapshots.append(snapshot(service, f"after {builds} builds"))
    return snapshots, ok


def report(snapshots: list[Snapshot], ok: int, builds: int) -> str:
    """RSS per process and moment as a table."""
    pids = sorted({pid for s in snapshots for pid in s.workers})
    rows = [[s.label, f"{s.master:.1f}", *(f"{s.workers[p]:.1f}" if p in s.workers else "gone" for p in pids)]
            for s in snapshots]
    headers = ["RSS MiB", "master", *(f"worker {i + 1}" for i in range(len(pids)))]
    return (f"Memory ({builds} builds, {ok} succeeded; {machine()})\n\n" + table(headers, rows))


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (the same 20 builds in quick mode)."""
    builds = 20
    snapshots, ok = measure(builds, workers=2)
    print(report(snapshots, ok, builds))
    start, first, last = (max(s.workers.values()) for s in snapshots)
    return [SummaryRow(f"RSS per worker after {builds} builds ({ok} ok; largest of 2)",
                       f"{last:.1f} MiB (start {start:.1f}, 1 build {first:.1f})")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(report(*measure(args.builds, args.workers), args.builds))


if __name__ == "__main__":
    main()
