"""The publisher seam: GitHub and the embedded local publisher offer the same methods.

The pipeline only talks to ``Publisher``; it never knows which one it has: what
differs between them is declared as ``Capabilities`` and asked for by name.
A publisher must never commit anything under ``.git/`` or ``.github/`` (but the
model's ``.github/workflows/*.yml`` when the brief asks for a workflow) and
never put a secret in a commit, a URL it returns or an error message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from utils.deadline import Deadline
from utils.publishers.workflows import WorkflowRun
from utils.records import PreviousRound, RepoTarget

MAX_REPO_NAME = 100
NONCE_TRAILER = "Nonce"


@dataclass(frozen=True)
class Capabilities:
    """What a publisher can do; callers ask this, never which publisher they have."""

    runs_workflows: bool = False  # committed GitHub Actions workflows run (else they are stored, not run)
    live_check: bool = False  # the published site is served elsewhere, so re-checking it live after notifying tells
    # something the self-check did not


class Publisher(Protocol):
    """Publishes one round of an app as a repository with a live Pages site.

    ``deadline`` bounds every wait and retry of a call (a local publisher, which never waits, ignores it).
    """

    capabilities: Capabilities

    def prepare(self, repo_name: str, description: str, *, nonce: str | None = None,
                deadline: Deadline | None = None, existing: bool = False) -> RepoTarget:
        """Create the repository (or reuse it when it holds ``nonce``'s work, or when ``existing``: it holds the
        previous round, ROUND_REPO=same) and enable Pages; return its URLs."""
        ...

    def require_workflow_permission(self, *, deadline: Deadline | None = None) -> None:
        """Raise PublishFailed naming the permission when workflow files could not be pushed."""
        ...

    def workflow_run(self, target: RepoTarget, commit_sha: str) -> WorkflowRun | None:
        """The workflow run of ``commit_sha`` observed while waiting (None: no workflow, or not run here)."""
        ...

    def run_log(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> str:
        """Every job's log of the finished workflow run of ``commit_sha``, capped ("" when there is none)."""
        ...

    def find_commit(self, target: RepoTarget, nonce: str, *, deadline: Deadline | None = None) -> str | None:
        """The sha of the head commit if it records ``nonce`` in its trailer, else None."""
        ...

    def load_round(self, repo_name: str, *, deadline: Deadline | None = None) -> PreviousRound | None:
        """Read a published round's head commit and every file, or None if it does not exist."""
        ...

    def commit(self, target: RepoTarget, files: dict[str, bytes], message: str,
               parent: PreviousRound | None, *, deadline: Deadline | None = None) -> str:
        """Land every file in one commit on ``main`` (parent: the previous round's commit); return its sha."""
        ...

    def wait_until_live(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> bool:
        """Block until Pages serves ``commit_sha`` or the deadline passes; True when live."""
        ...


def repo_name_for(task: str, round_number: int) -> str:
    """A valid, stable repository name (at most 100 characters) for a task and round."""
    suffix = f"-round-{round_number}"
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", task).strip("-.") or "app"
    if len(base) + len(suffix) > MAX_REPO_NAME:
        digest = hashlib.sha256(task.encode()).hexdigest()[:8]
        base = base[: MAX_REPO_NAME - len(suffix) - len(digest) - 1].rstrip("-.") + "-" + digest
    return base + suffix


def commit_message(title: str, task: str, round_number: int, nonce: str) -> str:
    """The commit message: a title line and trailers that identify the request."""
    return f"{title}\n\nTask: {task}\nRound: {round_number}\n{NONCE_TRAILER}: {nonce}\n"


def nonce_of(message: str) -> str | None:
    """The nonce recorded in a commit message's trailer, if any."""
    match = re.search(rf"^{NONCE_TRAILER}: (.+)$", message, flags=re.MULTILINE)
    return match.group(1).strip() if match else None
