"""What the service knows about GitHub Actions workflows and how Pages builds a site.

Decides whether workflows belong in a round (the brief asks for one, as
``utils.intake.brief.read_brief`` reads it, or round N-1 had one), which of the model's files are
workflows, whether one deploys Pages (then Pages builds from GitHub Actions,
``build_type: workflow``; otherwise Pages' legacy Jekyll build serves the
branch and the site gets a ``.nojekyll`` file), and describes a workflow run
as the response reports it. Never runs a workflow, never reads or writes
anything under ``.git/``, and never lets a workflow in when the brief did not
ask for one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from utils.paths import is_workflow_path

NOJEKYLL = ".nojekyll"
DEPLOY_PAGES_ACTION = "actions/deploy-pages"
WORKFLOW_PERMISSION = ("the token's workflow permission (classic token: the `workflow` scope; fine-grained token: "
                       "\"Workflows: Read and write\")")
_UPLOAD_PATH = re.compile(r"upload-pages-artifact@[^\n]*\n(?:[^\n]*\n){0,3}?\s*(?:with:\s*\{\s*)?path:\s*([^\s},]+)")
MAX_PROBES = 5


@dataclass(frozen=True)
class WorkflowRun:
    """A workflow run of a pushed commit as observed: its state, conclusion, page and the failing job's log tail."""

    id: int
    status: str  # queued, in_progress, completed ... ("" when no run was seen)
    conclusion: str | None  # success, failure, cancelled ... (None while it runs)
    html_url: str
    name: str = ""
    failed_job: str = ""
    log_tail: str = ""

    @property
    def succeeded(self) -> bool:
        """True for a completed run whose conclusion is success."""
        return self.status == "completed" and self.conclusion == "success"

    @property
    def failed(self) -> bool:
        """True for a completed run that did not succeed."""
        return self.status == "completed" and self.conclusion not in (None, "success", "skipped", "neutral")

    def to_dict(self) -> dict[str, Any]:
        """The run as the response reports it (no log)."""
        shown = asdict(self)
        shown.pop("log_tail")
        return shown


def wants_workflows(asked: bool, previous_files: dict[str, bytes] | None = None) -> bool:
    """True when workflow files belong in this round: the brief asks for one, or round N-1 already had one."""
    return asked or bool(workflow_paths(previous_files or {}))


def workflow_paths(files: dict[str, bytes]) -> list[str]:
    """The workflow files among ``files``, sorted."""
    return sorted(path for path in files if is_workflow_path(path))


def deploys_pages(files: dict[str, bytes]) -> bool:
    """True when a workflow among ``files`` deploys Pages (uses ``actions/deploy-pages``)."""
    return any(DEPLOY_PAGES_ACTION.encode() in files[path] for path in workflow_paths(files))


def probe_paths(files: dict[str, bytes]) -> list[str]:
    """Paths of the site to ask for to see it live: the root, and for a workflow-deployed site without a page
    the files its workflows write into the uploaded folder (``site/result.json`` -> ``result.json``) or, when
    the whole repository is uploaded, the committed files (a root without index.html answers 404)."""
    if not deploys_pages(files) or "index.html" in files:
        return [""]
    found: list[str] = []
    for path in workflow_paths(files):
        text = files[path].decode("utf-8", errors="replace")
        for folder in _UPLOAD_PATH.findall(text) or ["_site"]:
            folder = folder.strip("'\"").strip().removeprefix("./").rstrip("/")
            if folder in ("", "."):
                found += [p for p in sorted(files) if not p.startswith(".")]
                continue
            found += [m.rstrip(".,;:'\"") for m in re.findall(rf"(?<![\w/-]){re.escape(folder)}/([\w./-]+)", text)]
    return ["", *dict.fromkeys(p for p in found if p and not p.endswith("/"))][:MAX_PROBES + 1]


def without_unasked_workflows(files: dict[str, bytes], wanted: bool) -> tuple[dict[str, bytes], list[str]]:
    """``files`` without workflow files unless they are ``wanted`` (``wants_workflows``); and the paths dropped."""
    dropped = [] if wanted else workflow_paths(files)
    return {path: data for path, data in files.items() if path not in dropped}, dropped


def site_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` plus an empty ``.nojekyll`` when Pages' legacy (Jekyll) build will serve them.

    With it, files and folders starting with ``_`` are served and Liquid syntax never breaks a build;
    a site deployed by a workflow is served as the workflow uploads it, so it gets none.
    """
    if deploys_pages(files):
        return files
    return {**files, NOJEKYLL: files.get(NOJEKYLL, b"")}
