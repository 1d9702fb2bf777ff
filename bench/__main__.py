"""Run every benchmark and print one summary table: measure, value, target.

`uv run --dev python -m bench` runs them all (a few minutes on 2 cores, the browser
self-check included); `--quick` runs fewer repetitions and skips the self-check
(under about two minutes; what CI runs). Each benchmark prints its own details
first. A missed target never changes the exit status: the numbers are for
people to read. A benchmark that crashes is reported in the table and makes the
exit status 1, since the benchmark code is ours and a crash is a bug (or a
service that no longer builds). Offline: every server binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

os.environ.setdefault("LOG_LEVEL", "ERROR")  # `import main` (via tests.conftest) logs its configuration otherwise

from bench.report import SummaryRow, machine, table  # after LOG_LEVEL: main reads it on import

BENCHMARKS = ("import_time", "round_trip", "github_rounds", "memory", "concurrency", "notify_latency", "failover",
              "bounded_waits", "slow_clients", "json_bombs", "selfcheck", "source_data", "derive_scripts", "tasks",
              "durable_queue", "hostile_data", "grading")
FULL_ONLY = {"selfcheck", "tasks"}


def run(name: str, quick: bool) -> tuple[list[SummaryRow], bool]:
    """One benchmark's summary rows, and whether it ran without crashing."""
    print(f"\n=== {name} ===\n", flush=True)
    started = time.perf_counter()
    try:
        rows = importlib.import_module(f"bench.{name}").summary(quick)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any crash is reported, then the next one runs
        traceback.print_exc()
        return [SummaryRow(f"{name}: CRASHED", f"{type(exc).__name__}: {exc}"[:120])], False
    finally:
        print(f"\n({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    return rows, True


def markdown(rows: list[SummaryRow]) -> str:
    """The summary as a Markdown table (for bench/README.md)."""
    lines = ["| measure | value | target |", "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {r.measure} | {r.value} | {r.target} |" for r in rows])


def main() -> int:
    """Run the benchmarks, print the summary; 1 if any benchmark crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no browser self-check (CI)")
    parser.add_argument("--only", help="comma-separated benchmark names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--markdown", action="store_true", help="also print the summary as a Markdown table")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else [n for n in BENCHMARKS if not (args.quick and n in FULL_ONLY)]
    started = time.perf_counter()
    rows: list[SummaryRow] = []
    crashed = []
    for name in names:
        found, ok = run(name, args.quick)
        rows.extend(found)
        if not ok:
            crashed.append(name)
    total = time.perf_counter() - started
    print(f"\n=== summary ({'quick' if args.quick else 'full'} mode, {total:.0f} s; {machine()}) ===\n")
    print(table(["measure", "value", "target"], [[r.measure, r.value, r.target] for r in rows], left=3))
    if args.markdown:
        print("\n" + markdown(rows))
    print("\nTargets are read, never enforced: a slow number does not fail the run.")
    if crashed:
        print(f"CRASHED: {', '.join(crashed)} (a bug in the benchmark or a service that no longer builds)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
