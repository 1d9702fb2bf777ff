"""Shared reporting for the benchmarks: percentiles, fixed-width tables, the machine line, summary rows.

Only formats numbers the benchmarks measured; never measures anything itself and
never turns a number into a pass or a failure.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary table: what was measured, the value, and the target it is read against."""

    measure: str
    value: str
    target: str = "-"


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of ``values`` (``percent`` in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def spread_ms(values: Sequence[float]) -> list[str]:
    """Median, p95, p99 and max of seconds, as millisecond cells."""
    if not values:
        return ["-"] * 4
    return [f"{statistics.median(values) * 1000:.1f}", f"{percentile(values, 95) * 1000:.1f}",
            f"{percentile(values, 99) * 1000:.1f}", f"{max(values) * 1000:.1f}"]


SPREAD_HEADERS = ["p50 ms", "p95 ms", "p99 ms", "max ms"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A fixed-width text table: the first ``left`` columns left-aligned, the others right-aligned (numbers)."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                         for i, (cell, width) in enumerate(zip(row, widths, strict=False))).rstrip()

    return "\n".join([line(cells[0]), "-" * len(line(cells[0])), *(line(row) for row in cells[1:])])


def machine() -> str:
    """Today's date, the OS, the core count, Python's version and the current load average."""
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return (f"{date.today().isoformat()}, {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}{load}")
