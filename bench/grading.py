"""How long `check_config.py --round-trip` takes to grade a deployment, phase by phase.

Runs the round trip's own pieces (``utils.grading``) against the real service
on loopback (scripted model answering at once, local publisher, sync answers):
send and follow, the dulwich clone over the local publisher's dumb HTTP, the
page check, and (full mode, when Chromium and Playwright are here) the
sample's JavaScript checks in the grader's own browser. Prints numbers; never
passes or fails on time. Run: uv run --dev python -m bench.grading [--runs N] [--no-browser]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import SPREAD_HEADERS, SummaryRow, machine, spread_ms, table
from main import create_app
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from tests.graded_task import files_reply
from utils.checks.availability import usable_chromium
from utils.config import load_config
from utils.grading.client import send_and_follow
from utils.grading.grade import PASS, browser_rows, page_row, repository_rows
from utils.grading.tasks import SAMPLE_TASK, fresh_request
from utils.intake.validation import parse_checks

SAMPLE_APP = files_reply({
    "index.html": '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Round trip</title></head>'
                  '<body><p id="greeting">Hello</p><a href="notes.txt">notes</a></body></html>',
    "notes.txt": "ready\n", "README.md": "# Round trip\n"})


def measure(runs: int, browser: bool) -> dict[str, list[float]]:
    """Seconds per phase over ``runs`` round trips; every verdict must pass (a failure is a crash)."""
    samples: dict[str, list[float]] = {}
    chromium = usable_chromium() if browser else None
    with tempfile.TemporaryDirectory() as data, ScriptedModel(api_key=MODEL_KEY) as model:
        config = load_config({"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
                              "DATA_DIR": str(Path(data) / "service"), "SELF_CHECK": "off", "LOG_LEVEL": "ERROR"})
        with LocalServer(create_app(config)) as service:
            for run in range(runs):
                model.enqueue(SAMPLE_APP)
                body = fresh_request(SAMPLE_TASK, SECRET, None)
                phases = {}
                started = time.perf_counter()
                outcome = send_and_follow(service.url, body, timeout=60)
                phases["send and follow"] = time.perf_counter() - started
                result = outcome.body
                mark = time.perf_counter()
                rows, _ = repository_rows(result["repo_url"], result["commit_sha"], body["brief"],
                                          Path(data) / f"clone-{run}")
                phases["clone and read the commit"] = time.perf_counter() - mark
                mark = time.perf_counter()
                rows.append(page_row(result["pages_url"]))
                phases["page answers"] = time.perf_counter() - mark
                if chromium:
                    mark = time.perf_counter()
                    rows += browser_rows(result["pages_url"], [(c, "js") for c in parse_checks(body["checks"])],
                                         chromium)
                    phases["JavaScript checks in the grader's browser"] = time.perf_counter() - mark
                phases["whole round trip"] = time.perf_counter() - started
                failed = [row for row in rows if row.verdict != PASS]
                if outcome.status != "success" or failed:
                    raise RuntimeError(f"the sample did not pass: {outcome.detail} {failed}")
                for name, seconds in phases.items():
                    samples.setdefault(name, []).append(seconds)
    return samples


def report(samples: dict[str, list[float]], runs: int) -> str:
    """The per-phase spread as a table."""
    rows = [[name, *spread_ms(values)] for name, values in samples.items()]
    return f"Round trip grading ({runs} runs of the sample task; {machine()})\n\n" + table(["phase", *SPREAD_HEADERS],
                                                                                          rows)


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (quick: no browser)."""
    runs = 3 if quick else 10
    samples = measure(runs, browser=not quick)
    print(report(samples, runs))
    whole = statistics.median(samples["whole round trip"]) * 1000
    clone = statistics.median(samples["clone and read the commit"]) * 1000
    shown = "with" if "JavaScript checks in the grader's browser" in samples else "without"
    return [SummaryRow(f"--round-trip on loopback, sample task, {shown} browser (median of {runs})",
                       f"{whole:.0f} ms (clone {clone:.0f} ms)", "-")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    print(report(measure(args.runs, browser=not args.no_browser), args.runs))


if __name__ == "__main__":
    main()
