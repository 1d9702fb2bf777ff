"""The embedded local publisher: each round is a bare git repository under a root folder.

Used when no GitHub token is configured, so a new user sees the whole round trip.
Repositories are written with dulwich (never by shelling out to git) and served
by ``utils.web.local_pages`` as dumb-HTTP git and as a Pages-like site. It never
commits anything under ``.git/`` or ``.github/`` but workflow files (which it stores
and cannot run), never moves ``main`` except by compare-and-set, and never puts a
filesystem path or secret in an error message.

Crash safety: objects are written before ``main`` moves, so a killed process
leaves at most unreferenced objects. Git's ``*.lock`` files are the exception: a
process killed while updating a ref leaves one behind, which would block the
repository forever, so a lock older than ``STALE_LOCK_SECONDS`` is removed.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import update_server_info

from utils.deadline import Deadline
from utils.errors import PublishFailed
from utils.paths import UnsafePath, is_workflow_path, safe_relative_path
from utils.publishers.base import Capabilities, nonce_of
from utils.publishers.workflows import WorkflowRun
from utils.records import PreviousRound, RepoTarget

MAIN_REF = Ref(b"refs/heads/main")
GitObject = TypeVar("GitObject", bound=ShaFile)
FILE_MODE = 0o100644
TREE_MODE = 0o040000
_REPO_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_FORBIDDEN_SEGMENTS = {".git", ".github"}
# Lock files a commit takes (main, then the dumb-HTTP indexes); each is held for milliseconds.
_LOCKS = ("refs/heads/main.lock", "info/refs.lock", "objects/info/packs.lock")
STALE_LOCK_SECONDS = 10.0

_locks_guard = threading.Lock()
_locks: dict[Path, threading.Lock] = {}


def is_valid_repo_name(name: str) -> bool:
    """True when ``name`` is a plain repository name: ``[A-Za-z0-9._-]+`` not starting with ``.``."""
    return isinstance(name, str) and len(name) <= 200 and _REPO_NAME.fullmatch(name) is not None


def repo_path(root: Path, name: str) -> Path:
    """The bare repository folder for ``name`` under ``root`` (``root/<name>.git``)."""
    if not is_valid_repo_name(name):
        raise PublishFailed(f"invalid repository name {name!r}: use letters, digits, '.', '_' or '-'")
    return root / f"{name}.git"


def _lock_for(path: Path) -> threading.Lock:
    """The process-wide lock guarding writes to one repository."""
    with _locks_guard:
        return _locks.setdefault(path.resolve(), threading.Lock())


def read_object(repo: Repo, sha: bytes, kind: type[GitObject]) -> GitObject:
    """Object ``sha`` of ``repo`` as ``kind`` (Commit, Tree, Blob): KeyError when absent, ValueError if another kind."""
    found = repo.object_store[ObjectID(sha)]
    if not isinstance(found, kind):
        raise ValueError(f"object {sha[:12]!r} is a {type(found).__name__}, not a {kind.__name__}")
    return found


def head_sha(repo: Repo) -> bytes | None:
    """The sha ``refs/heads/main`` points at, or None if the branch does not exist."""
    try:
        return repo.refs[MAIN_REF]
    except KeyError:
        return None


def flatten_tree(repo: Repo, tree_sha: bytes, prefix: str = "") -> dict[str, bytes]:
    """Map every regular file path in a tree (recursively) to its blob sha."""
    entries: dict[str, bytes] = {}
    tree = read_object(repo, tree_sha, Tree)
    for entry in tree.iteritems():
        path = prefix + entry.path.decode("utf-8", "surrogateescape")
        if entry.mode == TREE_MODE:
            entries.update(flatten_tree(repo, entry.sha, path + "/"))
        elif entry.mode & 0o170000 == 0o100000:
            entries[path] = entry.sha
    return entries


class LocalPublisher:
    """Publishes each round as a bare repository ``root/<repo_name>.git`` served by this service."""

    capabilities = Capabilities()  # stores workflows without running them; serves the committed tree itself

    def __init__(self, root: Path, public_url: str, *,
                 author: str = "LLM Code Deployment <deploy@localhost>"):
        self.root = Path(root)
        self.public_url = public_url.rstrip("/")
        self.author = author.encode("utf-8")

    def prepare(self, repo_name: str, description: str, *, nonce: str | None = None,
                deadline: Deadline | None = None, existing: bool = False) -> RepoTarget:
        """Create the bare repository if missing (``existing``: ROUND_REPO=same reuses it) and return its URLs."""
        path = repo_path(self.root, repo_name)
        with _lock_for(path):
            if not path.exists():
                self._create(path, description)
        return RepoTarget(name=repo_name,
                          repo_url=f"{self.public_url}/git/{repo_name}.git",
                          pages_url=f"{self.public_url}/pages/{repo_name}/")

    def _create(self, path: Path, description: str) -> None:
        """Initialise a bare repository with HEAD -> refs/heads/main and a description."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            Repo.init_bare(str(path), mkdir=True, default_branch=b"main").close()
            one_line = " ".join(description.split())[:300]
            (path / "description").write_text(one_line + "\n", encoding="utf-8")
        except OSError as exc:
            raise PublishFailed(f"could not create local repository {path.name}: {exc.strerror}") from exc

    def commit(self, target: RepoTarget, files: dict[str, bytes], message: str,
               parent: PreviousRound | None, *, deadline: Deadline | None = None) -> str:
        """Land every file in one commit on ``main`` and return its sha.

        The commit's parent is the current head when ``main`` exists (a retry
        fast-forwards), else ``parent``'s commit, whose objects are copied in
        from the previous round's repository so the history reads as a diff.
        """
        _check_files(files)
        path = repo_path(self.root, target.name)
        with _lock_for(path), self._open(path) as repo:
            _remove_stale_locks(path)
            old = head_sha(repo)
            objects, tree_sha = build_tree(files)
            if parent is not None:
                objects = self._copy_parent(parent) + objects
            commit = self._new_commit(tree_sha, message, _parents(old, parent))
            _add_missing(repo, objects + [commit])
            self._move_main(repo, old, commit.id)
            _write_clone_indexes(repo)
            return commit.id.decode("ascii")

    def _new_commit(self, tree_sha: bytes, message: str, parents: list[bytes]) -> Commit:
        """A commit object with the configured author/committer and the current time in UTC."""
        commit = Commit()
        commit.tree = ObjectID(tree_sha)
        commit.parents = [ObjectID(sha) for sha in parents]
        commit.author = commit.committer = self.author
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode("utf-8")
        return commit

    def _copy_parent(self, parent: PreviousRound) -> list[ShaFile]:
        """Every object reachable from the previous round's commit, read from its repository."""
        path = repo_path(self.root, parent.repo_name)
        if not path.is_dir():
            raise PublishFailed(f"previous round's repository {parent.repo_name} does not exist")
        with self._open(path) as source:
            try:
                return list(_reachable(source, parent.commit_sha.encode("ascii")))
            except (KeyError, ValueError) as exc:
                raise PublishFailed(f"previous round {parent.repo_name} lacks commit {parent.commit_sha}") from exc

    def _move_main(self, repo: Repo, old: bytes | None, new: bytes) -> None:
        """Point ``main`` at ``new`` only if it still points at ``old`` (compare-and-set)."""
        try:
            if old is None:
                moved = repo.refs.add_if_new(MAIN_REF, ObjectID(new), message=b"commit (initial)")
            else:
                moved = repo.refs.set_if_equals(MAIN_REF, ObjectID(old), ObjectID(new), message=b"commit")
        except FileLocked:
            raise PublishFailed("main is locked by another writer of the local repository; retry in a minute") from None
        if not moved:
            raise PublishFailed("main moved while committing; the local repository was changed concurrently")

    def load_round(self, repo_name: str, *, deadline: Deadline | None = None) -> PreviousRound | None:
        """Read a published round's head commit and every file, or None if it does not exist."""
        with self._head(repo_name) as (repo, sha):
            if repo is None or sha is None:
                return None
            tree = read_object(repo, sha, Commit).tree
            files = {p: read_object(repo, b, Blob).data for p, b in flatten_tree(repo, tree).items()}
            return PreviousRound(repo_name=repo_name, commit_sha=sha.decode("ascii"), files=files)

    def find_commit(self, target: RepoTarget, nonce: str, *, deadline: Deadline | None = None) -> str | None:
        """The sha of the head commit if it records ``nonce`` in its trailer, else None."""
        with self._head(target.name) as (repo, sha):
            if repo is None or sha is None:
                return None
            message = read_object(repo, sha, Commit).message.decode("utf-8", "replace")
            return sha.decode("ascii") if nonce_of(message) == nonce else None

    @contextmanager
    def _head(self, repo_name: str) -> Iterator[tuple[Repo | None, bytes | None]]:
        """The open repository and its head sha; (None, None) when the repository does not exist."""
        path = repo_path(self.root, repo_name)
        if not path.is_dir():
            yield None, None
            return
        with self._open(path) as repo:
            yield repo, head_sha(repo)

    def wait_until_live(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> bool:
        """The local site serves ``main`` directly: live as soon as ``main`` points at ``commit_sha``.

        The clone indexes are rewritten here too: a process killed between moving
        ``main`` and writing them would otherwise leave ``git clone`` a stale view.
        """
        path = repo_path(self.root, target.name)
        if not path.is_dir():
            return False
        with _lock_for(path), self._open(path) as repo:
            sha = head_sha(repo)
            if sha is None or sha.decode("ascii") != commit_sha:
                return False
            _remove_stale_locks(path)
            _write_clone_indexes(repo)
            return True

    def require_workflow_permission(self, *, deadline: Deadline | None = None) -> None:
        """Nothing to check: the local publisher stores workflow files (it cannot run them)."""

    def run_log(self, target: RepoTarget, commit_sha: str, deadline: Deadline) -> str:
        """No workflow runs here, so no log."""
        return ""

    def workflow_run(self, target: RepoTarget, commit_sha: str) -> WorkflowRun | None:
        """None: workflows are stored, never run here."""
        return None

    @staticmethod
    def _open(path: Path) -> Repo:
        """Open a bare repository or raise PublishFailed naming it."""
        try:
            return Repo(str(path))
        except (NotGitRepository, OSError) as exc:
            raise PublishFailed(f"local repository {path.name} does not exist; prepare it first") from exc


def _parents(old_head: bytes | None, parent: PreviousRound | None) -> list[bytes]:
    """The new commit's parents: the current head (a retry fast-forwards), else the previous round's commit."""
    if old_head is not None:
        return [old_head]
    return [parent.commit_sha.encode("ascii")] if parent is not None else []


def _write_clone_indexes(repo: Repo) -> None:
    """Write info/refs and objects/info/packs, which dumb-HTTP ``git clone`` reads first."""
    try:
        update_server_info(repo)
    except FileLocked:
        raise PublishFailed("the local repository's clone index is locked by another writer;"
                            " retry in a minute") from None


def _remove_stale_locks(path: Path) -> None:
    """Remove lock files a killed process left behind (older than any live writer would hold them)."""
    for name in _LOCKS:
        lock = path / name
        try:
            if time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                os.unlink(lock)
        except FileNotFoundError:
            continue


def _check_files(files: dict[str, bytes]) -> None:
    """Refuse an empty file set, non-bytes content and any path that is not already safe."""
    if not files:
        raise PublishFailed("refusing to publish an empty commit: no files")
    for path, data in files.items():
        try:
            safe = safe_relative_path(path, allow_workflows=True)
        except UnsafePath as exc:
            raise PublishFailed(f"refusing to publish {path!r}: {exc}") from exc
        special = _FORBIDDEN_SEGMENTS & {s.lower() for s in path.split("/")} and not is_workflow_path(path)
        if safe != path or special:
            raise PublishFailed(f"refusing to publish {path!r}: not a sanitized app path")
        if not isinstance(data, (bytes, bytearray)):
            raise PublishFailed(f"refusing to publish {path!r}: content must be bytes")


def build_tree(files: dict[str, bytes]) -> tuple[list[ShaFile], bytes]:
    """Blobs and nested trees for ``path -> bytes``; returns the objects and the root tree sha."""
    nested: dict[str, Any] = {}
    for path, data in files.items():
        *folders, leaf = path.split("/")
        node = nested
        for folder in folders:
            node = node.setdefault(folder, {})
            if not isinstance(node, dict):
                raise PublishFailed(f"refusing to publish {path!r}: a parent folder is also a file")
        if isinstance(node.get(leaf), dict):
            raise PublishFailed(f"refusing to publish {path!r}: it is also a folder")
        node[leaf] = bytes(data)
    objects: list[ShaFile] = []
    return objects, _write_tree(nested, objects).id


def _write_tree(node: dict[str, Any], objects: list[ShaFile]) -> Tree:
    """Build one tree (children first), appending every new object to ``objects``."""
    tree = Tree()
    for name, child in node.items():
        if isinstance(child, dict):
            tree.add(name.encode("utf-8"), TREE_MODE, _write_tree(child, objects).id)
        else:
            blob = Blob.from_string(child)
            objects.append(blob)
            tree.add(name.encode("utf-8"), FILE_MODE, blob.id)
    objects.append(tree)
    return tree


def _reachable(repo: Repo, commit_sha: bytes) -> Iterator[ShaFile]:
    """Yield every commit, tree and blob reachable from ``commit_sha`` (each once)."""
    seen: set[bytes] = set()
    pending = [commit_sha]
    while pending:
        sha = pending.pop()
        if sha in seen:
            continue
        seen.add(sha)
        obj = repo.object_store[ObjectID(sha)]
        yield obj
        if isinstance(obj, Commit):
            pending.extend([obj.tree, *obj.parents])
        elif isinstance(obj, Tree):
            pending.extend(entry.sha for entry in obj.iteritems() if entry.mode != 0o160000)


def _add_missing(repo: Repo, objects: list[ShaFile]) -> None:
    """Write the objects the repository does not have yet, as one pack."""
    store = repo.object_store
    missing: dict[bytes, ShaFile] = {}
    for obj in objects:
        if obj.id not in missing and obj.id not in store:
            missing[obj.id] = obj
    if missing:
        store.add_objects([(obj, None) for obj in missing.values()])
