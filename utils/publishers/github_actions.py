"""GitHub Actions for the GitHub publisher: this commit's workflow runs, the jobs' logs, Pages from Actions.

Reads the runs of one pushed commit by its head SHA (``GET .../actions/runs
?head_sha=``), polls until every run of that commit has completed or the
deadline passes, and for a failed run reads the failing job's log tail (the
logs endpoint answers a redirect to a signed URL, which is fetched without the
token). Switches a repository's Pages source to GitHub Actions
(``build_type: workflow``) when a committed workflow deploys Pages, and checks
a classic token's ``workflow`` scope. Every REST call goes through
the transport (``utils.publishers.github_api``).

Never: send the token anywhere but the API (the signed log URL gets none); wait
past the deadline; put a log in a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from utils.deadline import Deadline
from utils.errors import GitHubCallFailed, PublishFailed
from utils.publishers.github_api import Transport
from utils.publishers.workflows import WORKFLOW_PERMISSION, WorkflowRun

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 80
LOG_TAIL_CHARS = 6000
LOG_TIMEOUT = 10.0
LOG_TAIL_BYTES = 256 * 1024  # the log's end kept while downloading (LOG_TAIL_LINES of it are shown)
LOG_CHUNK_BYTES = 16 * 1024
JOB_LOG_CHARS = 50_000  # of each job's log given to run checks
MAX_JOB_LOGS = 10
RUN_APPEARS_WITHIN = 60.0  # seconds after the push; a workflow not triggered by it (no run) is not waited for
IGNORED_EVENTS = ("dynamic",)  # Pages' own pages-build-deployment runs of the legacy build


class ActionsWatcher:
    """Waits for the workflow runs of a commit and reads why one failed."""

    def __init__(self, api: Transport, pause: Callable[[Deadline], bool]):
        self._api = api
        self._pause = pause

    def require_workflow_scope(self) -> str:
        """The token's login, or PublishFailed (502) naming the permission when its scopes lack ``workflow``.

        Classic tokens list their scopes (``X-OAuth-Scopes`` on ``GET /user``); fine-grained tokens do not,
        so for them a missing permission shows only when the push is refused.
        """
        answer = self._api.request("GET", "/user", what="read the token's user", expect=("login",))
        listed = answer.headers.get("X-OAuth-Scopes")
        if listed is not None and "workflow" not in {scope.strip() for scope in listed.split(",")}:
            raise PublishFailed(f"the build needs a GitHub Actions workflow, but GITHUB_TOKEN lacks "
                                f"{WORKFLOW_PERMISSION}; nothing was created")
        return str(answer.data["login"])

    def set_pages_build_type(self, full: str, build_type: str) -> None:
        """Make GitHub Actions (``workflow``) or the branch (``legacy``) the repository's Pages source."""
        body: dict[str, Any] = {"build_type": build_type}
        if build_type == "legacy":
            body["source"] = {"branch": "main", "path": "/"}
        source = "GitHub Actions" if build_type == "workflow" else "the main branch"
        self._api.request("PUT", f"/repos/{full}/pages", body, what=f"set the Pages source of {full} to {source}")

    def wait_for_run(self, full: str, sha: str, deadline: Deadline) -> WorkflowRun:
        """Poll this commit's runs until all completed (a failed one with its log tail) or the deadline."""
        seen, started = WorkflowRun(0, "", None, ""), time.monotonic()
        while True:
            seen = self._commit_run(full, sha) or seen
            if seen.status == "completed":
                return self._with_log(full, seen, deadline) if seen.failed else seen
            if not seen.status and time.monotonic() - started > RUN_APPEARS_WITHIN:
                log.info("no workflow run of %s appeared; not waiting for one", sha[:12])
                return seen
            if not self._pause(deadline):
                log.info("workflow run of %s not finished by the deadline (%s)", sha[:12], seen.status or "not seen")
                return seen

    def _commit_run(self, full: str, sha: str) -> WorkflowRun | None:
        """The runs of ``sha`` folded into one: a running one first, then a failed one, else the last success."""
        try:
            data = self._api.request("GET", f"/repos/{full}/actions/runs",
                                     params={"head_sha": sha, "per_page": "20"},
                                     what=f"read the workflow runs of {full}", expect=("workflow_runs",)).data
        except GitHubCallFailed as err:
            if err.github_status == 401 or (err.github_status == 403 and not err.rate_limited):
                raise
            return None
        runs = [run for run in data["workflow_runs"]
                if run.get("head_sha") == sha and run.get("event") not in IGNORED_EVENTS]
        if not runs:
            return None
        running = [run for run in runs if run.get("status") != "completed"]
        failed = [run for run in runs if _as_run(run).failed]
        return _as_run((running or failed or runs)[0])

    def _with_log(self, full: str, run: WorkflowRun, deadline: Deadline) -> WorkflowRun:
        """``run`` with its failing job's name and log tail (unchanged when they cannot be read)."""
        try:
            jobs = self._api.request("GET", f"/repos/{full}/actions/runs/{run.id}/jobs",
                                     params={"filter": "latest"}, what=f"read the jobs of run {run.id}",
                                     expect=("jobs",)).data["jobs"]
            job = next((j for j in jobs if j.get("conclusion") not in (None, "success", "skipped")), None)
            if job is None:
                return run
            answer = self._api.request("GET", f"/repos/{full}/actions/jobs/{quote(str(job['id']))}/logs",
                                       what=f"read the log of job {job['id']}")
        except GitHubCallFailed as err:
            log.warning("could not read the failed run's jobs or log: %s", err.message)
            return run
        tail = _fetch_log(answer.headers.get("Location", ""), answer.data, deadline)
        steps = [s.get("name", "") for s in job.get("steps") or [] if s.get("conclusion") == "failure"]
        name = str(job.get("name") or "") + (f" (step: {steps[0]})" if steps else "")
        return WorkflowRun(run.id, run.status, run.conclusion, run.html_url, run.name, name, tail)


    def jobs_log(self, full: str, run: WorkflowRun, deadline: Deadline) -> str:
        """Every job's log of ``run`` (each its last ``JOB_LOG_CHARS``), headed by the job's name; "" if unreadable."""
        try:
            jobs = self._api.request("GET", f"/repos/{full}/actions/runs/{run.id}/jobs",
                                     params={"filter": "latest"}, what=f"read the jobs of run {run.id}",
                                     expect=("jobs",)).data["jobs"]
        except GitHubCallFailed as err:
            log.warning("could not read the run's jobs: %s", err.message)
            return ""
        parts = []
        for job in jobs[:MAX_JOB_LOGS]:
            try:
                answer = self._api.request("GET", f"/repos/{full}/actions/jobs/{quote(str(job['id']))}/logs",
                                           what=f"read the log of job {job['id']}")
            except GitHubCallFailed as err:
                log.warning("could not read a job's log: %s", err.message)
                continue
            text = _fetch_log(answer.headers.get("Location", ""), answer.data, deadline, lines=None)
            parts.append(f"## job: {job.get('name') or job['id']}\n{text[-JOB_LOG_CHARS:]}")
        return "\n".join(parts)


def _as_run(data: dict[str, Any]) -> WorkflowRun:
    """A run as the API describes it."""
    return WorkflowRun(int(data.get("id") or 0), str(data.get("status") or ""), data.get("conclusion"),
                       str(data.get("html_url") or ""), str(data.get("name") or ""))


def _fetch_log(location: str, body: Any, deadline: Deadline, lines: int | None = LOG_TAIL_LINES) -> str:
    """The log's last ``lines`` (None: its last ``LOG_TAIL_BYTES``): from the signed URL GitHub redirected to (no
    token sent there), else the body.

    The download stops at the deadline (each read waits at most the time left) and keeps only the last
    ``LOG_TAIL_BYTES``, so a slow or huge log neither delays the notification nor fills memory.
    """
    text = body if isinstance(body, str) else ""
    if location:
        text = ""
        try:
            timeout = max(0.1, min(LOG_TIMEOUT, deadline.remaining()))
            with requests.get(location, timeout=timeout, stream=True) as answer:
                tail = b""
                for chunk in answer.iter_content(LOG_CHUNK_BYTES) if answer.ok else ():
                    tail = (tail + chunk)[-LOG_TAIL_BYTES:]
                    if deadline.expired():
                        break
            text = tail.decode("utf-8", "replace")
        except requests.RequestException as exc:
            log.warning("could not download the failed job's log: %s", type(exc).__name__)
    if lines is None:
        return text
    return "\n".join(text.splitlines()[-lines:])[-LOG_TAIL_CHARS:]
