"""The GitHub publisher: a public repository per round, one atomic commit, Pages live before the callback.

This module says what to do; every REST call goes through the transport it is
given (``GitHubTransport`` in ``utils.publishers.github_api``), which holds the retry, spacing, rate-limit
and deadline policy and turns failures into ``PublishFailed`` (502, stage
``publish``) with GitHub's message. A name taken by other work is
``RepoNameTaken`` (409). Nothing here names github.com or github.io:
``repo_url`` and ``pages_url`` are the API's ``html_url`` fields. Refs are
percent-encoded, as GitHub's OpenAPI description requires.

Round N > 1 with ``ROUND_REPO=same`` commits on round N-1 in round 1's
repository (``prepare(existing=True)``) and moves ``main`` only by a fast-forward,
so a commit pushed since round N-1 was read is never lost. Round N-1's files come from the
``DATA_DIR`` cache (``round_cache``) when the branch head is the commit kept
there. Workflow files are committed like any file; when one deploys Pages the
Pages source becomes GitHub Actions and ``wait_until_live`` waits for this
commit's run first (``github_actions``; legacy builds: ``github_pages``).

REST calls for round 1 (3 text files, 1 binary), Pages polling excluded:
``POST /user/repos`` (auto_init) · ``POST .../pages`` · ``POST .../git/blobs``
(binary files only; text goes inline in the tree) · ``POST .../git/trees`` ·
``POST .../git/commits`` · ``PATCH .../git/refs/heads%2Fmain`` = 6. The owner
comes from the create answer, so ``GET /user`` is only needed to read or reuse
a repository before creating one.

Why ``auto_init``: the Git Data API answers 409 on an empty repository, and
Pages cannot be enabled before its branch exists. ``auto_init`` gives the
repository a first commit inside the create call (no extra request; seeding it
through the Contents API would cost one), so Pages is enabled at once and
``pages_url`` is known before the app's commit. The app's commit does not
descend from that placeholder: ``main`` is force-moved to it, so round 1's
history is exactly one commit. Round N > 1 first recreates round N-1's tree
and commit (same message, author, committer and dates, hence the same sha when
round N-1 had no parent) and commits on top of it with ``base_tree`` and only
the changed paths. A repository that is empty after all (409 that outlasts a
brief retry) is seeded with one Contents API commit, then replaced the same way.

The request's deadline (the ``deadline`` keyword of each public method) bounds
every call, wait and poll.

Never: put the token in a message, a log line, a commit or a URL; send it to
the Pages host; commit a path under ``.git/`` or ``.github/`` (but workflow files); overwrite a
repository whose head is not this request's work.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from utils.deadline import Deadline
from utils.errors import GitHubCallFailed, PublishFailed, RepoNameTaken
from utils.publishers.base import Capabilities, nonce_of
from utils.publishers.git_tree import TreeEntry, as_text, blob_entry, is_file, refuse_unsafe
from utils.publishers.github_actions import ActionsWatcher
from utils.publishers.github_api import Transport, bounded_by
from utils.publishers.github_pages import PagesWatcher
from utils.publishers.round_cache import RoundCache
from utils.publishers.workflows import WORKFLOW_PERMISSION, WorkflowRun, deploys_pages, probe_paths, workflow_paths
from utils.records import PreviousRound, RepoTarget

log = logging.getLogger(__name__)

BRANCH = "main"
AUTO_INIT_MESSAGE = "Initial commit"
MAX_DESCRIPTION = 350
PAGES_SOURCE = {"source": {"branch": BRANCH, "path": "/"}}


@dataclass(frozen=True)
class _Head:
    """A commit as read back: sha, tree, message, parent count and identities."""

    sha: str
    tree: str
    message: str
    parents: int
    author: dict[str, str]
    committer: dict[str, str]

    @classmethod
    def from_git_commit(cls, data: dict[str, Any]) -> _Head:
        """From a Git Data API commit."""
        return cls(data["sha"], data["tree"]["sha"], data["message"], len(data.get("parents") or []),
                   _identity(data.get("author")), _identity(data.get("committer")))

    @classmethod
    def from_kept(cls, meta: dict[str, Any], sha: str) -> _Head | None:
        """From a round cache entry (``_metadata``); None when it does not describe commit ``sha`` (a miss)."""
        try:
            head = cls(**meta)
        except TypeError:
            return None
        shapes = (isinstance(head.tree, str) and isinstance(head.message, str) and isinstance(head.parents, int)
                  and all(isinstance(who, dict) and all(isinstance(v, str) for v in who.values())
                          for who in (head.author, head.committer)))
        return head if head.sha == sha and shapes else None

    @classmethod
    def from_branch(cls, data: dict[str, Any]) -> _Head:
        """From a Repos API branch (its ``commit`` wraps the git commit)."""
        commit = data["commit"]
        inner = {**commit["commit"], "sha": commit["sha"], "parents": commit.get("parents")}
        return cls.from_git_commit(inner)


class GitHubPublisher:
    """Publishes each round as a public GitHub repository served by Pages (see the module docstring)."""

    capabilities = Capabilities(runs_workflows=True, live_check=True)

    def __init__(self, transport: Transport, username: str = "", *, sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 2.0, rebuild_after: float = 30.0, cache: RoundCache | None = None):
        """``transport``: every REST call goes through it (``GitHubTransport``, built by ``create_services``)."""
        self._api = transport
        self._owner = username
        self._pages = PagesWatcher(self._api, sleep=sleep, poll_interval=poll_interval, rebuild_after=rebuild_after)
        self._actions = ActionsWatcher(self._api, self._pages.pause)
        self._build_types: dict[str, str] = {}  # full name -> Pages build_type
        self._workflows: dict[str, bool] = {}  # commit sha -> True: deploys Pages, False: other workflows only
        self._probes: dict[str, list[str]] = {}  # commit sha -> site paths that answer once it is live
        self._runs: dict[str, WorkflowRun] = {}  # commit sha -> its run, as last observed
        self._full_names: dict[str, str] = {}
        self._heads: dict[str, _Head | None] = {}
        self._commits: dict[str, _Head] = {}
        self._cache = cache or RoundCache(None)

    def __repr__(self) -> str:
        return f"GitHubPublisher(api_url={self._api.api_url!r}, owner={self._owner!r})"

    # -- the Publisher protocol ------------------------------------------------------------

    def prepare(self, repo_name: str, description: str, *, nonce: str | None = None,
                deadline: Deadline | None = None, existing: bool = False) -> RepoTarget:
        """Create the public repository (or reuse this request's, by ``nonce``) and enable Pages.

        ``existing``: the repository holds the previous round (``ROUND_REPO=same``) and is reused as it is.
        """
        kept = self._cache.load_repo(self._api.api_url, repo_name) if existing else None
        if kept and kept.get("full_name") in self._heads:  # its head was just verified (load_round)
            self._full_names[repo_name] = kept["full_name"]
            self._build_types[kept["full_name"]] = kept.get("build_type", "legacy")
            return RepoTarget(name=repo_name, repo_url=kept["repo_url"], pages_url=kept["pages_url"])
        with bounded_by(deadline):
            repo = (self._get_repo(repo_name) if existing else None) \
                or self._create_or_reuse(repo_name, _one_line(description), nonce)
            full = repo["full_name"]
            self._full_names[repo_name] = full
            if repo.get("default_branch", BRANCH) != BRANCH and self._head(full, repo["default_branch"]):
                self._rename_to_main(full, repo["default_branch"])
            pages = (self._get_pages(full) if existing and repo.get("has_pages") else None) or self._enable_pages(full)
            self._build_types[full] = str(pages.get("build_type") or "legacy")
            pages_url = pages.get("html_url")
        if not pages_url:
            raise PublishFailed(f"GitHub did not report a Pages URL for {full}")
        target = RepoTarget(name=repo_name, repo_url=repo["html_url"], pages_url=_folder(pages_url))
        self._remember_repo(target, full)
        return target

    def require_workflow_permission(self, *, deadline: Deadline | None = None) -> None:
        """PublishFailed (502) naming the permission when the token visibly cannot push workflow files."""
        with bounded_by(deadline):
            login = self._actions.require_workflow_scope()
        self._owner = self._owner or login

    def find_commit(self, target: RepoTarget, nonce: str, *, deadline: Deadline | None = None) -> str | None:
        """The head commit's sha if its trailer records ``nonce``, else None."""
        with bounded_by(deadline):
            full = self._full(target.name)
            head = self._heads[full] if full in self._heads else self._head(full)
        return head.sha if head is not None and nonce_of(head.message) == nonce else None

    def load_round(self, repo_name: str, *, deadline: Deadline | None = None) -> PreviousRound | None:
        """Round N-1's head commit and every file (kept in DATA_DIR if this service wrote that head, else read
        by the Git Data API), or None if it does not exist."""
        with bounded_by(deadline):
            full = self._full(repo_name)
            head = self._head(full)
            if head is None:
                return None
            kept = self._cache.load_commit(self._api.api_url, full, head.sha)
            if kept is not None and (cached := _Head.from_kept(kept[1], head.sha)) is not None:
                self._commits[head.sha] = cached
                return PreviousRound(repo_name=repo_name, commit_sha=head.sha, files=kept[0])
            tree = self._api.request("GET", f"/repos/{full}/git/trees/{quote(head.tree, safe='')}",
                                     params={"recursive": "1"}, what=f"read the tree of {full}",
                                     expect=("tree",)).data
            if tree.get("truncated"):
                raise PublishFailed(f"the tree of {full} is too large to read in one call")
            files = {entry["path"]: self._read_blob(full, entry["sha"]) for entry in tree["tree"] if is_file(entry)}
        self._commits[head.sha] = head
        return PreviousRound(repo_name=repo_name, commit_sha=head.sha, files=files)

    def commit(self, target: RepoTarget, files: dict[str, bytes], message: str,
               parent: PreviousRound | None, *, deadline: Deadline | None = None) -> str:
        """Land every file in one commit on ``main`` (parent: round N-1 recreated here); return its sha."""
        refuse_unsafe(files)
        with bounded_by(deadline):
            full = self._full(target.name)
            try:
                commit = self._write(full, files, message, parent)
            except GitHubCallFailed as err:
                if not (err.github_status == 409 and "empty" in err.github_message.lower()):
                    raise
                self._seed(full)
                commit = self._write(full, files, message, parent)
            build_type = "workflow" if deploys_pages(files) else "legacy"
            if build_type != self._build_types.get(full, "legacy"):
                self._actions.set_pages_build_type(full, build_type)  # before the push, so its run may deploy
                self._build_types[full] = build_type
                self._remember_repo(target, full)
            on_parent = parent is not None and self._full(parent.repo_name) == full  # ROUND_REPO=same, a repair
            try:
                self._point_main(full, commit["sha"], force=not on_parent)
            except GitHubCallFailed as err:  # a fine-grained token's missing permission shows only here
                if workflow_paths(files) and "workflow" in err.github_message.lower():
                    raise PublishFailed(f"GitHub refused the workflow files: GITHUB_TOKEN lacks {WORKFLOW_PERMISSION} "
                                        f"(HTTP {err.github_status}: {err.github_message})") from None
                raise
        self._heads[full] = _Head(commit["sha"], commit["tree"]["sha"], message, 1 if parent else 0, {}, {})
        self._cache.save_commit(self._api.api_url, full, commit["sha"], files, _metadata(commit, message, parent))
        if workflow_paths(files):
            self._workflows[commit["sha"]] = deploys_pages(files)
        self._probes[commit["sha"]] = probe_paths(files)
        sha: str = commit["sha"]
        return sha

    def wait_until_live(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> bool:
        """Block until Pages serves ``commit_sha`` (after its workflow run, if any); False when out of time."""
        full = self._full(target.name)
        deploys = self._workflows.get(commit_sha)
        if deploys is None and self._build_types.get(full) == "workflow":  # an earlier attempt's commit (a resumed
            deploys = self._workflows[commit_sha] = True  # build): Pages builds from Actions, so from its run
        with bounded_by(deadline):
            if deploys is not None:
                run = self._runs[commit_sha] = self._actions.wait_for_run(full, commit_sha, deadline)
                if deploys:  # the run deploys Pages: live once it succeeded and the site answers
                    return run.succeeded and self._pages.wait_for_site(target.pages_url, commit_sha, deadline,
                                                                       self._probes.get(commit_sha, [""]))
            if not self._pages.wait_for_build(full, commit_sha, deadline):
                return False
            return self._pages.wait_for_site(target.pages_url, commit_sha, deadline)

    def run_log(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> str:
        """Every job's log of the run of ``commit_sha`` seen by ``wait_until_live``, capped ("" without one)."""
        run = self._runs.get(commit_sha)
        if run is None or run.status != "completed":
            return ""
        return self._actions.jobs_log(self._full(target.name), run, deadline)

    def workflow_run(self, target: RepoTarget, commit_sha: str) -> WorkflowRun | None:
        """The workflow run of ``commit_sha`` as last observed by ``wait_until_live`` (None: no workflow)."""
        return self._runs.get(commit_sha)

    # -- the owner -------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """The account repositories are read from: ``username``, else the token's user (``GET /user``, once)."""
        if not self._owner:
            user = self._api.request("GET", "/user", what="read the token's user", expect=("login",))
            self._owner = user.data["login"]
        return self._owner

    def _full(self, repo_name: str) -> str:
        """``owner/name`` of a repository (as GitHub answered when we created it, or as kept in DATA_DIR)."""
        if repo_name not in self._full_names and (kept := self._cache.load_repo(self._api.api_url, repo_name)):
            self._full_names[repo_name] = kept["full_name"]
        return self._full_names.get(repo_name) or f"{self.owner}/{repo_name}"

    def _remember_repo(self, target: RepoTarget, full: str) -> None:
        """Keep a repository's full name, URLs and Pages build type in DATA_DIR for later rounds."""
        self._cache.save_repo(self._api.api_url, target.name, {
            "full_name": full, "repo_url": target.repo_url, "pages_url": target.pages_url,
            "build_type": self._build_types.get(full, "legacy")})

    # -- repository and Pages -------------------------------------------------------------

    def _create_or_reuse(self, name: str, summary: str, nonce: str | None) -> dict[str, Any]:
        """The new repository, or the existing one when it holds this request's work."""
        body = {"name": name, "description": summary, "private": False, "auto_init": True}
        try:
            repo: dict[str, Any] = self._api.request("POST", "/user/repos", body, what=f"create repository {name}",
                                     expect=("full_name", "html_url"),
                                     verify=lambda: self._unfinished(name, summary)).data
        except GitHubCallFailed as err:
            if err.github_status != 422 or "already exists" not in err.github_message:
                raise
            return self._reuse(name, summary, nonce)
        self._heads[repo["full_name"]] = None
        created: dict[str, Any] = repo
        return created

    def _reuse(self, name: str, summary: str, nonce: str | None) -> dict[str, Any]:
        """The existing repository if its head records ``nonce`` or it is our unfinished one; else 409."""
        repo = self._get_repo(name)
        full = repo["full_name"] if repo else f"{self.owner}/{name}"
        head = self._head(full) if repo else None
        if repo and head and nonce and nonce_of(head.message) == nonce:
            return repo
        if repo and self._is_unfinished(repo, head, summary):
            self._heads[full] = None
            return repo
        raise RepoNameTaken(f"GitHub repository {full} already exists and holds other work (409 Conflict); "
                            "it is not overwritten: use another task name or delete that repository")

    def _unfinished(self, name: str, summary: str) -> dict[str, Any] | None:
        """After a create with an unknown outcome: the repository if we created it, None if it does not exist."""
        repo = self._get_repo(name)
        if repo is None:
            return None
        if not self._is_unfinished(repo, self._head(repo["full_name"]), summary):
            raise RepoNameTaken(f"GitHub repository {repo['full_name']} already exists and holds other work")
        return repo

    def _is_unfinished(self, repo: dict[str, Any], head: _Head | None, summary: str) -> bool:
        """True for a repository with our description and no commit but GitHub's placeholder."""
        placeholder = head is None or (head.parents == 0 and head.message.strip() == AUTO_INIT_MESSAGE)
        return (repo.get("description") or "") == summary and placeholder

    def _read(self, path: str, what: str, expect: tuple[str, ...],
              missing: tuple[int, ...] = (404,)) -> dict[str, Any] | None:
        """GET ``path``'s JSON object, or None when GitHub answers one of the ``missing`` statuses."""
        try:
            data: dict[str, Any] = self._api.request("GET", path, what=what, expect=expect).data
            return data
        except GitHubCallFailed as err:
            if err.github_status in missing:
                return None
            raise

    def _get_repo(self, name: str) -> dict[str, Any] | None:
        """The repository's API object, or None if it does not exist."""
        return self._read(f"/repos/{quote(self.owner)}/{quote(name)}", f"read repository {name}",
                          ("full_name", "html_url"))

    def _head(self, full: str, branch: str = BRANCH) -> _Head | None:
        """A branch's head commit, or None when the repository or branch does not exist or is empty."""
        data = self._read(f"/repos/{full}/branches/{quote(branch)}", f"read branch {branch} of {full}",
                          ("commit.sha", "commit.commit.message", "commit.commit.tree.sha"), missing=(404, 409))
        if data is None:
            return None
        head = _Head.from_branch(data)
        if branch == BRANCH:
            self._heads[full] = head
        return head

    def _rename_to_main(self, full: str, current: str) -> None:
        """Rename the account's default branch (e.g. master) to ``main``, which Pages serves."""
        self._api.request("POST", f"/repos/{full}/branches/{quote(current, safe='')}/rename", {"new_name": BRANCH},
                          what=f"rename branch {current} of {full} to {BRANCH}", verify=lambda: self._head(full))

    def _enable_pages(self, full: str) -> dict[str, Any]:
        """Enable Pages from ``main`` at ``/`` (409: already enabled, then make sure of the source)."""
        try:
            pages = self._post_pages(full)
        except GitHubCallFailed as err:
            if err.github_status == 409:
                pages = self._existing_pages(full)
            elif err.github_status == 422 and self._head(full) is None:
                self._seed(full)
                pages = self._post_pages(full)
            else:
                raise
        return pages if pages.get("html_url") else self._get_pages(full) or pages

    def _post_pages(self, full: str) -> dict[str, Any]:
        """``POST pages``; after a lost answer, the Pages settings show whether it took effect."""
        pages: dict[str, Any] = self._api.request("POST", f"/repos/{full}/pages", PAGES_SOURCE,
                                                  what=f"enable Pages for {full}", expect=(),
                                                  verify=lambda: self._get_pages(full)).data
        return pages

    def _get_pages(self, full: str) -> dict[str, Any] | None:
        """The Pages site object, or None when Pages is not enabled."""
        return self._read(f"/repos/{full}/pages", f"read the Pages settings of {full}", ())

    def _existing_pages(self, full: str) -> dict[str, Any]:
        """Pages that were already enabled, switched to ``main`` at ``/`` if they served something else."""
        pages = self._get_pages(full) or {}
        if pages.get("source") != PAGES_SOURCE["source"]:
            self._api.request("PUT", f"/repos/{full}/pages", PAGES_SOURCE, what=f"point Pages of {full} at {BRANCH}")
        return pages

    def _seed(self, full: str) -> None:
        """Give an empty repository its first commit (Contents API), which the app's commit then replaces."""
        readme = base64.b64encode(f"# {full.split('/', 1)[1]}\n".encode()).decode()
        body = {"message": AUTO_INIT_MESSAGE, "content": readme, "branch": BRANCH}
        self._api.request("PUT", f"/repos/{full}/contents/README.md", body, what=f"initialise {full}",
                          verify=lambda: self._head(full))

    # -- the commit ------------------------------------------------------------------------

    def _write(self, full: str, files: dict[str, bytes], message: str, parent: PreviousRound | None
               ) -> dict[str, Any]:
        """Blobs for binary files, one tree, one commit (on round N-1's commit, recreated here if elsewhere)."""
        if parent is None:
            return self._commit_object(full, message, self._tree(full, self._entries(full, files, {})), [])
        if self._full(parent.repo_name) == full:  # ROUND_REPO=same, or a repair: the parent is already here
            base, base_tree = parent.commit_sha, self._tree_of(parent)
        else:
            base, base_tree = self._recreate(full, parent)
        changes = self._entries(full, files, parent.files)
        tree = self._tree(full, changes, base_tree) if changes else base_tree
        return self._commit_object(full, message, tree, [base])

    def _recreate(self, full: str, parent: PreviousRound) -> tuple[str, str]:
        """Round N-1's commit and tree shas rebuilt here (same identities: the same sha if it had no parent)."""
        meta = self._commits.get(parent.commit_sha) or self._read_commit(parent)
        tree = self._tree(full, self._entries(full, parent.files, {}))
        commit = self._commit_object(full, meta.message, tree, [], meta)["sha"]
        if commit != parent.commit_sha:
            log.info("round N-1 (%s) recreated as parent commit %s", parent.commit_sha[:12], commit[:12])
        return commit, tree

    def _tree_of(self, parent: PreviousRound) -> str:
        """The tree sha of a commit of this repository (known if this publisher wrote or read it)."""
        head = self._heads.get(self._full(parent.repo_name))
        if head is not None and head.sha == parent.commit_sha:
            return head.tree
        return (self._commits.get(parent.commit_sha) or self._read_commit(parent)).tree

    def _read_commit(self, parent: PreviousRound) -> _Head:
        """Round N-1's commit metadata, when this publisher did not load that round itself."""
        full = self._full(parent.repo_name)
        sha = parent.commit_sha
        data = self._api.request("GET", f"/repos/{full}/git/commits/{quote(sha, safe='')}",
                                 what=f"read commit {sha[:12]} of {full}", expect=("sha", "tree.sha", "message")).data
        return _Head.from_git_commit(data)

    def _entries(self, full: str, files: dict[str, bytes], previous: dict[str, bytes]) -> list[TreeEntry]:
        """Tree entries for the paths that differ from ``previous``: text inline, binary as blobs, removals."""
        changed = [self._entry(full, path, data) for path, data in sorted(files.items())
                   if previous.get(path) != data]
        removed = [blob_entry(path, sha=None) for path in sorted(set(previous) - set(files))]
        return changed + removed

    def _entry(self, full: str, path: str, data: bytes) -> TreeEntry:
        """One file's tree entry: inline content for UTF-8 text, a blob sha for anything else."""
        text = as_text(data)
        if text is not None:
            return blob_entry(path, content=text)
        body = {"content": base64.b64encode(data).decode(), "encoding": "base64"}
        blob = self._api.request("POST", f"/repos/{full}/git/blobs", body, what=f"upload {path}", expect=("sha",),
                                 repeatable=True).data
        return blob_entry(path, sha=blob["sha"])

    def _tree(self, full: str, entries: list[TreeEntry], base: str | None = None) -> str:
        """One ``POST git/trees`` (content-addressed, so safe to repeat); its sha."""
        if not entries and base is None:
            raise PublishFailed("nothing to commit: the app has no files")
        body: dict[str, Any] = {"tree": entries, **({"base_tree": base} if base else {})}
        tree: str = self._api.request("POST", f"/repos/{full}/git/trees", body, what="write the git tree",
                                      expect=("sha",), repeatable=True).data["sha"]
        return tree

    def _commit_object(self, full: str, message: str, tree: str, parents: list[str],
                       identities: _Head | None = None) -> dict[str, Any]:
        """One ``POST git/commits``; a repeat after a lost answer leaves at most an unreferenced object."""
        body: dict[str, Any] = {"message": message, "tree": tree, "parents": parents}
        if identities is not None and identities.author:
            body.update(author=identities.author, committer=identities.committer or identities.author)
        commit: dict[str, Any] = self._api.request("POST", f"/repos/{full}/git/commits", body, what="write the commit",
                                                   expect=("sha", "tree.sha"), repeatable=True).data
        return commit

    def _point_main(self, full: str, sha: str, *, force: bool = True) -> None:
        """Move ``main`` to the commit (``force``: replacing the placeholder; else only a fast-forward, so a commit
        pushed since round N-1 was read is never lost); create it if it does not exist."""
        ref = quote(f"heads/{BRANCH}", safe="")
        try:
            self._api.request("PATCH", f"/repos/{full}/git/refs/{ref}", {"sha": sha, "force": force},
                              what=f"move {BRANCH} of {full}", expect=("object.sha",))
        except GitHubCallFailed as err:
            if not force and err.github_status == 422 and "fast forward" in err.github_message.lower():
                raise PublishFailed(f"{BRANCH} of {full} moved since the previous round was read (a commit was "
                                    "pushed meanwhile); it is not overwritten") from None
            if err.github_status != 422 or "workflow" in err.github_message.lower():  # main exists: refused
                raise
            self._api.request("POST", f"/repos/{full}/git/refs", {"ref": f"refs/heads/{BRANCH}", "sha": sha},
                              what=f"create {BRANCH} of {full}", expect=("object.sha",),
                              verify=lambda: self._ref_at(full, ref, sha))

    def _ref_at(self, full: str, ref: str, sha: str) -> bool | None:
        """True if the ref already points at ``sha`` (a lost answer that took effect), else None."""
        try:
            data = self._api.request("GET", f"/repos/{full}/git/ref/{ref}", what=f"read {BRANCH} of {full}",
                                     expect=("object.sha",)).data
        except GitHubCallFailed:
            return None
        return True if data["object"]["sha"] == sha else None

    def _read_blob(self, full: str, sha: str) -> bytes:
        """One file's bytes by blob sha."""
        data = self._api.request("GET", f"/repos/{full}/git/blobs/{quote(sha, safe='')}",
                                 what=f"read blob {sha[:12]} of {full}", expect=("sha",)).data  # may be empty
        content = data.get("content") or ""
        return base64.b64decode(content) if data.get("encoding") == "base64" else content.encode()

def _metadata(commit: dict[str, Any], message: str, parent: PreviousRound | None) -> dict[str, Any]:
    """What recreating a commit elsewhere needs (``_Head``'s fields), from the API's answer."""
    head = _Head(commit["sha"], commit["tree"]["sha"], commit.get("message") or message, 1 if parent else 0,
                 _identity(commit.get("author")), _identity(commit.get("committer")))
    return asdict(head)


def _identity(person: dict[str, Any] | None) -> dict[str, str]:
    """name/email/date of a commit identity, without empty fields."""
    return {key: str(person[key]) for key in ("name", "email", "date") if person and person.get(key)}


def _one_line(text: str) -> str:
    """A repository description: one printable line, at most MAX_DESCRIPTION characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line if len(line) <= MAX_DESCRIPTION else line[: MAX_DESCRIPTION - 1].rstrip() + "…"


def _folder(url: str) -> str:
    """A Pages URL ending in ``/`` so relative links resolve."""
    return url if url.endswith("/") else url + "/"
