"""``check_config.py --round-trip URL [--task FILE]``: send a task to a deployment and grade what it published.

Sends the task (the built-in sample, or FILE) with a fresh nonce and this
machine's SECRET, follows it to its end, then grades the repository, the live
page, every check and the notification (``utils.grading.grade``) and prints a
table. Checks only a reader can judge are judged by this machine's own model
when one is configured (its provider keys in the environment or ``.env``).
Exit code: 0 when every check holds, 1 when one fails (or the build did not
succeed), 2 when none fails but some could not be verified here.

Never prints the secret (the caller redacts the text as the service's logs are).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.checks.availability import usable_chromium
from utils.config import Config
from utils.errors import PipelineError
from utils.grading.client import Outcome, Receiver, reaches_this_machine, send_and_follow
from utils.grading.grade import (
    FAIL,
    PASS,
    UNVERIFIED,
    Row,
    browser_rows,
    check_plan,
    judged_here,
    notification_row,
    page_row,
    repository_rows,
)
from utils.grading.tasks import TaskFileError, fresh_request, load_task
from utils.intake.validation import parse_checks
from utils.model.llm import ModelClient

if TYPE_CHECKING:
    from utils.model.base import Model

FOLLOW_SECONDS = 660.0  # a deployment's default deadline (600 s) and a margin
NOTIFICATION_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class RoundTrip:
    """What a round trip found: the exit code and the text to print."""

    code: int
    text: str


def run_round_trip(url: str, task_path: str | None, config: Config, *,
                   follow_seconds: float = FOLLOW_SECONDS) -> RoundTrip:
    """Send the task to ``url``, follow it, grade what was published; the exit code and the report."""
    if not config.secret:
        return RoundTrip(1, "set SECRET (in .env or the environment) to the deployment's secret first")
    try:
        body = load_task(task_path)
    except TaskFileError as exc:
        return RoundTrip(1, str(exc))
    grader = Grader(usable_chromium(config.chromium_path or None), _model(config))
    with ExitStack() as stack:
        receiver = stack.enter_context(Receiver()) if reaches_this_machine(url) else None
        request_body = fresh_request(body, config.secret, receiver.url if receiver else None)
        outcome = send_and_follow(url, request_body, timeout=follow_seconds)
        with tempfile.TemporaryDirectory(prefix="round-trip-") as folder:
            rows = grade_outcome(outcome, request_body, grader, Path(folder) / "clone")
        if receiver is not None and outcome.status == "success":
            rows.append(_notification(receiver, request_body, outcome.body))
        elif outcome.status == "success":
            rows.append(Row("notification received", "notification", UNVERIFIED, f"{url} is not on this machine, "
                            "so it cannot reach this program's receiver"))
    return RoundTrip(exit_code(rows), render(url, request_body, outcome, rows))


@dataclass(frozen=True)
class Grader:
    """What this machine grades with: its Chromium (None: none usable) and its model (None: none configured)."""

    chromium: str | None
    model: Model | None


def _model(config: Config) -> Model | None:
    """This machine's model client for checks only a reader can judge (None when no provider is configured)."""
    if not config.providers:
        return None
    return ModelClient(config.providers, timeout=config.llm_timeout_seconds, max_tokens=config.llm_max_tokens)


def grade_outcome(outcome: Outcome, request_body: dict[str, Any], grader: Grader, folder: Path) -> list[Row]:
    """Every row for a build's outcome: the build itself, then the repository, the page and every check."""
    body = outcome.body
    rows = [Row("the build succeeded", "build", PASS if outcome.status == "success" else FAIL, outcome.detail)]
    repo_url, sha, pages_url = (str(body.get(k) or "") for k in ("repo_url", "commit_sha", "pages_url"))
    if not (repo_url and sha and pages_url):
        return rows
    brief = str(request_body.get("brief") or "")
    repository, files = repository_rows(repo_url, sha, brief, folder)
    rows += repository
    rows.append(page_row(pages_url))
    try:
        checks = parse_checks(request_body.get("checks"))
    except PipelineError as exc:
        return [*rows, Row("the task's checks", "task", FAIL, exc.message)]
    written = (body.get("self_check") or {}).get("checks") or []
    runnable, unverified = check_plan(checks, written)
    return [*rows, *browser_rows(pages_url, runnable, grader.chromium),
            *judged_here(unverified, files, brief, grader.model)]


def _notification(receiver: Receiver, request_body: dict[str, Any], result: dict[str, Any]) -> Row:
    """The notification's row, waiting a little for one still on its way."""
    deadline = time.monotonic() + NOTIFICATION_WAIT_SECONDS
    while time.monotonic() < deadline and not any(
            isinstance(p, dict) and p.get("nonce") == request_body["nonce"] for p in receiver.payloads):
        time.sleep(0.2)
    return notification_row(receiver.payloads, request_body, result)


def exit_code(rows: Sequence[Row]) -> int:
    """0 when every row passed, 1 when one failed, 2 when none failed but some are unverified."""
    verdicts = {row.verdict for row in rows}
    if FAIL in verdicts:
        return 1
    return 2 if UNVERIFIED in verdicts else 0


def render(url: str, request_body: dict[str, Any], outcome: Outcome, rows: Sequence[Row]) -> str:
    """The report: what was sent, the links, one line per check, and the verdict."""
    body = outcome.body
    lines = [f"Round trip to {url}: task {request_body['task']}, round {request_body['round']}, "
             f"nonce {request_body['nonce']}", f"  {outcome.detail}"]
    for label, key in (("page", "pages_url"), ("repository", "repo_url"), ("commit", "commit_sha")):
        if body.get(key):
            lines.append(f"  {label + ':':<12}{body[key]}")
    lines.append("")
    kind_width = max(len(row.kind) for row in rows)
    for row in rows:
        detail = f"  ({row.detail})" if row.detail else ""
        lines.append(f"[{row.verdict.upper() if row.verdict == FAIL else row.verdict:>10}] "
                     f"{row.kind:<{kind_width}}  {_one_line(row.check)}{detail}")
    failed = [row for row in rows if row.verdict == FAIL]
    unverified = [row for row in rows if row.verdict == UNVERIFIED]
    lines.append("")
    if failed:
        lines.append(f"FAILED: {len(failed)} of {len(rows)} checks: " + "; ".join(_one_line(r.check) for r in failed))
    elif unverified:
        lines.append(f"No check failed, but {len(unverified)} of {len(rows)} could not be verified here")
    else:
        lines.append(f"Every check holds ({len(rows)} of {len(rows)})")
    return "\n".join(lines)


def _one_line(text: str, limit: int = 100) -> str:
    """``text`` on one line, shortened to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
