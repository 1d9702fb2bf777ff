"""Self-check stage: how many broken apps the repair loop rescues, and the time the stage adds.

Six small graded tasks (the sample sales task's two rounds, three small
apps: a query-string greeter, a counter, a Markdown previewer using a CDN
library, and a one-slip quiet page whose title decorates the entity name),
each generated broken (a JavaScript error, a wrong fetch path or a
revision that breaks a previous round's check) and fixed by the scripted
model's single repair reply. For each task the stage runs twice: on the broken
app (repairs allowed) and on the already-correct app (nothing to repair). It
prints per task the checks before and after, the repairs and the seconds, then
how many were rescued and the median time the stage adds in both cases.

Needs Chromium (CHROMIUM_PATH or a well-known install); CDN URLs go to the
stand-ins of tests/fixtures/cdn and every other host is cut off, so nothing
leaves the machine. The model is the scripted local server (instant), so the
times are the browser's. Prints numbers; never passes or fails on time.
Run: uv run --dev python -m bench.selfcheck [--check-timeout 15]
"""

from __future__ import annotations

import argparse
import logging
import statistics
from dataclasses import dataclass, field

from bench.report import SummaryRow, machine, table
from tests.fakes.openai_server import ScriptedModel
from tests.fixtures import cdn_routes
from tests.sample_task import (
    ROUND1_BRIEF,
    ROUND1_CHECKS,
    ROUND1_REPLY,
    ROUND2_BRIEF,
    ROUND2_CHECKS,
    ROUND2_REPLY,
    SALES_CSV,
)
from utils.checks.browser import find_chromium
from utils.checks.selfcheck import CheckSubject, SelfCheckOptions, SelfCheckReport, self_check
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.intake.validation import parse_checks
from utils.model.edits import apply_reply
from utils.model.llm import ModelClient
from utils.records import Check

MODEL_KEY = "bench-model-key"


@dataclass(frozen=True)
class Task:
    """One graded task: its broken first version, the reply that fixes it, and how it is graded."""

    name: str
    broken: dict[str, bytes]
    fix: str
    checks: tuple[Check, ...]
    brief: str
    previous_checks: tuple[Check, ...] = ()
    protected: tuple[str, ...] = field(default=("data.csv",))

    def fixed(self) -> dict[str, bytes]:
        """The app as it should have been generated."""
        applied = apply_reply(self.fix, self.broken, self.protected)
        assert not applied.blocking, applied.blocking
        return applied.files


def edit(path: str, search: str, replace: str) -> str:
    """A reply holding one SEARCH/REPLACE edit."""
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def reply_files(reply: str, base: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The files a reply produces on top of ``base``."""
    return apply_reply(reply, base or {}).files


def sales_round1() -> Task:
    """The sample task, round 1, generated with a wrong attachment path."""
    good = {**reply_files(ROUND1_REPLY), "data.csv": SALES_CSV}
    broken = {**good, "app.js": good["app.js"].replace(b"./data.csv", b"./sales.csv")}
    fix = edit("app.js", "  const response = await fetch('./sales.csv');",
               "  const response = await fetch('./data.csv');")
    return Task("sales round 1 (wrong fetch path)", broken, fix, parse_checks(ROUND1_CHECKS), ROUND1_BRIEF)


def sales_round2() -> Task:
    """The sample task, round 2, whose revision renamed an element a round-1 check needs."""
    round1 = {**reply_files(ROUND1_REPLY), "data.csv": SALES_CSV}
    good = reply_files(ROUND2_REPLY, round1)
    broken = {**good, "index.html": good["index.html"].replace(b'id="total-sales"', b'id="total"')}
    fix = edit("index.html", '  <p>Total sales: <strong id="total">…</strong></p>',
               '  <p>Total sales: <strong id="total-sales">…</strong></p>')
    return Task("sales round 2 (regression)", broken, fix, parse_checks(ROUND2_CHECKS), ROUND2_BRIEF,
                previous_checks=parse_checks(ROUND1_CHECKS))


GREETER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Greeter</title></head>
<body><h1 id="greeting"></h1>
<script>
const params = new URLSearchParams(location.search);
document.querySelector('#greeting').textContent = 'Hello, ' + (params.get('nme') || 'world') + '!';
</script></body></html>
"""

COUNTER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clicks</title></head>
<body><button id="add">Add</button> <output id="count">0</output>
<script src="counter.js"></script></body></html>
"""
COUNTER_JS = """let count = 0;
const output = document.querySelector('#cuont');
document.querySelector('#add').addEventListener('click', () => { output.textContent = ++count; });
output.textContent = count;
window.counterReady = true;
"""

PREVIEW = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Markdown preview</title>
<script src="https://unpkg.com/marked@12.0.2/marked.min.js"></script></head>
<body><div id="preview"></div>
<script>
fetch('./notes.md').then(r => r.text()).then(text => {
  document.querySelector('#preview').innerHTML = marked(text);
});
</script></body></html>
"""


def small_tasks() -> list[Task]:
    """Three small apps, each with one typical mistake."""
    greeter = Task(
        "greeter ?name= (wrong parameter)", {"index.html": GREETER.encode()},
        edit("index.html", GREETER.splitlines()[5], GREETER.splitlines()[5].replace("'nme'", "'name'")),
        (Check("Opening ?name=Ada greets Ada", "document.querySelector('#greeting').textContent === 'Hello, Ada!'"),),
        "Greet the visitor named by ?name= in #greeting, or the world.")
    counter = Task(
        "counter (TypeError)", {"index.html": COUNTER.encode(), "counter.js": COUNTER_JS.encode()},
        edit("counter.js", "const output = document.querySelector('#cuont');",
             "const output = document.querySelector('#count');"),
        (Check("The count starts at 0", "document.querySelector('#count').textContent === '0'"),
         Check("The counter is ready", "window.counterReady === true")),
        "A button #add that counts clicks into #count, starting at 0.")
    preview = Task(
        "markdown preview (old library API)",
        {"index.html": PREVIEW.encode(), "notes.md": b"# Notes\n\nHello from Markdown.\n"},
        edit("index.html", "  document.querySelector('#preview').innerHTML = marked(text);",
             "  document.querySelector('#preview').innerHTML = marked.parse(text);"),
        (Check("The notes are rendered", "document.querySelector('#preview h1')?.textContent === 'Notes'"),),
        "Render notes.md as HTML in #preview with marked 12.0.2 from unpkg.", protected=("notes.md",))
    return [greeter, counter, preview]


SHARES = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Biogen — ShareVolume</title></head>
<body><h1>Biogen</h1>
<p>Most shares: <span id="share-max-value">25000000</span> (FY <span id="share-max-fy">2021</span>)</p>
</body></html>
"""


def one_slip() -> Task:
    """A quiet page with one slip (the title decorated around the entity name), fixed by one repair."""
    return Task("one slip on a quiet page (title)", {"index.html": SHARES.encode()},
                edit("index.html", SHARES.splitlines()[1], SHARES.splitlines()[1].replace(" — ShareVolume", "")),
                (Check("The title is the entity name", "document.title === 'Biogen'"),
                 Check("The maximum is a bare number", "document.querySelector('#share-max-value').textContent "
                       "=== '25000000'")),
                "Show Biogen's share volumes; the title is the entity name.", protected=())


def run_task(task: Task, files: dict[str, bytes], scripted: ScriptedModel, client: ModelClient,
             chromium: str, check_timeout: float) -> SelfCheckReport:
    """One run of the stage on ``files``, the scripted model ready with the fix."""
    scripted.reset()
    scripted.enqueue(task.fix)
    subject = CheckSubject(task.checks, task.previous_checks, task.brief, protected=task.protected)
    options = SelfCheckOptions("required", chromium, repairs=2, check_timeout=check_timeout, route_cdn=cdn_routes())
    _, report = self_check(files, subject, repo_name="bench-" + task.name.split()[0], model=client,
                           deadline=Deadline(600), options=options)
    return report


def rescued(report: SelfCheckReport) -> bool:
    """Broken at first, passing every check without errors at the end."""
    first = report.versions[0] if report.versions else {}
    was_broken = first.get("failed", 0) > 0 or first.get("errors", 0) > 0
    return was_broken and report.after[1] == 0 and not report.errors


@dataclass(frozen=True)
class Outcome:
    """One task through the stage: broken (repairs allowed) and already correct."""

    task: Task
    broken: SelfCheckReport
    clean: SelfCheckReport


def measure(check_timeout: float) -> list[Outcome]:
    """Every task through the stage, broken then clean."""
    logging.disable(logging.CRITICAL)
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: install chromium or set CHROMIUM_PATH")
    outcomes = []
    with ScriptedModel(api_key=MODEL_KEY) as scripted:
        spec = ProviderSpec("openai", scripted.base_url, MODEL_KEY, "scripted-model", "OPENAI_API_KEY")
        client = ModelClient([spec], timeout=30, max_tokens=4000)
        for task in [sales_round1(), sales_round2(), *small_tasks(), one_slip()]:
            broken = run_task(task, task.broken, scripted, client, chromium, check_timeout)
            clean = run_task(task, task.fixed(), scripted, client, chromium, check_timeout)
            outcomes.append(Outcome(task, broken, clean))
    return outcomes


def report(outcomes: list[Outcome], check_timeout: float) -> str:
    """The per-task table and the summary lines."""
    rows = [[o.task.name, _pair(o.broken.before, o.broken.errors_before),
             _pair(o.broken.after, len(o.broken.errors)), o.broken.repairs, f"{o.broken.seconds:.2f}",
             f"{o.clean.seconds:.2f}"] for o in outcomes]
    saved = sum(rescued(o.broken) for o in outcomes)
    broken = statistics.median(o.broken.seconds for o in outcomes)
    clean = statistics.median(o.clean.seconds for o in outcomes)
    return (f"Self-check ({machine()})\n\n"
            + table(["task", "before", "after", "repairs", "broken s", "clean s"], rows)
            + f"\n\nrescued: {saved} of {len(outcomes)} broken apps (check timeout {check_timeout:g} s)"
            f"\none-slip build on a quiet page, self-check stage: {_one_slip_seconds(outcomes):.2f} s"
            f"\nmedian stage time, broken app repaired: {broken:.2f} s"
            f"\nmedian stage time, app right the first time: {clean:.2f} s")


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows (the runner skips it in quick mode)."""
    outcomes = measure(15.0)
    print(report(outcomes, 15.0))
    return [SummaryRow("self-check: broken apps rescued", f"{sum(rescued(o.broken) for o in outcomes)} of "
                       f"{len(outcomes)}"),
            SummaryRow("self-check stage, app right the first time (median)",
                       f"{statistics.median(o.clean.seconds for o in outcomes):.2f} s"),
            SummaryRow("self-check stage, one-slip build on a quiet page", f"{_one_slip_seconds(outcomes):.2f} s",
                       "< 12 s")]


def _one_slip_seconds(outcomes: list[Outcome]) -> float:
    """The stage time of the one-slip quiet-page task, repaired."""
    return next(o.broken.seconds for o in outcomes if o.task.name.startswith("one slip"))


def main() -> None:
    """Run every task broken and clean, and print the table and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-timeout", type=float, default=15.0, help="seconds a failing check is polled")
    args = parser.parse_args()
    print(report(measure(args.check_timeout), args.check_timeout))


def _pair(counts: tuple[int, int], errors: int) -> str:
    """passed/failed+errors as a short column."""
    return f"{counts[0]}/{counts[1]}+{errors}e"


if __name__ == "__main__":
    main()
