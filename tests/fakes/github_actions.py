"""GitHub Actions for the fake GitHub: workflow runs of pushed commits, their jobs and logs, Pages from Actions.

A push to ``main`` of a commit holding ``.github/workflows/*.yml`` starts one
run per workflow file. Runs follow scripts the test controls, like Pages
builds: each poll of the commit's runs (``GET .../actions/runs?head_sha=``)
moves them one step (``queued``, ``in_progress``, then ``success`` or
``failure``; a script that ends in ``in_progress`` is a stuck run). A run that
succeeds and uses ``actions/deploy-pages`` in a repository whose Pages build
type is ``workflow`` deploys the commit's files plus what the run produced
(``produced``, e.g. a ``result.json`` generated in CI). A failed run has one
failed job whose log (``failure_log``) is behind a 302 to a signed-looking URL
on the fake's own host, as GitHub does; that URL refuses a token. A successful
run's log is ``success_log``, or a "Run <command>" line per ``run:`` step of
its workflow.

Never reaches the internet; never runs a workflow.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Response, request

from tests.fakes.faults import json_response

if TYPE_CHECKING:
    from tests.fakes.github_server import FakeGitHub, FakeRepo

DEPLOY_PAGES = b"actions/deploy-pages"
RUNS_POLL = "GET /repos/{owner}/{repo}/actions/runs"
LOG_PATH = "/_actions_logs"
DEFAULT_FAILURE_LOG = ("2026-01-01T00:00:00Z ##[group]Run ruff check .\n"
                       "2026-01-01T00:00:01Z script.py:3:1: F401 `os` imported but unused\n"
                       "2026-01-01T00:00:01Z Found 1 error.\n"
                       "2026-01-01T00:00:01Z ##[error]Process completed with exit code 1.\n")
JsonDict = dict[str, Any]


@dataclass
class Run:
    """One workflow run of a pushed commit and the states successive polls report."""

    id: int
    full_name: str
    head_sha: str
    path: str
    deploys_pages: bool
    script: list[str]
    polls: int = 0
    deployed: bool = False

    @property
    def step(self) -> str:
        """The state the current poll reports."""
        return self.script[min(self.polls, len(self.script) - 1)]

    @property
    def status(self) -> str:
        """``queued``, ``in_progress`` or ``completed``."""
        return "completed" if self.step in ("success", "failure") else self.step

    @property
    def conclusion(self) -> str | None:
        """``success`` or ``failure`` once completed, else None."""
        return self.step if self.status == "completed" else None


@dataclass
class FakeActions:
    """Runs, jobs and logs of the fake GitHub; knobs: ``default_run_script``, ``queue_runs``, ``failure_log``,
    ``success_log``, ``produced``. Read back: ``runs``."""

    github: FakeGitHub
    default_run_script: list[str] = field(default_factory=lambda: ["queued", "in_progress", "success"])
    run_scripts: list[list[str]] = field(default_factory=list)
    failure_log: str = DEFAULT_FAILURE_LOG
    success_log: str | None = None  # None: a "Run <command>" line per run: step of the workflow
    produced: dict[str, bytes] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(7001))

    def queue_runs(self, *scripts: list[str]) -> None:
        """State scripts for the next workflow runs, in order (then ``default_run_script``)."""
        self.run_scripts.extend(list(s) for s in scripts)

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """The REST routes this part of the fake answers."""
        return [("GET", "/repos/<owner>/<repo>/actions/runs", self._list_runs),
                ("GET", "/repos/<owner>/<repo>/actions/runs/<int:run_id>/jobs", self._list_jobs),
                ("GET", "/repos/<owner>/<repo>/actions/jobs/<int:job_id>/logs", self._job_logs)]

    def log_view(self, job_id: int) -> Response:
        """The signed log URL: the log as text; a request carrying a token is refused, as the storage host does."""
        if "Authorization" in request.headers:
            return Response("authorization is not accepted here", 400)
        run = self._run(job_id)
        if run.conclusion == "failure":
            return Response(self.failure_log, 200, mimetype="text/plain")
        return Response(self.success_log if self.success_log is not None else self._steps_log(run), 200,
                        mimetype="text/plain")

    def _steps_log(self, run: Run) -> str:
        """A successful run's log as GitHub writes it: one "Run <command>" line per ``run:`` step."""
        owner, name = run.full_name.split("/", 1)
        workflow = self.github.repo(name, owner).files(run.head_sha).get(run.path, b"").decode()
        commands = [line.split("run:", 1)[1].strip() for line in workflow.splitlines()
                    if line.strip().startswith(("run:", "- run:"))]
        return "".join(f"2026-01-01T00:00:0{n % 10}Z Run {command}\n" for n, command in enumerate(commands)) or "ok\n"

    def on_push(self, repo: FakeRepo, sha: str) -> None:
        """Start one run per workflow file of the pushed commit."""
        files = repo.files(sha)
        for path in sorted(p for p in files if p.startswith(".github/workflows/") and p.endswith((".yml", ".yaml"))):
            script = self.run_scripts.pop(0) if self.run_scripts else list(self.default_run_script)
            self.runs.append(Run(next(self._ids), repo.full_name, sha, path, DEPLOY_PAGES in files[path], script))

    # -- views ---------------------------------------------------------------------

    def _list_runs(self, owner: str, repo: str) -> Response:
        found = self.github.repo(repo, owner) if f"{owner}/{repo}" in self.github.repos else None
        if found is None:
            return json_response({"message": "Not Found"}, 404)
        sha = request.args.get("head_sha")
        runs = [r for r in self.runs if r.full_name == found.full_name and (sha is None or r.head_sha == sha)]
        body = {"total_count": len(runs), "workflow_runs": [self._run_json(found, r) for r in reversed(runs)]}
        for run in runs:
            run.polls += 1
            self._deploy(found, run)
        return json_response(body)

    def _list_jobs(self, owner: str, repo: str, run_id: int) -> Response:
        run = next((r for r in self.runs if r.id == run_id and r.full_name == f"{owner}/{repo}"), None)
        if run is None:
            return json_response({"message": "Not Found"}, 404)
        return json_response({"total_count": 1, "jobs": [self._job_json(run)]})

    def _job_logs(self, owner: str, repo: str, job_id: int) -> Response:
        run = self._run(job_id)
        if run.full_name != f"{owner}/{repo}":
            return json_response({"message": "Not Found"}, 404)
        location = f"{self.github.url}{LOG_PATH}/{job_id}?sig=fake-signature"
        return Response(status=302, headers={"Location": location})

    # -- state and shapes -------------------------------------------------------------

    def _run(self, job_id: int) -> Run:
        return next(r for r in self.runs if r.id * 10 == job_id)

    def _deploy(self, repo: FakeRepo, run: Run) -> None:
        """A successful Pages-deploying run publishes its commit's files and what it produced."""
        if run.conclusion == "success" and run.deploys_pages and not run.deployed and repo.pages \
                and repo.pages.get("build_type") == "workflow":
            run.deployed = True
            repo.deployed = {**repo.files(run.head_sha), **self.produced}
            repo.live_commit = run.head_sha

    def _run_json(self, repo: FakeRepo, run: Run) -> JsonDict:
        api = f"{self.github.api_url}/repos/{repo.full_name}/actions/runs/{run.id}"
        name = run.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return {"id": run.id, "node_id": f"WFR_{run.id}", "name": name, "head_branch": "main", "head_sha": run.head_sha,
                "path": run.path, "run_number": run.id - 7000, "event": "push", "display_title": name,
                "status": run.status, "conclusion": run.conclusion, "workflow_id": 1, "url": api,
                "html_url": f"{self.github.url}/{repo.full_name}/actions/runs/{run.id}",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "jobs_url": f"{api}/jobs", "logs_url": f"{api}/logs", "check_suite_url": f"{api}/check-suite",
                "cancel_url": f"{api}/cancel", "rerun_url": f"{api}/rerun", "artifacts_url": f"{api}/artifacts",
                "workflow_url": f"{self.github.api_url}/repos/{repo.full_name}/actions/workflows/1",
                "pull_requests": [], "head_commit": None}

    def _job_json(self, run: Run) -> JsonDict:
        failed = run.conclusion == "failure"
        steps = [{"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
                 {"name": "Run ruff check .", "status": "completed" if run.conclusion else run.status,
                  "conclusion": run.conclusion, "number": 2}]
        return {"id": run.id * 10, "run_id": run.id, "run_url": f"{self.github.api_url}/runs/{run.id}",
                "node_id": f"J_{run.id}", "head_sha": run.head_sha, "head_branch": "main", "workflow_name": "ci",
                "name": "build", "url": f"{self.github.api_url}/jobs/{run.id * 10}",
                "html_url": f"{self.github.url}/job/{run.id * 10}", "status": run.status,
                "conclusion": "failure" if failed else run.conclusion, "steps": steps, "labels": ["ubuntu-latest"],
                "started_at": "2026-01-01T00:00:00Z", "completed_at": None, "created_at": "2026-01-01T00:00:00Z",
                "check_run_url": f"{self.github.api_url}/check-runs/{run.id}", "runner_id": None,
                "runner_name": None, "runner_group_id": None, "runner_group_name": None}
