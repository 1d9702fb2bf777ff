"""The build's GitHub-facing rules: workflows, the files a site needs, the Pages wait and one CI repair.

Called by the pipeline around publishing: refuse early (502) a build whose
brief asks for a workflow the token could not push (the published tree itself,
unasked workflows and workflows wider than the brief asks dropped, ``.nojekyll``
added, is ``published_tree``); wait
for Pages (and this commit's workflow run) while keeping the notification's
reserve before the deadline; hold the finished run to the written ``run``
checks; and when the run failed (or a run check fails) with time left, send the
failing job's log tail and the failing checks to the model for one repair commit.

Never: call the model before the permission check; wait into the notification's
reserve; change an attachment kept as attached, a derived file or LICENSE in a repair; put a
log in a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.checks.browser import CheckResult
from utils.checks.repo_checks import unverified
from utils.deadline import Deadline, notify_reserve
from utils.errors import GenerationFailed, PublishFailed
from utils.intake.brief import read_brief
from utils.model.base import Model
from utils.model.edits import apply_reply
from utils.model.prompt_parts import fenced, file_context, inline_code, omitted_note, render
from utils.publishers.base import Capabilities, Publisher, commit_message
from utils.publishers.secret_scan import refuse_secrets
from utils.publishers.workflows import WorkflowRun, site_files, wants_workflows, workflow_paths
from utils.records import PreviousRound, RepoTarget, TaskRequest

log = logging.getLogger(__name__)

REPAIR_CONTEXT_BYTES = 150_000
LOG_LINES = 80  # lines of a succeeded run's log shown to the repair (a failed job's tail is its own)
REPAIR_MIN_SECONDS = 30.0  # a model call plus a new run needs at least this much before the reserve


@dataclass
class SiteOutcome:
    """What the Pages wait ended with: the live commit, whether it is served, its run, and what to tell."""

    commit_sha: str
    live: bool
    run: WorkflowRun | None = None
    repaired: bool = False
    warnings: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)  # the run checks on the (last) run

    def report(self) -> dict[str, Any] | None:
        """The response's ``workflow_run`` (None when the commit has no workflow run), with its run checks."""
        if self.run is None:
            return None
        checks = [{"check": c.check, "kind": "run", "passed": c.passed, "value": c.value, "error": c.error}
                  for c in self.checks]
        return {**self.run.to_dict(), "repaired": self.repaired, "checks": checks}


def require_workflow_permission(request: TaskRequest, previous: PreviousRound | None, publisher: Publisher,
                                deadline: Deadline) -> None:
    """502 naming the permission when this round needs workflow files the token cannot push (nothing created yet)."""
    if wants_workflows(read_brief(request.brief).asks_for_workflow, previous.files if previous else None):
        publisher.require_workflow_permission(deadline=deadline)


def local_workflow_warnings(files: dict[str, bytes], capabilities: Capabilities) -> list[str]:
    """A warning when workflow files are published where nothing runs them (the local publisher)."""
    if workflow_paths(files) and not capabilities.runs_workflows:
        return ["the local publisher stores workflow files but cannot run them; "
                "set GITHUB_TOKEN to run them on GitHub Actions"]
    return []


def pages_deadline(deadline: Deadline) -> Deadline:
    """The deadline of waiting for Pages: the request's, less the notification's reserve."""
    return deadline.ahead_by(notify_reserve(deadline.seconds))


@dataclass(frozen=True)
class RepairContext:
    """What one repair of a failed workflow run needs besides the commit: the request and the model.

    A repair never changes ``attachments`` (those kept as attached) or LICENSE, and its files are scanned for
    ``secret_values`` (and credential patterns) before they are committed, as the first commit's were.
    ``run_checks`` are the (label, expression) of the written ``run`` checks the finished run is held to, and
    ``evaluate`` runs one (label, expression, conclusion, log -> result; None: they are unverified).
    """

    request: TaskRequest
    model: Model
    attachments: tuple[str, ...] = ()
    secret_values: tuple[str, ...] = ()
    run_checks: tuple[tuple[str, str], ...] = ()
    evaluate: Callable[[str, str, str | None, str], CheckResult] | None = None
    derived: tuple[str, ...] = ()  # files the service made from derive blocks: kept as made, like attachments

    @property
    def protected(self) -> list[str]:
        """Files a repair never changes."""
        return list(dict.fromkeys([*self.attachments, *self.derived, "LICENSE"]))


def wait_for_site(publisher: Publisher, target: RepoTarget, commit_sha: str, files: dict[str, bytes],
                  deadline: Deadline, repair: RepairContext) -> SiteOutcome:
    """Wait for Pages (and the commit's workflow run) before the reserve; evaluate the ``run`` checks on the
    finished run; repair a failed run (or one a run check fails on) once if time allows."""
    waiting = pages_deadline(deadline)
    live = publisher.wait_until_live(target, commit_sha, waiting)
    run = publisher.workflow_run(target, commit_sha)
    checks, run_log = _run_checks(publisher, target, commit_sha, repair, waiting)
    outcome = SiteOutcome(commit_sha, live, run, checks=checks)
    failing = RunFailures([c for c in outcome.checks if c.passed is False], run_log)
    if run is not None and (run.failed or failing.checks) and files and waiting.remaining() >= REPAIR_MIN_SECONDS:
        repaired = _repair_commit(publisher, target, commit_sha, files, run, waiting, repair, failing)
        if repaired is not None:
            live = publisher.wait_until_live(target, repaired, waiting)
            outcome = SiteOutcome(repaired, live, publisher.workflow_run(target, repaired), repaired=True,
                                  checks=_run_checks(publisher, target, repaired, repair, waiting)[0])
    outcome.warnings.extend(_warnings(outcome))
    return outcome


@dataclass(frozen=True)
class RunFailures:
    """The run checks a finished run fails, and the run's log they read (shown to the repair)."""

    checks: Sequence[CheckResult] = ()
    log: str = ""


def _run_checks(publisher: Publisher, target: RepoTarget, commit_sha: str, repair: RepairContext,
                deadline: Deadline) -> tuple[list[CheckResult], str]:
    """The ``run`` checks evaluated on this commit's finished run (unverified when it did not finish), and the
    log they read ("" when none was read)."""
    if not repair.run_checks or repair.evaluate is None:
        return [unverified(label, script, "no browser to run it in") for label, script in repair.run_checks], ""
    run = publisher.workflow_run(target, commit_sha)
    if run is None or run.status != "completed":
        reason = "the workflow run had not finished" if run is not None else "no workflow run was seen"
        return [unverified(label, script, reason) for label, script in repair.run_checks], ""
    log_text = publisher.run_log(target, commit_sha, deadline)
    return [repair.evaluate(label, script, run.conclusion, log_text) for label, script in repair.run_checks], log_text


def _warnings(outcome: SiteOutcome) -> list[str]:
    """What the response says about a run that failed or did not finish and a page that is not live."""
    warnings = []
    run = outcome.run
    if run is not None and run.failed:
        warnings.append(f"the workflow run failed ({run.conclusion}{': ' + run.failed_job if run.failed_job else ''})"
                        f"{' after one repair' if outcome.repaired else ''}: {run.html_url}")
    elif run is not None and run.status != "completed":
        warnings.append(f"the workflow run had not finished ({run.status or 'not started'}) when the notification "
                        f"was due{': ' + run.html_url if run.html_url else ''}")
    if not outcome.live:
        warnings.append("Pages did not serve this commit before the notification was due; the page was not live "
                        "yet; notified anyway")
    return warnings


def _repair_commit(publisher: Publisher, target: RepoTarget, commit_sha: str, files: dict[str, bytes],
                   run: WorkflowRun, deadline: Deadline, repair: RepairContext,
                   failing: RunFailures = RunFailures()) -> str | None:
    """Ask the model once to fix the failed run (or the run checks it fails) and commit the fix on top; its sha,
    or None."""
    request, protected = repair.request, repair.protected
    try:
        completion = repair.model.complete(repair_messages(files, run, request.brief, protected, failing), deadline)
    except GenerationFailed as failure:
        log.warning("workflow repair call failed", extra={"stage": "pages", "error": failure.message})
        return None
    applied = apply_reply(completion.text, files, protected)
    fixed = site_files(applied.files)
    if applied.blocking or fixed == files:
        log.warning("workflow repair reply unusable or empty", extra={"stage": "pages"})
        return None
    try:
        refuse_secrets(fixed, repair.secret_values, user_supplied=frozenset(repair.attachments))
    except PublishFailed as refused:  # the first commit stays; the failed run is reported, the notification goes
        log.warning("workflow repair not committed", extra={"stage": "pages", "error": refused.message})
        return None
    message = commit_message(f"Round {request.round}: fix the failed workflow run", request.task, request.round,
                             request.nonce)
    parent = PreviousRound(target.name, commit_sha, files)
    return publisher.commit(target, fixed, message, parent, deadline=deadline)


def repair_messages(files: dict[str, bytes], run: WorkflowRun, brief: str, protected: Sequence[str],
                    failing: RunFailures = RunFailures()) -> list[dict[str, Any]]:
    """The chat messages asking the model to fix the files after a failed workflow run (or failing run checks).

    A failed run shows its failing job's log tail; a run that succeeded but fails a run check shows the tail of
    the log those checks read (every job's), so the model sees what the checks looked for in vain."""
    context, omitted = file_context(files, brief, REPAIR_CONTEXT_BYTES)
    checks = "\n".join(f"- {inline_code(c.check)}: {inline_code(c.js or '')} returned {inline_code(c.value)}"
                       + (f" ({c.error})" if c.error else "") for c in failing.checks)
    if run.failed:
        job, log_title = run.failed_job or "(unknown)", "The last lines of the failing job's log:"
        log_text = run.log_tail or "(the failing job's log could not be read)"
    else:
        job, log_title = "(none failed)", "The last lines of the run's log (every job), which the checks below read:"
        log_text = "\n".join(failing.log.rstrip().splitlines()[-LOG_LINES:]) or "(the run's log could not be read)"
    user = render("ci_repair.md", brief=brief.strip() or "(no brief given)", run_url=run.html_url or "(unknown)",
                  conclusion=run.conclusion or "(unknown)", job=job, log_title=log_title,
                  log=fenced(log_text, "text"),
                  checks=checks or "None.", files=context, omitted=omitted_note(omitted),
                  protected=", ".join(inline_code(p) for p in sorted(protected)) or "(none)")
    return [{"role": "system", "content": render("system.md")}, {"role": "user", "content": user}]
