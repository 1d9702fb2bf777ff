"""Computed derive blocks next to plain conversions: what a `js:` function costs, cold and warm.

Measures, on the same data, a plain derive (1,000-row CSV to JSON; the
3,000-filing SEC-shaped JSON copied) and computed ones (the CSV's total and top
3 by group; the SEC document's max and min after 2020; a 100,000-row CSV's
total; a 20 MB CSV's total, with the worker's memory growth), each through
``utils.model.derived.derive_files`` as generation calls it: the first
computed block of a build pays for launching Chromium, later ones reuse it.
Also the time a runaway function costs (the sandbox's timeout) and how soon
the next one runs. Quick mode (CI) and a machine without Chromium
run the conversions only. Prints numbers; never passes or fails on time.
Run: uv run --dev python -m bench.derive_scripts [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence

from bench.report import SummaryRow
from utils.checks.availability import usable_chromium
from utils.checks.sandbox import Sandbox
from utils.model.derived import Scripts, Source, derive_files

TOP3 = """js: |
  (rows) => {
    const byRegion = {};
    for (const row of rows) byRegion[row.region] = (byRegion[row.region] || 0) + row.sales;
    const top3 = Object.entries(byRegion).sort((a, b) => b[1] - a[1]).slice(0, 3);
    return {total: rows.reduce((sum, row) => sum + row.sales, 0), top3};
  }"""
MAX_MIN = """js: |
  (doc) => {
    const rows = doc.units.shares.filter(r => String(r.fy) > "2020");
    const max = rows.reduce((a, b) => (b.val > a.val ? b : a));
    const min = rows.reduce((a, b) => (b.val < a.val ? b : a));
    return {max: {val: max.val, fy: String(max.fy)}, min: {val: min.val, fy: String(min.fy)}};
  }"""
TOTAL = "js: (rows) => ({total: rows.reduce((sum, row) => sum + row.sales, 0)})"


def sales_csv(rows: int) -> bytes:
    """A sales CSV of ``rows`` rows (id, region, sales)."""
    pick = random.Random(rows)
    lines = ["id,region,sales"] + [f"{n},{pick.choice('NSEWC')},{pick.randrange(1, 100_000)}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def filings(count: int) -> bytes:
    """An SEC-shaped companyconcept document with ``count`` share filings."""
    pick = random.Random(count)
    shares = [{"end": f"{2009 + n * 16 // count}-06-30", "val": pick.randrange(10**8, 10**9),
               "accn": f"0000875045-{n:08d}", "fy": 2009 + n * 16 // count, "fp": "FY", "form": "10-K",
               "filed": f"{2009 + n * 16 // count}-10-30"} for n in range(count)]
    return json.dumps({"entityName": "Biogen Inc.", "units": {"shares": shares}}).encode()


SOURCES = {"sales.csv": Source("sales.csv", sales_csv(1_000)), "concept.json": Source("concept.json", filings(3_000)),
           "big.csv": Source("big.csv", sales_csv(100_000))}
HUGE_ROWS = 1_200_000  # about 20 MB of CSV: the attachment limit


def block(target: str, source: str, script: str = "") -> tuple[str, str]:
    """A (target, derive block body) pair as a parsed reply holds it."""
    return target, f"from: {source}\n{script}\n" if script else f"from: {source}\n"


def one(blocks: list[tuple[str, str]], scripts: Scripts | None) -> None:
    """Derive ``blocks``; a problem is a bug in the benchmark."""
    files, problems = derive_files(blocks, SOURCES, scripts=scripts)
    if problems:
        raise RuntimeError(problems)


def median_ms(action: Callable[[], object], runs: int) -> float:
    """The median wall time of ``action`` in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def conversions(runs: int) -> dict[str, float]:
    """Median ms of the plain derives."""
    return {"csv -> json (1,000 rows)": median_ms(lambda: one([block("s.json", "sales.csv")], None), runs),
            "json copy (3,000 filings)": median_ms(lambda: one([block("c.json", "concept.json")], None), runs),
            "csv -> json (100,000 rows)": median_ms(lambda: one([block("b.json", "big.csv")], None), max(1, runs // 3))}


LABELS = {"first": "first of a build, with Chromium's launch (total + top 3, 1,000 rows)",
          "top3": "total + top 3 by group (1,000 rows)", "maxmin": "max and min after 2020 (3,000 filings)",
          "big": "total (100,000 rows)", "runaway": "runaway function: stopped after (limit 10 s)",
          "after": "the next function after a runaway (total + top 3)",
          "huge": f"total of a {HUGE_ROWS:,}-row CSV", "huge_rss": "the worker's peak RSS growth for it (MiB)"}


def computed(chromium: str, runs: int) -> dict[str, float]:
    """Ms of the computed derives (medians; the first one with Chromium's launch), and a runaway function's cost."""
    numbers: dict[str, float] = {}
    with Sandbox(chromium) as sandbox:
        started = time.perf_counter()
        one([block("s.json", "sales.csv", TOP3)], Scripts(sandbox))
        numbers["first"] = (time.perf_counter() - started) * 1000
        numbers["top3"] = median_ms(lambda: one([block("s.json", "sales.csv", TOP3)], Scripts(sandbox)), runs)
        numbers["maxmin"] = median_ms(lambda: one([block("c.json", "concept.json", MAX_MIN)], Scripts(sandbox)), runs)
        numbers["big"] = median_ms(lambda: one([block("b.json", "big.csv", TOTAL)], Scripts(sandbox)),
                                   max(1, runs // 3))
        started = time.perf_counter()
        derive_files([block("x.json", "sales.csv", "js: (rows) => { while (true) {} }")], SOURCES,
                     scripts=Scripts(sandbox))
        numbers["runaway"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        one([block("s.json", "sales.csv", TOP3)], Scripts(sandbox))
        numbers["after"] = (time.perf_counter() - started) * 1000
        numbers.update(huge(sandbox))
    return numbers


def huge(sandbox: Sandbox) -> dict[str, float]:
    """A computed total over about 20 MB of CSV: its time and how much the worker's peak RSS grew."""
    data = sales_csv(HUGE_ROWS)
    print(f"huge CSV: {len(data) / 1e6:.1f} MB")
    before = _reset_peak_rss()
    started = time.perf_counter()
    files, problems = derive_files([block("t.json", "huge.csv", TOTAL)], {"huge.csv": Source("huge.csv", data)},
                                   scripts=Scripts(sandbox))
    seconds = time.perf_counter() - started
    print(f"huge CSV: {problems or files['t.json'].decode().strip()}")
    grown = (_status_kib("VmHWM") - before) / 1024
    return {"huge": seconds * 1000, "huge_rss": grown}


def _status_kib(field: str) -> int:
    """A size from /proc/self/status in KiB (VmRSS now, VmHWM the peak); the rusage peak elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS where Linux allows it; the current RSS in KiB."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def summary(quick: bool) -> list[SummaryRow]:
    """Print every figure; return the summary rows (quick mode or no Chromium: conversions only)."""
    runs = 3 if quick else 9
    plain = conversions(runs)
    for name, ms in plain.items():
        print(f"plain derive, {name}: {ms:.1f} ms (median of {runs})")
    rows = [SummaryRow("derive: plain csv -> json, 1,000 / 100,000 rows",
                       f"{plain['csv -> json (1,000 rows)']:.1f} / {plain['csv -> json (100,000 rows)']:.0f} ms")]
    chromium = None if quick else usable_chromium()
    if chromium is None:
        print("computed derives: skipped (" + ("quick mode" if quick else "no usable Chromium") + ")")
        return rows
    numbers = computed(chromium, runs)
    for key, value in numbers.items():
        print(f"computed derive, {LABELS[key]}: {value:.0f}" + ("" if key == "huge_rss" else " ms"))
    return rows + [
        SummaryRow("derive: computed total + top 3, 1,000 rows (first, with launch / warm)",
                   f"{numbers['first']:.0f} / {numbers['top3']:.0f} ms"),
        SummaryRow("derive: computed max/min of 3,000 filings / total of 100,000 rows (warm)",
                   f"{numbers['maxmin']:.0f} / {numbers['big']:.0f} ms"),
        SummaryRow("derive: runaway function stopped / next function", f"{numbers['runaway'] / 1000:.1f} s / "
                   f"{numbers['after']:.0f} ms", "stopped at 10 s"),
        SummaryRow(f"derive: computed total of a {HUGE_ROWS:,}-row CSV (~20 MB): time, worker RSS growth",
                   f"{numbers['huge'] / 1000:.1f} s, {numbers['huge_rss']:.0f} MiB"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for row in summary(args.quick):
        print(f"{row.measure}: {row.value}")


if __name__ == "__main__":
    main()
