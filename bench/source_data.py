"""Build-time data: fetch wall time (concurrent vs one by one), the address check's cost, the size cap,
and the time and size of what the model sees of large documents and workbooks.

Every site is a local fake (tests/fakes/data_site.py on 127.0.0.1, fetched with
the private-address allowance as tests do). Prints numbers; never passes or
fails on time.
Run: uv run --dev python -m bench.source_data [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

import requests

from bench.report import SummaryRow
from tests.fakes.data_site import DataSite, Document
from tests.fakes.faults import Delay
from tests.sample_documents import workbook_bytes
from utils.intake.documents import read_tables
from utils.intake.fetch import AddressGuard, FetchedDocument, FetchLimits, fetch_all
from utils.model.derived import DeriveRequest, Source, derive
from utils.model.source_data import render_source_data
from utils.records import Attachment, Attachments

ALLOW = AddressGuard(allow_private=True)


def _median_seconds(action: Callable[[], object], runs: int) -> float:
    """The median wall time of ``action`` over ``runs`` runs."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _concept(entries: int) -> bytes:
    """A company-concept document (SEC-like) with ``entries`` records."""
    shares = [{"end": f"{2000 + n % 25}-06-30", "val": 10**9 + n * 7919, "accn": f"0000320193-{n:08d}",
               "fy": 2000 + n % 25, "fp": "FY", "form": "10-K", "filed": f"{2000 + n % 25}-10-30"}
              for n in range(entries)]
    return json.dumps({"cik": 320193, "units": {"shares": shares}}).encode()


def fetch_numbers(runs: int) -> list[SummaryRow]:
    """Eight 1 MB documents (300 ms latency) fetched concurrently and one by one; the guard's cost; the cap."""
    big = _concept(8_000)
    # each answer starts 300 ms late, as a distant public API's would
    with DataSite({f"/doc{n}.json": Document(big, fault=Delay(0.3)) for n in range(8)}
                  | {"/small.json": Document(b"{}")} | {"/huge.csv": Document(b"x" * 50 * 1024 * 1024, "text/csv")}) \
            as site:
        urls = [f"{site.url}/doc{n}.json" for n in range(8)]
        together = _median_seconds(lambda: fetch_all(urls, guard=ALLOW, user_agent="bench"), runs)
        apart = _median_seconds(lambda: [fetch_all([u], guard=ALLOW, user_agent="bench") for u in urls], runs)
        small = f"{site.url}/small.json"
        guarded = _median_seconds(lambda: fetch_all([small], guard=ALLOW, user_agent="bench"), runs * 10)
        plain = _median_seconds(lambda: requests.get(small, timeout=5).content, runs * 10)
        started = time.perf_counter()
        [capped] = fetch_all([f"{site.url}/huge.csv"], guard=ALLOW, user_agent="bench", limits=FetchLimits())
        cap_seconds = time.perf_counter() - started
    print(f"8 x {len(big) / 1e6:.1f} MB JSON, 300 ms latency each: together {together * 1000:.0f} ms,"
          f" one by one {apart * 1000:.0f} ms")
    print(f"one small fetch: guarded session {guarded * 1000:.2f} ms, plain requests.get {plain * 1000:.2f} ms")
    print(f"50 MB body, 5 MB cap: kept {len(capped.data):,} bytes (truncated={capped.truncated}) in "
          f"{cap_seconds * 1000:.0f} ms")
    return [SummaryRow(f"fetch 8 x {len(big) / 1e6:.1f} MB (300 ms latency): concurrent vs one by one",
                       f"{together * 1000:.0f} vs {apart * 1000:.0f} ms"),
            SummaryRow("one small fetch: guarded session vs plain requests.get",
                       f"{guarded * 1000:.2f} vs {plain * 1000:.2f} ms"),
            SummaryRow("50 MB answer under the 5 MB cap: bytes kept, time", f"{len(capped.data):,}, "
                       f"{cap_seconds * 1000:.0f} ms", "5,242,880")]


def render_numbers(runs: int) -> list[SummaryRow]:
    """Rendering a 5 MB JSON document and a 10,000-row workbook for the prompt; deriving the CSV."""
    concept = _concept(40_000)
    document = FetchedDocument(url="https://example.org/c.json", final_url="https://example.org/c.json", status=200,
                               content_type="application/json", data=concept)
    tracemalloc.start()
    text = render_source_data([document], Attachments(), "units shares val fy")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    json_seconds = _median_seconds(lambda: render_source_data([document], Attachments(), "units shares"), runs)
    rows = [["id", "day", "region", "units", "price", "note"]] + [
        [n, f"2024-01-{n % 28 + 1:02d}", "North" if n % 2 else "South", n % 97, n * 0.25, None if n % 3 else "x"]
        for n in range(10_000)]
    xlsx = workbook_bytes({"Data": rows})
    book = Attachment(name="data.xlsx", path="data.xlsx", data=xlsx, media_type="application/octet-stream",
                      preview="")
    read_seconds = _median_seconds(lambda: read_tables(xlsx), runs)
    sheet_text = render_source_data([], Attachments(files=(book,)), "")
    derive_seconds = _median_seconds(
        lambda: derive(DeriveRequest("data.csv", "data.xlsx"), {"data.xlsx": Source("data.xlsx", xlsx)}), runs)
    print(f"{len(concept) / 1e6:.1f} MB JSON -> {len(text):,} prompt characters in {json_seconds * 1000:.0f} ms "
          f"(peak {peak / 2**20:.0f} MiB traced)")
    print(f"10,000-row XLSX ({len(xlsx) / 1e3:.0f} kB): read {read_seconds * 1000:.0f} ms, "
          f"{len(sheet_text):,} prompt characters, CSV derived in {derive_seconds * 1000:.0f} ms")
    return [SummaryRow(f"{len(concept) / 1e6:.1f} MB JSON for the prompt: chars, time, peak memory",
                       f"{len(text):,}, {json_seconds * 1000:.0f} ms, {peak / 2**20:.0f} MiB", "<= 120,000 chars"),
            SummaryRow("10,000-row XLSX: read, derive CSV", f"{read_seconds * 1000:.0f} ms, "
                       f"{derive_seconds * 1000:.0f} ms")]


def summary(quick: bool) -> list[SummaryRow]:
    """Run both parts and return the summary rows (quick mode: fewer runs)."""
    runs = 3 if quick else 7
    return fetch_numbers(runs) + render_numbers(runs)


def main(argv: Sequence[str] | None = None) -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for row in summary(args.quick):
        print(f"{row.measure}: {row.value}")


if __name__ == "__main__":
    main()
