"""JSON bombs against the real service: resident memory of the worker under concurrent bodies of tiny objects.

Starts `python main.py` (gunicorn, 1 worker) and sends `--bodies` concurrent
`--mb` MB bodies shaped `{"pad":[{},{},...]}` (with a wrong secret), the shape
that grew the service by about 3 GB before parsing was bounded. Prints the
worker's resident memory before, its peak (VmHWM) and after, the answers and
how long they took. Numbers only; never passes or fails.
Run: uv run python -m bench.json_bombs [--bodies 6] [--mb 20]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.report import SummaryRow, machine, table
from bench.service import rss_mb, served
from tests.conftest import MODEL_KEY
from tests.fakes.openai_server import ScriptedModel


def bomb(megabytes: int) -> bytes:
    """A body of about ``megabytes`` MB of empty objects in one list, with a wrong secret."""
    count = megabytes * 1024 * 1024 // 3
    return b'{"secret": "wrong", "pad": [' + b",".join([b"{}"] * count) + b"]}"


def peak_mb(pid: int) -> float:
    """The peak resident memory of ``pid`` in MiB (VmHWM of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(bodies: int, megabytes: int) -> dict[str, object]:
    """Send ``bodies`` bombs at once; memory and answers."""
    body = bomb(megabytes)
    with ScriptedModel(api_key=MODEL_KEY) as model, served(model.base_url, WEB_THREADS="8") as service:
        worker = service.worker_pids()[0]
        before, before_peak = rss_mb(worker), peak_mb(worker)
        started = time.monotonic()

        def send(_index: int) -> str:
            try:
                response = requests.post(f"{service.url}/api-endpoint", data=body, timeout=300,
                                         headers={"Content-Type": "application/json", "Connection": "close"})
                return str(response.status_code)
            except requests.RequestException as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(bodies) as pool:
            answers = list(pool.map(send, range(bodies)))
        seconds = time.monotonic() - started
        alive = service.process.poll() is None and worker in service.worker_pids()
        after = rss_mb(worker) if alive else 0.0
        peak = peak_mb(worker) if alive else 0.0
    return {"before": before, "before_peak": before_peak, "peak": peak, "after": after, "answers": answers,
            "seconds": seconds, "alive": alive, "bytes": len(body)}


def report(result: dict[str, object], bodies: int) -> list[SummaryRow]:
    """Print the table; the summary rows."""
    print(machine())
    print(table(["bodies", "MB each", "RSS before MiB", "peak MiB", "growth MiB", "RSS after MiB", "answers",
                 "seconds"],
                [[str(bodies), f"{int(result['bytes']) / 1e6:.1f}", f"{result['before']:.0f}",
                  f"{result['peak']:.0f}", f"{float(result['peak']) - float(result['before']):.0f}",
                  f"{result['after']:.0f}", ",".join(result["answers"]), f"{result['seconds']:.1f}"]]))
    if not result["alive"]:
        print("the worker died (out of memory?)")
    growth = float(result["peak"]) - float(result["before"])
    return [SummaryRow(f"worker peak growth, {bodies} JSON bombs at once", f"{growth:.0f} MiB", "< 500 MiB"),
            SummaryRow("JSON bomb answers", ",".join(result["answers"]), "400 each")]


def summary(quick: bool) -> list[SummaryRow]:
    """Run with the defaults (smaller bodies when ``quick``) and return the summary rows."""
    bodies, megabytes = (3, 10) if quick else (6, 20)
    return report(measure(bodies, megabytes), bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=6, help="concurrent bodies")
    parser.add_argument("--mb", type=int, default=20, help="size of each body in MB")
    args = parser.parse_args()
    report(measure(args.bodies, args.mb), args.bodies)


if __name__ == "__main__":
    main()
