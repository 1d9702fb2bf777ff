"""Grade a deployment's written ``files`` and ``run`` checks from the round trip's own material.

``files`` checks run over this program's own clone of the published commit
(every path of its tree, binary files as null, ``sizes`` in bytes) with
``sources`` = the task's attachments parsed exactly as the service parses
them (its own decoder, ``derive_sources`` and ``parsed_sources``), in this
machine's own sandboxed Chromium (``utils.checks.sandbox`` through
``utils.checks.repo_checks``). ``run`` checks run over the commit's workflow
run read through GitHub's REST API with this machine's ``GITHUB_TOKEN`` (the
service's own transport and Actions reader), and the run itself gets a row
(its conclusion) when the commit has workflows. Whatever cannot be evaluated
here (no browser, no token, a repository not on that GitHub, no run) is
*unverified* with the reason, never failed.

Never takes the deployment's verdicts, never prints the token or a log, and
never writes anything (the clone is made by ``utils.grading.grade``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from utils.checks.browser import CheckResult
from utils.checks.repo_checks import RepoChecks, parsed_sources
from utils.checks.sandbox import Sandbox
from utils.deadline import Deadline
from utils.errors import GitHubCallFailed, PipelineError
from utils.grading.grade import FAIL, PASS, UNVERIFIED, Row
from utils.intake.attachments import decode_attachments
from utils.intake.validation import validate_request
from utils.model.derived import derive_sources
from utils.publishers.github_actions import ActionsWatcher
from utils.publishers.github_api import GitHubTransport
from utils.records import Check

RUN_WAIT_SECONDS = 300.0  # a deployment answers once its run ended; a margin for one still finishing
POLL_SECONDS = 5.0
NO_BROWSER = ("no Chromium with Playwright here: install chromium and run "
              "`uv run --extra browser check_config.py --round-trip ...`")
_REPO_PATH = re.compile(r"^/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class GitHubAccess:
    """How this machine reads GitHub: its token and API (``token`` empty: it cannot)."""

    token: str
    api_url: str
    poll_seconds: float = POLL_SECONDS

    def __repr__(self) -> str:
        return f"GitHubAccess(api_url={self.api_url!r})"


def task_sources(request_body: dict[str, Any]) -> dict[str, Any]:
    """The task's attachments parsed as the service parses them for ``files`` checks ({} if they do not decode:
    the deployment refused such a task with a 400 anyway)."""
    try:
        request = validate_request(request_body, str(request_body.get("secret") or ""))
        return parsed_sources(derive_sources(decode_attachments(request.attachments)))
    except PipelineError:
        return {}


def files_rows(checks: Sequence[Check], files: dict[str, bytes], sources: dict[str, Any],
               chromium: str | None) -> list[Row]:
    """Each written ``files`` check evaluated over the clone's ``files`` in this machine's sandbox."""
    if not checks:
        return []
    if not chromium:
        return [Row(c.text, "files", UNVERIFIED, NO_BROWSER) for c in checks]
    if not files:
        return [Row(c.text, "files", UNVERIFIED, "no clone of the commit to check it on") for c in checks]
    with Sandbox(chromium) as sandbox:
        evaluator = RepoChecks(sandbox, sources)
        return [_row("files", evaluator.files_result(c.text, c.js or "", files)) for c in checks]


def run_rows(checks: Sequence[Check], repo_url: str, commit_sha: str, files: dict[str, bytes],
             chromium: str | None, github: GitHubAccess) -> list[Row]:
    """The workflow run's row (when the commit has workflows) and each written ``run`` check evaluated over the
    run's conclusion and jobs' logs, read from GitHub; unverified with the reason when they cannot be read."""
    workflows = sorted(p for p in files if p.startswith(".github/workflows/") and p.endswith((".yml", ".yaml")))
    if not workflows and not checks:
        return []
    label = f"workflow run of {commit_sha[:10]} ({', '.join(workflows) or 'no workflow in the commit'})"
    why_not = _why_unreadable(repo_url, github)
    if why_not:
        return [Row(label, "run", UNVERIFIED, why_not), *(Row(c.text, "run", UNVERIFIED, why_not) for c in checks)]
    full = _full_name(repo_url)
    transport = GitHubTransport(github.token, github.api_url)
    watcher = ActionsWatcher(transport, lambda deadline: deadline.sleep(github.poll_seconds)
                             and not deadline.expired())
    deadline = Deadline(RUN_WAIT_SECONDS)
    try:
        transport.request("GET", f"/repos/{full}", what=f"read the repository {full}", expect=("full_name",))
        run = watcher.wait_for_run(full, commit_sha, deadline)
    except GitHubCallFailed as exc:
        reason = f"{repo_url} cannot be read through {github.api_url}: {exc.message}"[:200]
        return [Row(label, "run", UNVERIFIED, reason), *(Row(c.text, "run", UNVERIFIED, reason) for c in checks)]
    if run.status != "completed":
        reason = (f"the run is still {run.status} after {RUN_WAIT_SECONDS:.0f} s" if run.status
                  else "no workflow run of this commit appeared")
        return [Row(label, "run", FAIL if workflows and run.status else UNVERIFIED, reason),
                *(Row(c.text, "run", UNVERIFIED, reason) for c in checks)]
    rows = [Row(label, "run", PASS if run.conclusion == "success" else FAIL,
                f"concluded {run.conclusion or 'without a conclusion'}: {run.html_url}"[:200])]
    if not checks:
        return rows
    if not chromium:
        return [*rows, *(Row(c.text, "run", UNVERIFIED, NO_BROWSER) for c in checks)]
    log = watcher.jobs_log(full, run, deadline)
    with Sandbox(chromium) as sandbox:
        evaluator = RepoChecks(sandbox, {})
        return [*rows, *(_row("run", evaluator.run_result(c.text, c.js or "", run.conclusion, log))
                         for c in checks)]


def _why_unreadable(repo_url: str, github: GitHubAccess) -> str:
    """Why this machine cannot read the repository's workflow runs ("" when it may try)."""
    if not github.token:
        return "no GITHUB_TOKEN here to read the workflow run through GitHub's API"
    if not _full_name(repo_url):
        return f"{repo_url} is not a GitHub repository address (a local publisher has no workflow runs)"
    return ""


def _full_name(repo_url: str) -> str:
    """``owner/name`` of a repository address such as https://github.com/owner/name ("" for another shape)."""
    match = _REPO_PATH.match(urlsplit(repo_url).path)
    return f"{match.group(1)}/{match.group(2)}" if match else ""


def _row(kind: str, result: CheckResult) -> Row:
    """A sandbox result as a row: unverified when the sandbox (not the check) failed."""
    if result.passed is None:
        return Row(result.check, kind, UNVERIFIED, result.value.removeprefix("unverified: ")[:200])
    detail = result.error or (f"returned {result.value}" if result.value not in ("", "true") else "")
    return Row(result.check, kind, PASS if result.passed else FAIL, detail[:200])
