"""The self-check stage: run the graders' checks on the generated app in headless Chromium, and repair.

    files -> serve on loopback under /<repo>/ -> examine (each URL) -> repair (<= N) -> best files

The stage's parts each live in their own module under ``utils/checks/``:
``plan`` (which checks are judged, on which URLs, for how long, and the
publishing reserve), ``site_server`` (the files served from memory like
Pages), ``examine`` (one browser pass over a version) and ``repair`` (the
bounded repair loop). This module holds the entry
points ``self_check`` (before publishing) and ``check_live`` (after deploy,
against the published ``pages_url``; never raises), the report and its log line.

Time: a quarter of the request's deadline (at least 60 s, or half of a deadline
shorter than 120 s) is kept for publishing, Pages and the notification
(``publish_reserve``). The best version is returned: most checks passing, then
fewest errors, the earliest on a tie, so never a worse one than the first.

Never rules:
- never publishes, commits or writes files: it only returns files;
- never looks for a browser: it runs the Chromium the build located once
  (``chromium_path``), and treats None or a path that is not executable as none;
- never logs page contents, file contents or secrets: the summary line carries
  counts, the reason and seconds; one line per check carries its text, kind,
  outcome before and after repair and its value or reason, each bounded to
  200 characters (the values graders would see; configured secrets are
  redacted at the logging layer);
- never lets the browser read the filesystem or reach an internal address:
  the files are served from memory (no filesystem path is ever mapped), public
  hosts such as CDNs load as they would for a grader, internal ones never
  (``utils.checks.outbound``); with ``route_cdn`` (tests) the local CDN copies
  are served and every other host is cut off;
- never spends the reserve kept for publishing, and never raises for a broken
  app or a failed repair call; only ``SELF_CHECK=required`` without a usable
  browser raises (``NotConfigured``, 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from utils.checks.availability import NO_BROWSER, why_no_browser
from utils.checks.browser import VisitOptions, executable_path
from utils.checks.examine import REPORT_LIMIT, Examiner, snapshot_js
from utils.checks.judge import JudgeItem, Judgement, judge
from utils.checks.plan import FILES, RUN, WRITTEN_JS, CheckPlan, plan_checks, publish_reserve
from utils.checks.repair import RepairRun, repair_until_clean
from utils.checks.repo_checks import RepoChecks
from utils.checks.site_server import StaticSite
from utils.checks.writer import WrittenChecks
from utils.deadline import Deadline
from utils.errors import NotConfigured
from utils.model.base import Model
from utils.records import Check

log = logging.getLogger(__name__)

MODES = ("auto", "off", "required")
MIN_VISIT_SECONDS = 5.0
LOG_CHARS = 200


# ---------------------------------------------------------------- the report

@dataclass(frozen=True)
class SelfCheckReport:
    """What the stage did, for the response body and the log (``to_dict`` is JSON-serialisable)."""

    ran: bool
    skipped_reason: str | None
    before: tuple[int, int]  # (passed, failed) of the generated app
    after: tuple[int, int]  # (passed, failed) of the returned app
    repairs: int  # repair rounds attempted
    failing: list[str]  # checks still failing in the returned app
    errors: list[str]  # page/console/request errors of the returned app (bounded)
    seconds: float
    mode: str = "auto"
    stop_reason: str = ""  # passed | repairs exhausted | no time left | model failed | no repairs allowed
    errors_before: int = 0
    unjudged: list[str] = field(default_factory=list)  # natural-language checks (listed, not judged)
    waived: list[str] = field(default_factory=list)  # previous-round checks the new brief changes
    unverified: list[str] = field(default_factory=list)  # files/run checks not evaluated (no sandbox; run: later)
    urls: list[str] = field(default_factory=list)  # the page URLs loaded, relative ("./", "./?name=sample")
    versions: list[dict[str, Any]] = field(default_factory=list)  # per version seen: passed, failed, errors, seconds
    chosen: int = 0  # which version is returned (0: as generated)
    model: dict[str, Any] = field(default_factory=dict)  # repair calls and tokens
    # per check: text, kind, before, after, value, suspect, and js (a written check's expression)
    checks: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # per model call of the stage: writing, judging, repair
    problems: list[str] = field(default_factory=list)  # unusable check-writing/judging replies, suspect checks
    screenshot: bytes | None = field(default=None, repr=False)  # PNG of the returned app (not in to_dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (without the screenshot)."""
        data = asdict(self)
        data.pop("screenshot")
        data["before"], data["after"] = list(self.before), list(self.after)
        return data

    def unmet(self) -> list[dict[str, Any]]:
        """Checks still failing in the returned app, each with its last value or reason (for ``warnings``)."""
        return [{"check": row["check"], "kind": row["kind"],
                 "value": str(row["error"] or row["value"] or "")[:LOG_CHARS]}
                for row in self.checks if row["after"] is False]

    @property
    def changed(self) -> bool:
        """True when the returned files differ from the ones given (a repair was kept)."""
        return self.chosen > 0


def _skipped(reason: str, mode: str, started: float, written: WrittenChecks | None = None) -> SelfCheckReport:
    """The report of a stage that did not run (with the check-writing call already made, if any)."""
    written = written or WrittenChecks()
    return SelfCheckReport(ran=False, skipped_reason=reason, before=(0, 0), after=(0, 0), repairs=0, failing=[],
                           errors=[], seconds=round(time.monotonic() - started, 3), mode=mode,
                           calls=[c.to_dict() for c in written.calls], problems=list(written.problems),
                           unverified=[w.check for w in written.checks if w.kind in (FILES, RUN)])


def _report(run: RepairRun, plan: CheckPlan, urls: list[str], mode: str, started: float,
            written: WrittenChecks | None = None) -> SelfCheckReport:
    """The stage report for the best version of ``run``."""
    first, best = run.history[0], run.history[run.chosen]
    written = written or WrittenChecks()
    judging = [c.to_dict() for exam in run.history for c in exam.calls]
    problems = [*written.problems, *dict.fromkeys(p for exam in run.history for p in exam.problems)]
    problems += [f"suspect check (a repair did not change its outcome; the check may be wrong): {plan.labels[i]}"
                 for i in sorted(run.suspects)]
    return SelfCheckReport(
        ran=True, skipped_reason=None, before=(first.passed, first.failed), after=(best.passed, best.failed),
        repairs=run.attempts,
        failing=[label for label, _ in best.labelled(plan, False)], errors=best.errors[:REPORT_LIMIT],
        seconds=round(time.monotonic() - started, 3), mode=mode, stop_reason=run.stop_reason,
        errors_before=len(first.errors), unjudged=plan.unjudged, waived=plan.waived, urls=urls,
        unverified=[plan.labels[i] for i, r in enumerate(best.results)
                    if plan.kind(i) in (FILES, RUN) and r.passed is None],
        versions=[e.summary() for e in run.history], chosen=run.chosen, model=run.usage.tokens(),
        checks=_check_rows(run, plan), problems=problems, screenshot=best.screenshot,
        calls=[*(c.to_dict() for c in written.calls), *judging, *(c.to_dict() for c in run.calls)],
    )


def _check_rows(run: RepairRun, plan: CheckPlan) -> list[dict[str, Any]]:
    """Every check: its text, kind, result before and after repair, value or reason, whether suspect, and the
    expression the check writer made of a plain-English check (so a grader can run it again on the live site)."""
    first, best = run.history[0], run.history[run.chosen]
    rows = [{"check": label, "kind": plan.kind(i), "before": first.results[i].passed,
             "after": best.results[i].passed, "value": best.results[i].value, "error": best.results[i].error,
             "suspect": i in run.suspects, "js": plan.checks[i].js if plan.kind(i) == WRITTEN_JS else None}
            for i, label in enumerate(plan.labels)]
    rows += [{"check": text, "kind": "unjudged", "before": None, "after": None, "value": "", "error": None,
              "suspect": False, "js": None} for text in plan.unjudged]
    return rows


def _log(report: SelfCheckReport, stage: str = "self_check") -> None:
    """One JSON log line: counts, reason and seconds only (never page contents)."""
    level = logging.WARNING if report.skipped_reason and report.mode != "off" else logging.INFO
    log.log(level, "self-check finished" if report.ran else "self-check skipped", extra={
        "stage": stage, "ran": report.ran, "skipped_reason": report.skipped_reason, "mode": report.mode,
        "before_passed": report.before[0], "before_failed": report.before[1],
        "after_passed": report.after[0], "after_failed": report.after[1],
        "errors_before": report.errors_before, "errors_after": len(report.errors),
        "repairs": report.repairs, "stop_reason": report.stop_reason, "seconds": report.seconds,
    })
    for row in report.checks:
        log.info("self-check result", extra={
            "stage": stage, "check": row["check"][:LOG_CHARS], "kind": row["kind"], "before": row["before"],
            "after": row["after"], "value": (row["error"] or row["value"] or "")[:LOG_CHARS],
            "suspect": row["suspect"]})


# ---------------------------------------------------------------- the stage

@dataclass(frozen=True)
class CheckSubject:
    """What the self-check judges: this round's checks and the previous round's, the brief they come from.

    ``written`` are the check writer's executable forms of the plain-English
    checks (judged ones go to one judging call per version examined);
    ``protected`` files (attachments, LICENSE, derived files) are never changed
    by a repair.
    """

    checks: Sequence[Check]
    previous_checks: Sequence[Check] = ()
    brief: str = ""
    written: WrittenChecks | None = None
    protected: Collection[str] = ()


@dataclass(frozen=True)
class SelfCheckOptions:
    """How the self-check runs: SELF_CHECK's mode, the build's browser, repairs and per-check time.

    ``chromium_path`` is the browser located for this build (None: no browser).
    ``route_cdn`` (tests) maps CDN URL prefixes to local folders and cuts the
    page off from every other host. ``screenshot`` keeps a PNG of the returned
    app in the report. ``repo_checks`` evaluates the written ``files`` checks
    on each version (in the sandbox; None: they are unverified).
    """

    mode: str = "auto"
    chromium_path: str | None = None
    repairs: int = 2
    check_timeout: float = 15.0
    route_cdn: Mapping[str, Path] | None = None
    screenshot: bool = False
    repo_checks: RepoChecks | None = None


def self_check(files: dict[str, bytes], subject: CheckSubject, *, repo_name: str, model: Model, deadline: Deadline,
               options: SelfCheckOptions) -> tuple[dict[str, bytes], SelfCheckReport]:
    """Judge the app in Chromium, repair up to ``options.repairs`` times, and return the best files with a report.

    Raises ``NotConfigured`` only for ``mode="required"`` without a usable browser.
    """
    started = time.monotonic()
    mode = options.mode if options.mode in MODES else "auto"
    written = subject.written
    browser = executable_path(options.chromium_path) if options.chromium_path else None
    report = _early_exit(mode, browser, deadline, started, written)
    if report is not None:
        _log(report)
        return files, report
    with StaticSite(repo_name, files) as site:
        plan = plan_checks(subject.checks, subject.previous_checks, subject.brief, files,
                           check_timeout=options.check_timeout, base_url=site.url,
                           written=written.checks if written else ())
        visit = VisitOptions(routes=dict(options.route_cdn or {}), offline=options.route_cdn is not None,
                             snapshot_js=snapshot_js(plan.checks), screenshot=options.screenshot)
        examiner = Examiner(site.url, plan, browser or "", deadline, publish_reserve(deadline), visit, site,
                            judge=_judge_for(plan, subject.brief, model), repo_checks=options.repo_checks)
        run = repair_until_clean(examiner, plan, files, subject.brief, model, options.repairs, subject.protected)
        urls = [examiner.relative(site.url + v.query) for v in plan.visits]
    if run.history[0].browser_failure:
        return files, _browser_unusable(run.history[0].browser_failure, mode, started, written)
    report = _report(run, plan, urls, mode, started, written)
    _log(report)
    return run.history[report.chosen].files, report


def _judge_for(plan: CheckPlan, brief: str, model: Model) -> Callable[[dict[str, bytes], Deadline], Judgement]:
    """The judging call for this plan's judged checks, as the examiner calls it for each version."""
    items = [JudgeItem(plan.labels[i], rubric) for i, rubric in sorted(plan.rubrics.items())]
    return lambda files, budget: judge(items, files, brief, model, budget)


def _early_exit(mode: str, browser: str | None, deadline: Deadline, started: float,
                written: WrittenChecks | None) -> SelfCheckReport | None:
    """The report when the stage cannot or should not run (raises when a browser is required)."""
    if mode == "off":
        return _skipped("SELF_CHECK=off", mode, started, written)
    if browser is None:
        if mode == "required":
            raise NotConfigured("SELF_CHECK=required but " + why_no_browser(), stage="self_check")
        return _skipped(why_no_browser(), mode, started, written)
    if deadline.remaining() - publish_reserve(deadline) < MIN_VISIT_SECONDS:
        return _skipped("not enough time left before the deadline", mode, started, written)
    return None


def _browser_unusable(reason: str, mode: str, started: float, written: WrittenChecks | None) -> SelfCheckReport:
    """The report (or, when required, the error) for a browser that could not start."""
    if mode == "required":
        raise NotConfigured(f"SELF_CHECK=required but Chromium could not start ({reason}); check CHROMIUM_PATH",
                            stage="self_check")
    report = _skipped(f"Chromium could not start: {reason}", mode, started, written)
    _log(report)
    return report


# ---------------------------------------------------------------- after deploy

def check_live(pages_url: str, checks: Sequence[Check], *, chromium_path: str | None, deadline: Deadline,
               previous_checks: Sequence[Check] = (), brief: str = "", check_timeout: float = 15.0,
               reserve: float = 5.0) -> SelfCheckReport:
    """Judge the published page at ``pages_url`` (no repairs); never raises, skips without a browser."""
    started = time.monotonic()
    browser = executable_path(chromium_path) if chromium_path else None
    if browser is None:
        report = _skipped(NO_BROWSER, "auto", started)
    elif deadline.remaining() - reserve < MIN_VISIT_SECONDS:
        report = _skipped("not enough time left before the deadline", "auto", started)
    else:
        report = _live_report(pages_url, CheckSubject(checks, previous_checks, brief), browser, deadline,
                              check_timeout, reserve, started)
    _log(report, stage="live_check")
    return report


def _live_report(pages_url: str, subject: CheckSubject, browser: str, deadline: Deadline, check_timeout: float,
                 reserve: float, started: float) -> SelfCheckReport:
    """One examination of the live page, as a report (errors become a skipped report)."""
    base = pages_url if pages_url.endswith("/") else pages_url + "/"
    try:
        plan = plan_checks(subject.checks, subject.previous_checks, subject.brief, {}, check_timeout=check_timeout,
                           base_url=base)
        examiner = Examiner(base, plan, browser, deadline, reserve, VisitOptions())
        exam = examiner.examine({})
        urls = [examiner.relative(base + v.query) for v in plan.visits]
    except Exception as exc:  # a report, never an exception: notification must not depend on this
        log.warning("live check failed", extra={"stage": "live_check", "error": type(exc).__name__})
        return _skipped(f"live check failed: {type(exc).__name__}", "auto", started)
    if exam.browser_failure:
        return _skipped(f"Chromium could not start: {exam.browser_failure}", "auto", started)
    return _report(RepairRun(history=[exam], stop_reason="live"), plan, urls, "auto", started)
