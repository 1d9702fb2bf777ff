"""The GitHub publisher: a public repository per round, one atomic commit, Pages live before the callback.

PyGithub (imported on first use, so ``import main`` stays quick) talks to
``api_url``; nothing here names github.com or github.io: ``repo_url`` and
``pages_url`` are the API's ``html_url`` fields. PyGithub has no Pages methods,
so those endpoints go through its requester, like the few calls it shapes
wrongly (refs are percent-encoded, as GitHub's OpenAPI description requires).

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

Retries live in one place (``_call``) with an injectable ``sleep``: 403/429
rate limits wait for ``Retry-After`` or ``X-RateLimit-Reset`` (any method: a
rate-limited request was not processed); 5xx and network errors are retried
only for idempotent calls (GET, PATCH, and Git object creation, which is
content-addressed); a POST with an unknown outcome is followed by a state check,
never re-sent blindly. Mutating calls are spaced ``write_interval`` apart as
GitHub's guidance asks. A 2xx answer that is not JSON or lacks the fields we
read counts as an unknown outcome (retried or state-checked like a 5xx).
Failures become ``PublishFailed`` (502, stage ``publish``) with GitHub's
message; a name taken by other work is ``RepoNameTaken`` (409).

The request's deadline (the ``deadline`` keyword of each public method) bounds
everything: no wait or retry starts that would end past it, and each attempt's
timeout is capped by the time left (one PyGithub client per whole-second
timeout, so concurrent requests never share a mutable timeout).

Never: put the token in a message, a log line, a commit or a URL; send it to
the Pages host; commit a path under ``.git/`` or ``.github/``; overwrite a
repository whose head is not this request's work.
"""

from __future__ import annotations

import base64
import contextvars
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from utils import metrics
from utils.config import DEFAULT_GITHUB_API_URL
from utils.deadline import Deadline
from utils.errors import PublishFailed
from utils.models import PreviousRound, RepoTarget
from utils.paths import UnsafePath, safe_relative_path
from utils.publishers.base import nonce_of

if TYPE_CHECKING:
    from github import Github
    from github.GitCommit import GitCommit
    from github.GitTree import GitTree
    from github.InputGitTreeElement import InputGitTreeElement
    from github.Repository import Repository

log = logging.getLogger(__name__)
T = TypeVar("T")
_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("github_deadline", default=None)

BRANCH = "main"
AUTO_INIT_MESSAGE = "Initial commit"
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 1.0
SECONDARY_LIMIT_WAIT = 60.0
MAX_DESCRIPTION = 350
FILE_MODES = ("100644", "100755")
TOKEN_HINT = ("the token needs Administration, Contents and Pages (read and write) and Metadata (read) "
              "permissions on all repositories, or the classic `repo` scope")


class _UnreadableAnswer(Exception):
    """Internal: a 2xx answer without the fields we read (never carries the body)."""


class RepoNameTaken(PublishFailed):
    """The repository exists and holds other work: answered 409, never overwritten."""

    status = 409


class GitHubCallFailed(PublishFailed):
    """A REST call failed for good; carries GitHub's status and message (never the token)."""

    def __init__(self, message: str, *, github_status: int | None, github_message: str, rate_limited: bool):
        super().__init__(message)
        self.github_status = github_status
        self.github_message = github_message
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class _Failure:
    """What went wrong with one attempt of a call."""

    status: int | None
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def unknown_outcome(self) -> bool:
        """True when the call may or may not have taken effect (5xx, no answer)."""
        return self.status is None or self.status >= 500

    @property
    def empty_repository(self) -> bool:
        """True for the Git Data API's 409 on a repository without commits."""
        return self.status == 409 and "empty" in self.message.lower()

    def rate_limit_wait(self) -> float | None:
        """Seconds GitHub asks us to wait on a 403/429 rate limit, or None if this is not one."""
        if self.status not in (403, 429):
            return None
        if "retry-after" in self.headers:
            return _seconds(self.headers["retry-after"], SECONDARY_LIMIT_WAIT)
        if self.headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in self.headers:
            return max(0.0, _seconds(self.headers["x-ratelimit-reset"], time.time()) - time.time()) + 1.0
        if self.status == 429 or "rate limit" in self.message.lower():
            return SECONDARY_LIMIT_WAIT
        return None


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
    def from_branch(cls, data: dict[str, Any]) -> _Head:
        """From a Repos API branch (its ``commit`` wraps the git commit)."""
        commit = data["commit"]
        inner = {**commit["commit"], "sha": commit["sha"], "parents": commit.get("parents")}
        return cls.from_git_commit(inner)


class GitHubPublisher:
    """Publishes each round as a public GitHub repository served by Pages (see the module docstring)."""

    name = "github"

    def __init__(self, token: str, api_url: str = DEFAULT_GITHUB_API_URL, username: str = "", *,
                 timeout: float = 30, sleep: Callable[[float], None] = time.sleep, write_interval: float = 1.0,
                 poll_interval: float = 2.0, rebuild_after: float = 30.0, max_rate_wait: float = 90.0):
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._owner = username
        self._timeout = timeout
        self._sleep = sleep
        self._write_interval = write_interval
        self._poll_interval = poll_interval
        self._rebuild_after = rebuild_after
        self._max_rate_wait = max_rate_wait
        self._clients: dict[int, Github] = {}
        self._clients_lock = threading.Lock()
        self._full_names: dict[str, str] = {}
        self._heads: dict[str, _Head | None] = {}
        self._commits: dict[str, _Head] = {}
        self._last_write = float("-inf")

    def __repr__(self) -> str:
        return f"GitHubPublisher(api_url={self._api_url!r}, owner={self._owner!r})"

    # -- the Publisher protocol ------------------------------------------------------------

    def prepare(self, repo_name: str, description: str, *, nonce: str | None = None,
                deadline: Deadline | None = None) -> RepoTarget:
        """Create the public repository (or reuse this request's, by ``nonce``) and enable Pages."""
        with _within(deadline):
            return self._prepare(repo_name, description, nonce)

    def _prepare(self, repo_name: str, description: str, nonce: str | None) -> RepoTarget:
        """``prepare`` inside the request's deadline."""
        repo = self._create_or_reuse(repo_name, _one_line(description), nonce)
        full = repo["full_name"]
        self._full_names[repo_name] = full
        if repo.get("default_branch", BRANCH) != BRANCH and self._head(full, repo["default_branch"]):
            self._rename_to_main(full, repo["default_branch"])
        pages_url = self._enable_pages(full).get("html_url")
        if not pages_url:
            raise PublishFailed(f"GitHub did not report a Pages URL for {full}")
        return RepoTarget(name=repo_name, repo_url=repo["html_url"], pages_url=_folder(pages_url))

    def find_commit(self, target: RepoTarget, nonce: str, *, deadline: Deadline | None = None) -> str | None:
        """The head commit's sha if its trailer records ``nonce``, else None."""
        with _within(deadline):
            full = self._full(target.name)
            head = self._heads[full] if full in self._heads else self._head(full)
        return head.sha if head is not None and nonce_of(head.message) == nonce else None

    def load_round(self, repo_name: str, *, deadline: Deadline | None = None) -> PreviousRound | None:
        """Round N-1's head commit and every file (by the Git Data API), or None if it does not exist."""
        with _within(deadline):
            return self._load_round(repo_name)

    def _load_round(self, repo_name: str) -> PreviousRound | None:
        """``load_round`` inside the request's deadline."""
        full = self._full(repo_name)
        head = self._head(full)
        if head is None:
            return None
        tree = self._call(f"read the tree of {full}", write=False, repeatable=True, expect=("tree",),
                          send=lambda: self._repo(full).get_git_tree(head.tree, recursive=True).raw_data)
        if tree.get("truncated"):
            raise PublishFailed(f"the tree of {full} is too large to read in one call")
        files = {entry["path"]: self._read_blob(full, entry["sha"]) for entry in tree["tree"] if _is_file(entry)}
        self._commits[head.sha] = head
        return PreviousRound(repo_name=repo_name, commit_sha=head.sha, files=files)

    def commit(self, target: RepoTarget, files: dict[str, bytes], message: str,
               parent: PreviousRound | None, *, deadline: Deadline | None = None) -> str:
        """Land every file in one commit on ``main`` (parent: round N-1 recreated here); return its sha."""
        with _within(deadline):
            return self._commit(target, files, message, parent)

    def _commit(self, target: RepoTarget, files: dict[str, bytes], message: str,
                parent: PreviousRound | None) -> str:
        """``commit`` inside the request's deadline."""
        _refuse_unsafe(files)
        full = self._full(target.name)
        try:
            commit = self._write(full, files, message, parent)
        except GitHubCallFailed as err:
            if not (err.github_status == 409 and "empty" in err.github_message.lower()):
                raise
            self._seed(full)
            commit = self._write(full, files, message, parent)
        self._point_main(full, commit.sha)
        self._heads[full] = _Head(commit.sha, commit.tree.sha, message, 1 if parent else 0, {}, {})
        return commit.sha

    def wait_until_live(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> bool:
        """Block until Pages has built ``commit_sha`` and the site answers 200; False when out of time."""
        full = self._full(target.name)
        with _within(deadline):
            if not self._wait_for_build(full, commit_sha, deadline):
                return False
            return self._wait_for_site(target.pages_url, commit_sha, deadline)

    # -- the client and the retry policy -------------------------------------------------------

    @property
    def _gh(self) -> Github:
        """The PyGithub client whose timeout fits the deadline (lazy objects; our own retries and spacing)."""
        deadline = _DEADLINE.get()
        timeout = self._timeout if deadline is None else min(self._timeout, max(1, math.ceil(deadline.remaining())))
        with self._clients_lock:
            client = self._clients.get(timeout)
            if client is None:
                from github import Auth, Github

                client = Github(auth=Auth.Token(self._token), base_url=self._api_url, timeout=timeout, retry=None,
                                seconds_between_requests=None, seconds_between_writes=None, lazy=True)
                self._clients[timeout] = client
            return client

    @property
    def owner(self) -> str:
        """The account repositories are read from: ``username``, else the token's user (``GET /user``, once)."""
        if not self._owner:
            user = self._call("read the token's user", write=False, repeatable=True, expect=("login",),
                              send=lambda: self._rest("GET", "/user"))
            self._owner = user["login"]
        return self._owner

    def _full(self, repo_name: str) -> str:
        """``owner/name`` of a repository (as GitHub answered when we created it)."""
        return self._full_names.get(repo_name) or f"{self.owner}/{repo_name}"

    def _repo(self, full: str) -> Repository:
        """A lazy PyGithub repository (no request)."""
        return self._gh.get_repo(full)

    def _rest(self, verb: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call through PyGithub's requester (auth, base URL and timeouts in one place)."""
        return self._gh.requester.requestJsonAndCheck(verb, path, input=body)[1]

    def _call(self, what: str, send: Callable[[], T], *, write: bool, repeatable: bool,
              verify: Callable[[], T | None] | None = None, expect: tuple[str, ...] | None = None) -> T:
        """Run one REST call under the retry policy of the module docstring.

        ``expect``: the answer must be a JSON object with these (dotted) fields, else it is unreadable.
        """
        deadline = _DEADLINE.get()
        failure = _Failure(None, "no attempt made")
        for attempt in range(MAX_ATTEMPTS):
            self._space(write)
            try:
                answer = send()
                _check_shape(answer, expect)
                metrics.record_github_call(what.split()[0], "ok")
                return answer
            except self._errors as exc:
                failure = self._failure(exc)
                metrics.record_github_call(what.split()[0], failure.status or "no_answer")
            finally:
                if write:
                    self._last_write = time.monotonic()
            wait = self._retry_wait(failure, attempt, repeatable or verify is not None)
            if wait is None or attempt == MAX_ATTEMPTS - 1 or (deadline and wait > deadline.remaining()):
                break
            self._sleep(wait)
            if verify is not None and failure.unknown_outcome and (done := verify()) is not None:
                return done
        raise self._fail(what, failure)

    @property
    def _errors(self) -> tuple[type[Exception], ...]:
        """The exceptions a failed call raises: an HTTP error answer, or no answer at all."""
        import requests
        from github.GithubException import GithubException

        # ValueError...AttributeError: PyGithub choking on a 2xx body that is not JSON or not an object.
        return (GithubException, requests.RequestException, _UnreadableAnswer, ValueError, TypeError, KeyError,
                AttributeError)

    def _failure(self, exc: Exception) -> _Failure:
        """Status, GitHub's message and the headers of a failed attempt."""
        from github.GithubException import GithubException

        if isinstance(exc, GithubException):
            headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
            return _Failure(exc.status, _github_message(exc.data), headers)
        import requests

        if isinstance(exc, requests.RequestException):
            return _Failure(None, f"no answer ({type(exc).__name__})")
        return _Failure(None, "an unreadable answer (not the JSON GitHub describes)")

    def _retry_wait(self, failure: _Failure, attempt: int, may_repeat: bool) -> float | None:
        """Seconds to wait before the next attempt, or None when retrying would be wrong."""
        if (limit := failure.rate_limit_wait()) is not None:
            return limit if limit <= self._max_rate_wait else None
        if failure.empty_repository:
            return BACKOFF_SECONDS * 2 ** attempt / 2
        if failure.unknown_outcome and may_repeat:
            return BACKOFF_SECONDS * 2 ** attempt
        return None

    def _space(self, write: bool) -> None:
        """Keep mutating calls ``write_interval`` apart."""
        gap = self._last_write + self._write_interval - time.monotonic()
        if write and gap > 0:
            self._sleep(gap)

    def _fail(self, what: str, failure: _Failure) -> GitHubCallFailed:
        """The PublishFailed for a call that failed for good, with GitHub's message and a hint."""
        status, message, wait = failure.status, failure.message, failure.rate_limit_wait()
        if status == 401:
            text = f"GitHub rejected the token (HTTP 401: {message}); set GITHUB_TOKEN to a valid token"
        elif wait is not None:
            text = f"GitHub rate limit while trying to {what} (HTTP {status}: {message}); retry in {wait:.0f} s"
        elif status == 403:
            text = f"GitHub refused to {what} (HTTP 403: {message}); {TOKEN_HINT}"
        elif status is None and message.startswith("no answer"):
            text = f"could not reach GitHub to {what}: {message}"
        elif status is None:
            text = f"GitHub gave {message} when asked to {what}"
        else:
            text = f"GitHub could not {what} (HTTP {status}: {message})"
        return GitHubCallFailed(self._redact(text), github_status=status, github_message=self._redact(message),
                                rate_limited=wait is not None)

    def _redact(self, text: str) -> str:
        """``text`` without the token, whatever put it there."""
        return text.replace(self._token, "[token]") if self._token else text

    # -- repository and Pages -------------------------------------------------------------

    def _create_or_reuse(self, name: str, summary: str, nonce: str | None) -> dict[str, Any]:
        """The new repository, or the existing one when it holds this request's work."""
        try:
            repo = self._call(f"create repository {name}", write=True, repeatable=False,
                              expect=("full_name", "html_url"), send=lambda: self._gh.get_user().create_repo(
                                  name, description=summary, private=False, auto_init=True).raw_data,
                              verify=lambda: self._unfinished(name, summary))
        except GitHubCallFailed as err:
            if err.github_status != 422 or "already exists" not in err.github_message:
                raise
            return self._reuse(name, summary, nonce)
        self._heads[repo["full_name"]] = None
        return repo

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

    def _get_repo(self, name: str) -> dict[str, Any] | None:
        """The repository's API object, or None if it does not exist."""
        path = f"/repos/{quote(self.owner)}/{quote(name)}"
        try:
            return self._call(f"read repository {name}", send=lambda: self._rest("GET", path),
                              write=False, repeatable=True, expect=("full_name", "html_url"))
        except GitHubCallFailed as err:
            if err.github_status == 404:
                return None
            raise

    def _head(self, full: str, branch: str = BRANCH) -> _Head | None:
        """A branch's head commit, or None when the repository or branch does not exist or is empty."""
        try:
            data = self._call(f"read branch {branch} of {full}", write=False, repeatable=True,
                              expect=("commit.sha", "commit.commit.message", "commit.commit.tree.sha"),
                              send=lambda: self._repo(full).get_branch(branch).raw_data)
        except GitHubCallFailed as err:
            if err.github_status in (404, 409):
                return None
            raise
        head = _Head.from_branch(data)
        if branch == BRANCH:
            self._heads[full] = head
        return head

    def _rename_to_main(self, full: str, current: str) -> None:
        """Rename the account's default branch (e.g. master) to ``main``, which Pages serves."""
        self._call(f"rename branch {current} of {full} to {BRANCH}", write=True, repeatable=False,
                   send=lambda: self._rest("POST", f"/repos/{full}/branches/{quote(current, safe='')}/rename",
                                           {"new_name": BRANCH}),
                   verify=lambda: self._head(full))

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
        return self._call(f"enable Pages for {full}", write=True, repeatable=False, expect=(),
                          send=lambda: self._rest("POST", f"/repos/{full}/pages", _pages_source()),
                          verify=lambda: self._get_pages(full))

    def _get_pages(self, full: str) -> dict[str, Any] | None:
        """The Pages site object, or None when Pages is not enabled."""
        try:
            return self._call(f"read the Pages settings of {full}", write=False, repeatable=True, expect=(),
                              send=lambda: self._rest("GET", f"/repos/{full}/pages"))
        except GitHubCallFailed as err:
            if err.github_status == 404:
                return None
            raise

    def _existing_pages(self, full: str) -> dict[str, Any]:
        """Pages that were already enabled, switched to ``main`` at ``/`` if they served something else."""
        pages = self._get_pages(full) or {}
        if pages.get("source") != _pages_source()["source"]:
            self._call(f"point Pages of {full} at {BRANCH}", write=True, repeatable=True,
                       send=lambda: self._rest("PUT", f"/repos/{full}/pages", _pages_source()))
        return pages

    def _seed(self, full: str) -> None:
        """Give an empty repository its first commit (Contents API), which the app's commit then replaces."""
        readme = base64.b64encode(f"# {full.split('/', 1)[1]}\n".encode()).decode()
        body = {"message": AUTO_INIT_MESSAGE, "content": readme, "branch": BRANCH}
        path = f"/repos/{full}/contents/README.md"
        self._call(f"initialise {full}", write=True, repeatable=False, send=lambda: self._rest("PUT", path, body),
                   verify=lambda: self._head(full))

    # -- the commit ------------------------------------------------------------------------

    def _write(self, full: str, files: dict[str, bytes], message: str, parent: PreviousRound | None) -> GitCommit:
        """Blobs for binary files, one tree, one commit (on round N-1's recreated commit, if any)."""
        if parent is None:
            return self._commit_object(full, message, self._tree(full, self._elements(full, files, {})), [])
        base, base_tree = self._recreate(full, parent)
        changes = self._elements(full, files, parent.files)
        tree = self._tree(full, changes, base_tree) if changes else base_tree
        return self._commit_object(full, message, tree, [base])

    def _recreate(self, full: str, parent: PreviousRound) -> tuple[GitCommit, GitTree]:
        """Round N-1's tree and commit rebuilt here (same identities: the same sha if it had no parent)."""
        meta = self._commits.get(parent.commit_sha) or self._read_commit(parent)
        tree = self._tree(full, self._elements(full, parent.files, {}))
        commit = self._commit_object(full, meta.message, tree, [], meta)
        if commit.sha != parent.commit_sha:
            log.info("round N-1 (%s) recreated as parent commit %s", parent.commit_sha[:12], commit.sha[:12])
        return commit, tree

    def _read_commit(self, parent: PreviousRound) -> _Head:
        """Round N-1's commit metadata, when this publisher did not load that round itself."""
        full = self._full(parent.repo_name)
        data = self._call(f"read commit {parent.commit_sha[:12]} of {full}", write=False, repeatable=True,
                          expect=("sha", "tree.sha", "message"),
                          send=lambda: self._repo(full).get_git_commit(parent.commit_sha).raw_data)
        return _Head.from_git_commit(data)

    def _elements(self, full: str, files: dict[str, bytes],
                  previous: dict[str, bytes]) -> list[InputGitTreeElement]:
        """Tree entries for the paths that differ from ``previous``: text inline, binary as blobs, removals."""
        from github import InputGitTreeElement

        changed = [self._element(full, path, data) for path, data in sorted(files.items())
                   if previous.get(path) != data]
        removed = [InputGitTreeElement(path, "100644", "blob", sha=None) for path in sorted(set(previous) - set(files))]
        return changed + removed

    def _element(self, full: str, path: str, data: bytes) -> InputGitTreeElement:
        """One file's tree entry: inline content for UTF-8 text, a blob sha for anything else."""
        from github import InputGitTreeElement

        text = _as_text(data)
        if text is not None:
            return InputGitTreeElement(path, "100644", "blob", content=text)
        encoded = base64.b64encode(data).decode()
        blob = self._call(f"upload {path}", write=True, repeatable=True, expect=("sha",),
                          send=lambda: self._repo(full).create_git_blob(encoded, "base64"))
        return InputGitTreeElement(path, "100644", "blob", sha=blob.sha)

    def _tree(self, full: str, elements: list[InputGitTreeElement], base: GitTree | None = None) -> GitTree:
        """One ``POST git/trees`` (content-addressed, so safe to repeat)."""
        if not elements and base is None:
            raise PublishFailed("nothing to commit: the app has no files")
        return self._call("write the git tree", write=True, repeatable=True, expect=("sha",),
                          send=lambda: self._repo(full).create_git_tree(elements, *([base] if base else [])))

    def _commit_object(self, full: str, message: str, tree: GitTree, parents: list[GitCommit],
                       identities: _Head | None = None) -> GitCommit:
        """One ``POST git/commits``; a repeat after a lost answer leaves at most an unreferenced object."""
        from github import InputGitAuthor

        extra: dict[str, Any] = {}
        if identities is not None and identities.author:
            extra["author"] = InputGitAuthor(**identities.author)
            extra["committer"] = InputGitAuthor(**(identities.committer or identities.author))
        return self._call("write the commit", write=True, repeatable=True, expect=("sha", "tree.sha"),
                          send=lambda: self._repo(full).create_git_commit(message, tree, parents, **extra))

    def _point_main(self, full: str, sha: str) -> None:
        """Force ``main`` to the commit (replacing the placeholder); create it if it does not exist."""
        ref = quote(f"heads/{BRANCH}", safe="")
        try:
            self._call(f"move {BRANCH} of {full}", write=True, repeatable=True, expect=("object.sha",),
                       send=lambda: self._rest("PATCH", f"/repos/{full}/git/refs/{ref}", {"sha": sha, "force": True}))
        except GitHubCallFailed as err:
            if err.github_status != 422:
                raise
            self._call(f"create {BRANCH} of {full}", write=True, repeatable=False, expect=("object.sha",),
                       send=lambda: self._repo(full).create_git_ref(f"refs/heads/{BRANCH}", sha),
                       verify=lambda: self._ref_at(full, ref, sha))

    def _ref_at(self, full: str, ref: str, sha: str) -> bool | None:
        """True if the ref already points at ``sha`` (a lost answer that took effect), else None."""
        try:
            data = self._call(f"read {BRANCH} of {full}", write=False, repeatable=True, expect=("object.sha",),
                              send=lambda: self._rest("GET", f"/repos/{full}/git/ref/{ref}"))
        except GitHubCallFailed:
            return None
        return True if data["object"]["sha"] == sha else None

    def _read_blob(self, full: str, sha: str) -> bytes:
        """One file's bytes by blob sha."""
        data = self._call(f"read blob {sha[:12]} of {full}", write=False, repeatable=True, expect=("content",),
                          send=lambda: self._repo(full).get_git_blob(sha).raw_data)
        content = data.get("content") or ""
        return base64.b64decode(content) if data.get("encoding") == "base64" else content.encode()

    # -- waiting for Pages -----------------------------------------------------------------

    def _wait_for_build(self, full: str, sha: str, deadline: Deadline) -> bool:
        """Poll the latest build until it is ``built`` for ``sha``; one rebuild on error; False when out of time."""
        started, requested, rebuilt_from = time.monotonic(), False, None
        while True:
            build = self._latest_build(full)
            if build is not None and build.get("commit") == sha:
                if build.get("status") == "built":
                    return True
                if build.get("status") == "errored" and build.get("url") != rebuilt_from:
                    if rebuilt_from is not None:
                        error = (build.get("error") or {}).get("message")
                        log.warning("Pages build of %s failed twice: %s", full, error)
                        return False
                    if not self._request_build(full):
                        return False
                    rebuilt_from = build.get("url")
            elif not requested and time.monotonic() - started >= self._rebuild_after:
                self._request_build(full)
                requested = True
            if not self._pause(deadline):
                return False

    def _latest_build(self, full: str) -> dict[str, Any] | None:
        """The latest Pages build, or None when there is none yet or GitHub did not answer usefully."""
        try:
            return self._call(f"read the Pages build of {full}", write=False, repeatable=True, expect=(),
                              send=lambda: self._rest("GET", f"/repos/{full}/pages/builds/latest"))
        except GitHubCallFailed as err:
            if err.github_status == 401 or (err.github_status == 403 and not err.rate_limited):
                raise
            return None

    def _request_build(self, full: str) -> bool:
        """Ask for a Pages build; never repeated blindly (polling shows whether it started); False if refused."""
        try:
            self._call(f"request a Pages build of {full}", write=True, repeatable=False,
                       send=lambda: self._rest("POST", f"/repos/{full}/pages/builds"))
        except GitHubCallFailed as err:
            log.warning("could not request a Pages build: %s", err.message)
            return err.github_status is None or err.github_status >= 500  # polling shows if it started
        return True

    def _wait_for_site(self, pages_url: str, sha: str, deadline: Deadline) -> bool:
        """GET the site with a cache-busting query until it answers 200 (no token is sent there)."""
        import requests

        for attempt in itertools.count(1):
            try:
                answer = requests.get(pages_url, params={"v": f"{sha[:12]}-{attempt}"},
                                      headers={"Cache-Control": "no-cache"},
                                      timeout=max(0.5, min(10.0, deadline.remaining())))
                if answer.status_code == 200:
                    return True
            except requests.RequestException as exc:
                log.info("Pages site not reachable yet: %s", type(exc).__name__)
            if not self._pause(deadline):
                return False
        return False

    def _pause(self, deadline: Deadline) -> bool:
        """Sleep one poll interval (never past the deadline); False once the deadline has passed."""
        wait = min(self._poll_interval, deadline.remaining())
        if wait <= 0:
            return False
        self._sleep(wait)
        return not deadline.expired()


@contextmanager
def _within(deadline: Deadline | None) -> Iterator[None]:
    """Bound this thread's GitHub calls by ``deadline`` (None: keep the caller's, if any)."""
    token = _DEADLINE.set(deadline or _DEADLINE.get())
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _check_shape(answer: Any, expect: tuple[str, ...] | None) -> None:
    """Raise ``_UnreadableAnswer`` unless ``answer`` (or its raw data) is an object with the ``expect`` fields."""
    if expect is None:
        return
    data = answer if isinstance(answer, dict) else getattr(answer, "raw_data", None)
    if not isinstance(data, dict) or not all(_field(data, name) for name in expect):
        raise _UnreadableAnswer()


def _field(data: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of nested objects, or None."""
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _pages_source() -> dict[str, Any]:
    """The Pages source every round uses: branch ``main``, folder ``/``."""
    return {"source": {"branch": BRANCH, "path": "/"}}


def _refuse_unsafe(files: dict[str, bytes]) -> None:
    """Refuse the whole commit if any path is absolute, escapes, or reaches ``.git/`` or ``.github/``."""
    for path in files:
        try:
            safe_relative_path(path)
        except UnsafePath as exc:
            raise PublishFailed(f"refusing to commit {path!r}: {exc}") from None


def _is_file(entry: dict[str, Any]) -> bool:
    """A regular file of a tree listing that may be carried into the next round."""
    if entry.get("type") != "blob" or entry.get("mode") not in FILE_MODES:
        return False
    try:
        safe_relative_path(entry["path"])
    except UnsafePath:
        return False
    return True


def _as_text(data: bytes) -> str | None:
    """The file as text if it can go inline in a tree (UTF-8, no NUL), else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _identity(person: dict[str, Any] | None) -> dict[str, str]:
    """name/email/date of a commit identity, without empty fields."""
    return {key: str(person[key]) for key in ("name", "email", "date") if person and person.get(key)}


def _github_message(data: Any) -> str:
    """GitHub's error message with its field errors, e.g. ``Repository creation failed. (name already exists...)``."""
    if not isinstance(data, dict):
        return str(data or "")[:300]
    details = [str(e.get("message") or e.get("code")) for e in data.get("errors") or [] if isinstance(e, dict)]
    message = str(data.get("message") or "")
    return f"{message} ({'; '.join(details)})" if details else message


def _one_line(text: str) -> str:
    """A repository description: one printable line, at most MAX_DESCRIPTION characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line if len(line) <= MAX_DESCRIPTION else line[: MAX_DESCRIPTION - 1].rstrip() + "…"


def _folder(url: str) -> str:
    """A Pages URL ending in ``/`` so relative links resolve."""
    return url if url.endswith("/") else url + "/"


def _seconds(value: str, default: float) -> float:
    """A header's number of seconds, or ``default`` when it is not a number."""
    try:
        return float(value)
    except ValueError:
        return default
