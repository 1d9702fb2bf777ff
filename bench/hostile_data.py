"""Hostile data (issue 23): each hostile document next to an honest one of about the same size, then five at once.

Part 1, readers: every case runs in a fresh interpreter (``--case NAME``):
seconds, the peak of Python memory the operation allocated in the worker
(tracemalloc), and for documents read in a child process that child's own peak
resident memory (the same bytes fed to ``utils.intake.reader_child`` from a
small launcher, whose ``RUSAGE_CHILDREN`` is then the child's alone), and what
came out (read, refused with its reason, or crashed in the child). The honest twin shows what an
ordinary document of that size costs, the isolated-vs-in-process pair what the
child process costs.

Part 2, soak: starts `python main.py` (gunicorn, 1 worker), then sends five
hostile builds at once (the workbook that aborted the worker, a DOCX of empty
paragraphs, a 10 MB JSON attachment of ``{}``, JSON records that each bring a
new key behind a brief URL whose server drips its headers, a CSV header
repeating one name) plus 16 held 25 MB POSTs to /health, while /health is
probed every 0.25 s. Prints each answer and its seconds against the deadline,
whether the worker was restarted, /health latency, and the growth of the
service's resident memory (master, worker and reader children). Numbers only.
Run: uv run --dev python -m bench.hostile_data [--quick]
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.report import SummaryRow, machine, percentile, table
from bench.service import ROOT, children, rss_mb, served
from tests.conftest import MODEL_KEY
from tests.hostile_documents import (
    container_json,
    empty_paragraphs_docx,
    far_corner_xlsx,
    honest_docx,
    honest_records,
    honest_xlsx,
    new_key_records,
    repeated_header_csv,
    unreferenced_far_xlsx,
)

DEADLINE_SECONDS = 60
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# ---------------------------------------------------------------- part 1: one document per interpreter

def _honest_csv(size: int) -> bytes:
    """An ordinary CSV of about ``size`` bytes."""
    rows = ["day,region,units,price"] + [f"{n},region {n % 7},{n * 3},{n * 1.25}" for n in range(size // 24)]
    return ("\n".join(rows) + "\n").encode()


def _sized_honest_xlsx(size: int) -> bytes:
    """An ordinary workbook whose file is at least ``size`` bytes."""
    rows = 10
    while len(data := honest_xlsx(rows)) < size:
        rows = rows * 2
    return data


def _sized_honest_docx(size: int) -> bytes:
    """An ordinary DOCX whose file is at least ``size`` bytes."""
    paragraphs = 100
    while len(data := honest_docx(paragraphs)) < size:
        paragraphs = paragraphs * 2
    return data


def _render(data: bytes, kind: str) -> str:
    """What the model would be shown of ``data`` as an attachment of ``kind``, first line only."""
    from utils.intake.attachments import decode_attachments
    from utils.model.source_data import render_source_data
    from utils.records import AttachmentRef

    name = {"xlsx": "data.xlsx", "docx": "report.docx", "json": "data.json"}[kind]
    url = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
    attachments = decode_attachments([AttachmentRef(name, url)])
    if kind == "json":
        return attachments.files[0].preview.splitlines()[1]
    text = render_source_data([], attachments, "")
    return next((line for line in text.splitlines()[1:] if line.strip()), "")


def _fetched_table(data: bytes) -> str:
    """The record table a large fetched JSON becomes in the prompt, summarised."""
    from utils.intake.fetch import FetchedDocument
    from utils.model.source_data import render_source_data
    from utils.records import Attachments

    document = FetchedDocument(url="http://data.example/rows.json", final_url="http://data.example/rows.json",
                               status=200, content_type="application/json", data=data)
    text = render_source_data([document], Attachments(), "rows")
    return next((line for line in text.splitlines() if line.startswith("Array")), "no table")[:90]


def _derive(data: bytes, source: str, target: str) -> str:
    """Derive ``target`` from ``data`` named ``source``: its size, or the problem."""
    from utils.model.derived import Source, derive_files

    files, problems = derive_files([(target, f"from: {source}")], {source: Source(source, data)})
    return f"{len(files[target]):,} bytes derived" if files else problems[0][:90]


def _in_process_tables(data: bytes) -> str:
    """The honest workbook read in this process (what a worker did before issue 23)."""
    from utils.intake.documents import tables_in_this_process

    return f"{len(tables_in_this_process(data)[0].rows)} rows (in process)"


CASES: dict[str, tuple[Callable[[], bytes], Callable[[bytes], str]]] = {
    "xlsx far corner (A1 + XFD1048576)": (far_corner_xlsx, lambda d: _render(d, "xlsx")),
    "xlsx honest, same size": (lambda: _sized_honest_xlsx(len(far_corner_xlsx())), lambda d: _render(d, "xlsx")),
    "xlsx far row, cells without refs": (unreferenced_far_xlsx, lambda d: _render(d, "xlsx")),
    "xlsx honest, read in process": (lambda: _sized_honest_xlsx(len(far_corner_xlsx())), _in_process_tables),
    "docx 1M empty paragraphs": (empty_paragraphs_docx, lambda d: _render(d, "docx")),
    "docx honest, same size": (lambda: _sized_honest_docx(len(empty_paragraphs_docx())),
                               lambda d: _render(d, "docx")),
    "json 3.3M {} attachment (10 MB)": (lambda: container_json(3_300_000), lambda d: _render(d, "json")),
    "json honest records (10 MB)": (lambda: honest_records(150_000), lambda d: _render(d, "json")),
    "json records, new key each (229 KB) -> prompt": (lambda: new_key_records(12_000), _fetched_table),
    "json honest records (229 KB) -> prompt": (lambda: honest_records(3_300), _fetched_table),
    "json records, new key each (229 KB) -> csv": (lambda: new_key_records(12_000),
                                                   lambda d: _derive(d, "rows.json", "rows.csv")),
    "csv header repeating one name (32 KB) -> json": (lambda: repeated_header_csv(1_990),
                                                      lambda d: _derive(d, "p.csv", "p.json")),
    "csv honest (32 KB) -> json": (lambda: _honest_csv(32_000), lambda d: _derive(d, "p.csv", "p.json")),
}


CHILD_KINDS = {"xlsx": "spreadsheet", "docx": "docx"}
LAUNCHER = ("import resource, subprocess, sys; subprocess.run([sys.executable, '-m', 'utils.intake.reader_child', "
            "sys.argv[1], str(2**30)], input=sys.stdin.buffer.read(), capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def child_peak_mb(kind: str, data: bytes) -> float:
    """The reader child's own peak resident memory for ``data`` (0 when the case reads no document in a child)."""
    if kind not in CHILD_KINDS:
        return 0.0
    done = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD_KINDS[kind]], input=data, capture_output=True,
                          cwd=ROOT, timeout=120, check=False)
    return int(done.stdout.strip() or 0) / 1024


def run_case(name: str) -> None:
    """In a fresh interpreter: build the case's bytes, time the operation, print one JSON line."""
    import tracemalloc

    make, operation = CASES[name]
    data = make()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = operation(data)
    except Exception as exc:  # noqa: BLE001 - reported as the outcome
        outcome = f"{type(exc).__name__}: {exc}"[:90]
    seconds = time.perf_counter() - started
    worker_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    in_child = "in process" not in name and name.split()[0] in CHILD_KINDS and "not read:" not in outcome
    print(json.dumps({"bytes": len(data), "seconds": seconds, "outcome": outcome, "worker_mb": worker_mb,
                      "child_mb": child_peak_mb(name.split()[0], data) if in_child else 0.0}))


def measure_cases(names: list[str]) -> list[dict]:
    """Each case in its own interpreter."""
    results = []
    for name in names:
        done = subprocess.run([sys.executable, "-m", "bench.hostile_data", "--case", name], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        line = (done.stdout.strip().splitlines() or ["{}"])[-1]
        try:
            result = json.loads(line)
        except ValueError:
            result = {"outcome": f"the case's interpreter failed (exit {done.returncode}): {done.stderr[-200:]}"}
        results.append({"name": name, **result})
    return results


# ---------------------------------------------------------------- part 2: five at once against the service

class _HeaderDrip:
    """A server that sends its status line and headers one byte every 0.5 s (to whoever connects)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.socket.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 400:
                if self.stop.wait(0.5):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return


def _attachment_build(index: int, name: str, media_type: str, data: bytes, brief: str) -> dict:
    """A build request carrying one hostile attachment."""
    from bench.service import sample_build

    body = sample_build(index, 1, None)
    body["brief"] = brief
    body["attachments"] = [{"name": name, "url": f"data:{media_type};base64,{base64.b64encode(data).decode()}"}]
    return body


def soak(quick: bool) -> dict[str, object]:
    """Five hostile builds and 16 held POSTs to /health at once; answers, restarts, /health, memory growth."""
    from tests.fakes.openai_server import ScriptedModel
    from tests.sample_task import ROUND1_REPLY

    drip = _HeaderDrip()
    builds = [
        _attachment_build(1, "sales.xlsx", XLSX, far_corner_xlsx(), "Show the totals of sales.xlsx in #total-sales."),
        _attachment_build(2, "report.docx", DOCX, empty_paragraphs_docx(), "Summarise report.docx on the page."),
        _attachment_build(3, "big.json", "application/json", container_json(3_300_000), "Show big.json's size."),
        _attachment_build(4, "rows.json", "application/json", new_key_records(12_000),
                          f"Show rows.json and http://127.0.0.1:{drip.port}/rows.json as a table."),
        _attachment_build(5, "prices.csv", "text/csv", repeated_header_csv(1_990), "Show prices.csv as JSON."),
    ]
    with ScriptedModel(api_key=MODEL_KEY) as model, \
            served(model.base_url, DEADLINE_SECONDS=str(DEADLINE_SECONDS), FETCH_ALLOW_PRIVATE="true",
                   FETCH_TIMEOUT_SECONDS="3", WEB_THREADS="8", MAX_CONCURRENT_BUILDS="5") as service:
        model.default_reply = lambda _body: ROUND1_REPLY
        workers = service.worker_pids()
        start_mb = _tree_mb(service.process.pid)
        probes: list[float] = []
        peak = [start_mb]
        stop = threading.Event()
        threads = [threading.Thread(target=_probe, args=(service.url, probes, stop), daemon=True),
                   threading.Thread(target=_sample, args=(service.process.pid, peak, stop), daemon=True)]
        for thread in threads:
            thread.start()
        held = [_held_post(service.port) for _ in range(16)]

        def send(body: dict) -> tuple[str, float]:
            started = time.monotonic()
            try:
                answer = service.post(body, timeout=DEADLINE_SECONDS + 30)
                status = f"{answer.status_code} {answer.json().get('status', '')}"
            except (requests.RequestException, ValueError) as exc:
                status = type(exc).__name__
            return status, time.monotonic() - started

        with ThreadPoolExecutor(len(builds)) as pool:
            answers = list(pool.map(send, builds))
        time.sleep(1)
        stop.set()
        for sock in held:
            sock.close()
        restarted = service.worker_pids() != workers or service.log().count("Booting worker") > len(workers)
    drip.stop.set()
    return {"answers": answers, "restarted": restarted, "probes": probes, "start_mb": start_mb, "peak_mb": peak[0]}


def _held_post(port: int) -> socket.socket:
    """A POST to /health that declares 25 MB and sends none of it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 26214400\r\n\r\n")
    return sock


def _probe(url: str, probes: list[float], stop: threading.Event) -> None:
    """GET /health every 0.25 s on a fresh connection; record seconds (a timeout counts as 5 s)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            requests.get(f"{url}/health", timeout=5, headers={"Connection": "close"})
            probes.append(time.monotonic() - started)
        except requests.RequestException:
            probes.append(5.0)
        stop.wait(0.25)


def _tree_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += rss_mb(current)
        except OSError:
            continue
        pending.extend(children(current))
    return total


def _sample(pid: int, peak: list[float], stop: threading.Event) -> None:
    """Track the largest resident memory of the service's process tree."""
    while not stop.is_set():
        peak[0] = max(peak[0], _tree_mb(pid))
        stop.wait(0.1)


# ---------------------------------------------------------------- reporting

def summary(quick: bool) -> list[SummaryRow]:
    """Print both parts; summary rows for the bench table."""
    print(machine())
    results = measure_cases(list(CASES))
    print(table(["case", "bytes", "s", "worker MiB (Python)", "child MiB", "outcome"],
                [[r["name"], f"{r.get('bytes', 0):,}", f"{r.get('seconds', 0):.2f}", f"{r.get('worker_mb', 0):.0f}",
                  f"{r.get('child_mb', 0):.0f}", r.get("outcome", "")[:70]] for r in results], left=1))
    rows = [SummaryRow(f"hostile data: {r['name']}", f"{r.get('seconds', 0):.2f} s, "
                       f"{r.get('worker_mb', 0):.0f}+{r.get('child_mb', 0):.0f} MiB") for r in results]
    result = soak(quick)
    answers = result["answers"]
    probes = result["probes"]
    print(f"\nfive hostile builds at once (deadline {DEADLINE_SECONDS} s):")
    for (status, seconds), name in zip(answers, ["xlsx far corner", "docx empty paragraphs", "json 10 MB of {}",
                                                 "json new keys + dripping fetch", "csv repeated header"],
                                       strict=True):
        print(f"  {name:34} {status:12} {seconds:6.1f} s")
    growth = result["peak_mb"] - result["start_mb"]
    print(f"worker restarted: {result['restarted']}; /health probes {len(probes)}, p50 "
          f"{percentile(probes, 50) * 1000:.0f} ms, max {max(probes, default=0) * 1000:.0f} ms; "
          f"service memory {result['start_mb']:.0f} -> peak {result['peak_mb']:.0f} MiB (+{growth:.0f})")
    slowest = max(seconds for _status, seconds in answers)
    ok = sum(status.startswith("200") for status, _seconds in answers)
    rows += [SummaryRow("five hostile builds at once: answered 200, slowest", f"{ok}/5, {slowest:.1f} s",
                        f"5/5 within {DEADLINE_SECONDS} s"),
             SummaryRow("five hostile builds at once: worker restarted", str(result["restarted"]), "False"),
             SummaryRow("five hostile builds at once: /health max", f"{max(probes, default=0) * 1000:.0f} ms",
                        "< 2000 ms"),
             SummaryRow("five hostile builds at once: memory growth", f"+{growth:.0f} MiB", "< 700 MiB")]
    return rows


def main() -> None:
    """Run one case (``--case``, used by ``measure_cases``) or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(CASES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    print(table(["measure", "value", "target"], [[r.measure, r.value, r.target] for r in summary(args.quick)],
                left=1))


if __name__ == "__main__":
    main()
