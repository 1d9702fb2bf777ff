"""Examine one version of an app: load every URL of a check plan in Chromium and merge what was found.

A check judged on several URLs passes only if it passed on each; errors of
every URL count (page errors, console errors, failed requests, a page that did
not load), written relative to the served base URL. Each visit stays open a
moment after the checks so late errors are seen, and ends with a bounded DOM
excerpt of what the checks look at (for a repair prompt). A version's score is
most checks passing, then fewest errors. Checks the plan marks as judged are
not loaded in a page: after the visits, the examiner's ``judge`` (the judging
model call, ``utils.checks.judge``) gives their verdicts; a check without a
verdict (``passed`` None) neither passes nor fails. ``files`` checks are
evaluated on the version's files in the sandbox (``utils.checks.repo_checks``;
unverified without one); ``run`` checks wait for the workflow run after
publishing (``passed`` None here).

Never logs, stores or sends page contents anywhere; it only returns them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from utils.checks.browser import CheckResult, PageReport, VisitOptions, run_checks
from utils.checks.judge import Judgement
from utils.checks.model_json import CallRecord
from utils.checks.plan import FILES, RUN, CheckPlan, Visit
from utils.checks.repo_checks import RepoChecks, unverified
from utils.checks.site_server import StaticSite
from utils.deadline import Deadline
from utils.intake.check_contract import check_contract
from utils.records import Check

LOAD_SECONDS = 30.0
SETTLE_SECONDS = 1.0
SNAPSHOT_CHARS = 12_000
REPORT_LIMIT = 20  # errors shown in a report or a repair prompt

_REPAIR_KINDS = ("page error", "failed request", "page did not load")

# Keeps every visit open a moment after the checks so late errors (a failed fetch) are seen.
_SETTLE = Check("(settle)", f"new Promise(resolve => setTimeout(() => resolve(true), {int(SETTLE_SECONDS * 1000)}))")

# The DOM excerpt: each selector the checks use (with its first match) and typeof of each global,
# then the title and the body with inline scripts and styles elided. Evaluated in the page.
_SNAPSHOT_JS = """(() => {
  const selectors = %s, globals = %s, limit = %d;
  const clean = (el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('script, style').forEach(s => { if (s.textContent.trim()) s.textContent = '/* elided */'; });
    return copy.outerHTML;
  };
  const parts = [];
  for (const sel of selectors) {
    let found = [];
    try { found = Array.from(document.querySelectorAll(sel)); }
    catch (e) { parts.push(sel + ': not a valid selector'); continue; }
    parts.push(sel + ': ' + found.length + ' match(es)' + (found.length ? '\\n' + clean(found[0]).slice(0, 1500) : ''));
  }
  for (const name of globals) parts.push('window.' + name + ': typeof ' + typeof window[name]);
  parts.push('document.title: ' + JSON.stringify(document.title));
  parts.push(document.body ? clean(document.body) : '(no <body>)');
  return parts.join('\\n\\n').slice(0, limit);
})()"""


@dataclass(frozen=True)
class Examination:
    """One version of the files as the browser saw it."""

    files: dict[str, bytes]
    results: list[CheckResult]
    errors: list[str]
    snapshot: str | None
    seconds: float
    browser_failure: str | None = None
    screenshot: bytes | None = None  # PNG of the page without query string, when asked for
    calls: list[CallRecord] = field(default_factory=list)  # judging calls made for this version
    problems: list[str] = field(default_factory=list)  # judging replies that could not be used

    @property
    def passed(self) -> int:
        """Checks that passed."""
        return sum(1 for r in self.results if r.passed is True)

    @property
    def failed(self) -> int:
        """Checks that failed (a check without a verdict is neither)."""
        return sum(1 for r in self.results if r.passed is False)

    @property
    def clean(self) -> bool:
        """Nothing to repair: every check passes, no uncaught error, no failed request, it loaded.

        Console errors alone count against a version's score but do not start a repair.
        """
        return self.clean_except(())

    def clean_except(self, ignored: Collection[int]) -> bool:
        """``clean``, not counting the failures of the checks at the ``ignored`` indices."""
        failing = any(r.passed is False for i, r in enumerate(self.results) if i not in ignored)
        return not failing and not any(e.startswith(_REPAIR_KINDS) for e in self.errors)

    @property
    def score(self) -> tuple[int, int]:
        """Most checks passing, then fewest errors."""
        return self.passed, -len(self.errors)

    def labelled(self, plan: CheckPlan, passed: bool) -> list[tuple[str, CheckResult]]:
        """(label, result) of the checks that passed (or failed)."""
        return [(label, r) for label, r in zip(plan.labels, self.results, strict=True) if r.passed is passed]

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        return {"passed": self.passed, "failed": self.failed, "errors": len(self.errors), "seconds": self.seconds}


@dataclass
class Examiner:
    """Runs a plan's page loads against whatever ``site`` (or a live URL) currently serves."""

    base_url: str
    plan: CheckPlan
    chromium_path: str
    deadline: Deadline
    reserve: float
    options: VisitOptions
    site: StaticSite | None = None
    judge: Callable[[dict[str, bytes], Deadline], Judgement] | None = None  # verdicts of judged checks
    repo_checks: RepoChecks | None = None  # evaluates files checks (None: they are unverified)

    def examine(self, files: dict[str, bytes]) -> Examination:
        """Load every URL of the plan and merge what the visits found."""
        started = time.monotonic()
        if self.site is not None:
            self.site.files = files
        found: dict[int, list[CheckResult]] = {}
        errors: list[str] = []
        snapshot, failure, screenshot = None, None, None
        for visit in self._visits(files):
            report = self._visit(visit)
            for index, result in zip(visit.indices, report.results, strict=False):
                found.setdefault(index, []).append(result)
            errors.extend(self._errors(report, visit.query))
            snapshot = snapshot or report.snapshot
            screenshot = screenshot or report.screenshot
            failure = failure or _browser_failure(report)
        results = [_merged(found.get(i, [])) for i in range(len(self.plan.checks))]
        self._scripted(files, results)
        judged = self._judged(files, results) if not failure else Judgement([])
        return Examination(files, results, list(dict.fromkeys(errors)), snapshot,
                           round(time.monotonic() - started, 3), failure, screenshot, judged.calls, judged.problems)

    def _visits(self, files: dict[str, bytes]) -> list[Visit]:
        """The page loads: none for a repository without a page that no check looks at (its root is a 404)."""
        if self.site is not None and "index.html" not in files and not any(v.indices for v in self.plan.visits):
            return []
        return self.plan.visits

    def _scripted(self, files: dict[str, bytes], results: list[CheckResult]) -> None:
        """Fill the files checks' results (on ``files``) and mark the run checks as waiting for the run."""
        for index, script in sorted(self.plan.scripts.items()):
            label = self.plan.labels[index]
            if self.plan.kind(index) == RUN:
                results[index] = unverified(label, script, "evaluated on the workflow run after publishing")
            elif self.plan.kind(index) == FILES:
                checks = self.repo_checks or RepoChecks(None, {})
                results[index] = checks.files_result(label, script, files)

    def _judged(self, files: dict[str, bytes], results: list[CheckResult]) -> Judgement:
        """Fill the judged checks' results in place with the judge's verdicts (one model call)."""
        if not self.plan.rubrics or self.judge is None:
            return Judgement([])
        judged = self.judge(files, Deadline(max(self.deadline.remaining() - self.reserve, 1.0)))
        for index, result in zip(sorted(self.plan.rubrics), judged.results, strict=False):
            results[index] = result
        return judged

    def _visit(self, visit: Visit) -> PageReport:
        """One page load with its checks (and the settle probe, dropped from the results)."""
        checks = [self.plan.checks[i] for i in visit.indices] + [_SETTLE]
        left = self.deadline.remaining() - self.reserve
        total = max(1.0, min(left, self.plan.check_timeout + LOAD_SECONDS + 15))
        options = replace(self.options, screenshot=self.options.screenshot and not visit.query)
        report = run_checks(self.base_url + visit.query, checks, chromium_path=self.chromium_path,
                            check_timeout=self.plan.check_timeout, total_timeout=total,
                            load_timeout=min(LOAD_SECONDS, total), options=options)
        return PageReport(**{**report.__dict__, "results": report.results[:-1]})

    def _errors(self, report: PageReport, query: str) -> list[str]:
        """The visit's errors as short lines, with the page's own URLs made relative."""
        where = f" (with {query})" if query else ""
        lines = [f"page error{where}: {e}" for e in report.page_errors]
        lines += [f"console error{where}: {e}" for e in report.console_errors]
        lines += [f"failed request{where}: {e}" for e in report.failed_requests]
        if report.load_error:
            lines.append(f"page did not load{where}: {report.load_error}")
        return [self.relative(line) for line in lines]

    def relative(self, text: str) -> str:
        """``text`` with the served base URL (and its origin) written relative."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base_url))
        return text.replace(self.base_url, "./").replace(origin, "")


def _merged(results: list[CheckResult]) -> CheckResult:
    """A check judged on several URLs passes only if it passed on each; the first failure is kept."""
    if not results:
        return CheckResult(check="", js=None, passed=False, value="", error="not evaluated", seconds=0.0)
    return next((r for r in results if not r.passed), results[0])


def _browser_failure(report: PageReport) -> str | None:
    """The reason when the browser itself could not run (launch failure), else None."""
    error = report.load_error or ""
    return error if error.startswith("browser:") and not any(r.passed for r in report.results) else None


def snapshot_js(checks: Sequence[Check]) -> str:
    """The DOM-excerpt expression for the selectors and globals the checks use."""
    items = check_contract(checks)
    globals_ = [i.removeprefix("window.") for i in items if i.startswith("window.")]
    selectors = [i for i in items if not i.startswith(("window.", "document.title"))]
    return _SNAPSHOT_JS % (json.dumps(selectors[:20]), json.dumps(globals_[:20]), SNAPSHOT_CHARS)
