"""Serve the local publisher's repositories over HTTP: dumb-protocol git and a Pages-like site.

``/git/<name>.git/...`` serves only the files git's dumb HTTP protocol reads
(HEAD, info/refs, objects/info/packs, loose objects, packs) so ``git clone``
works; ``/pages/<name>/...`` serves files from the committed tree of ``main``.
Read-only: it never writes, never accepts a push, never serves config, hooks
or any path outside an allow-list, and never follows a path out of a repository.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Response, abort, redirect, request, send_file
from werkzeug.wrappers import Response as BaseResponse

from utils.content_types import content_type_for

if TYPE_CHECKING:  # dulwich is imported on first use: `import main` stays quick (bench/import_time.py)
    from dulwich.repo import Repo  # why: dulwich is loaded on the first page served, not on import main

_GIT_FILES = re.compile(
    r"HEAD|info/refs|objects/info/packs"
    r"|objects/[0-9a-f]{2}/[0-9a-f]{38}"
    r"|objects/pack/pack-[0-9a-f]{40}\.(?:pack|idx)"
)
_GIT_TYPES = {
    ".pack": "application/x-git-packed-objects",
    ".idx": "application/x-git-packed-objects-toc",
}
_SITE_CACHE_SIZE = 128


@dataclass(frozen=True)
class Site:
    """One commit's tree, flattened: file path -> blob sha, and the set of folder paths."""

    files: dict[str, bytes]
    folders: frozenset[str]


class SiteCache:
    """A small thread-safe LRU of flattened trees, keyed by repository and commit sha."""

    def __init__(self, size: int = _SITE_CACHE_SIZE):
        self._size = size
        self._items: OrderedDict[tuple[str, bytes], Site] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, repo: Repo, repo_dir: Path, commit_sha: bytes) -> Site:
        """The flattened tree of ``commit_sha``, built once per commit."""
        key = (str(repo_dir), commit_sha)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        site = _flatten(repo, commit_sha)
        with self._lock:
            self._items[key] = site
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return site


def create_local_blueprint(root: Path) -> Blueprint:
    """A read-only blueprint serving ``/git/<name>.git/<path>`` and ``/pages/<name>/<path>`` from ``root``."""
    root = Path(root).resolve()
    cache = SiteCache()
    bp = Blueprint("local_publisher", __name__)

    @bp.get("/git/<repo_dir>/<path:subpath>")
    def git_file(repo_dir: str, subpath: str) -> BaseResponse:
        """One file of git's dumb HTTP protocol, from the allow-list only."""
        name = repo_dir.removesuffix(".git")
        if not repo_dir.endswith(".git") or not _GIT_FILES.fullmatch(subpath):
            abort(404)
        return _send_git_file(_existing_repo(root, name), subpath)

    @bp.get("/pages/<name>")
    def pages_bare(name: str) -> BaseResponse:
        """Redirect to the slash form so the app's relative links resolve."""
        return _slash_redirect()

    @bp.get("/pages/<name>/", defaults={"subpath": ""})
    @bp.get("/pages/<name>/<path:subpath>")
    def pages_file(name: str, subpath: str) -> BaseResponse:
        """A file from the committed tree of ``main``, ``index.html`` for folders, 404.html for misses."""
        from dulwich.repo import Repo  # why: dulwich is loaded on the first page served, not on import main

        from utils.publishers.local import head_sha  # why: loads dulwich (see above)

        repo_dir = _existing_repo(root, name)
        with Repo(str(repo_dir)) as repo:
            commit_sha = head_sha(repo)
            if commit_sha is None:
                abort(404)
            site = cache.get(repo, repo_dir, commit_sha)
            return _serve_page(repo, site, subpath)

    return bp


def _existing_repo(root: Path, name: str) -> Path:
    """The repository folder for ``name`` under ``root``, or a 404."""
    from utils.publishers.local import is_valid_repo_name  # why: it loads dulwich; import main must not

    if not is_valid_repo_name(name):
        abort(404)
    repo_dir = root / f"{name}.git"
    if not (repo_dir / "HEAD").is_file():
        abort(404)
    return repo_dir


def _send_git_file(repo_dir: Path, subpath: str) -> BaseResponse:
    """Send one allow-listed repository file, refusing anything that resolves outside the repository."""
    target = (repo_dir / subpath).resolve()
    if not target.is_relative_to(repo_dir.resolve()) or not target.is_file():
        abort(404)
    immutable = subpath.startswith("objects/") and subpath != "objects/info/packs"
    if subpath.startswith("objects/pack/"):
        mimetype = _GIT_TYPES[posixpath.splitext(subpath)[1]]
    elif immutable:
        mimetype = "application/x-git-loose-object"
    else:
        mimetype = "text/plain"
    response = send_file(target, mimetype=mimetype, conditional=True, etag=True, max_age=None)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return response


def _flatten(repo: Repo, commit_sha: bytes) -> Site:
    """Flatten a commit's tree into a Site."""
    from dulwich.objects import Commit  # why: dulwich is loaded on the first page served, not on import main

    from utils.publishers.local import flatten_tree, read_object  # why: loads dulwich (see above)

    files = flatten_tree(repo, read_object(repo, commit_sha, Commit).tree)
    folders = {posixpath.dirname(p) for p in files}
    for folder in list(folders):
        while folder:
            folder = posixpath.dirname(folder)
            folders.add(folder)
    return Site(files=files, folders=frozenset(folders))


def _serve_page(repo: Repo, site: Site, subpath: str) -> BaseResponse:
    """Resolve ``subpath`` in the site and build the response (file, redirect or 404)."""
    if not _clean_request_path(subpath):
        return _not_found(repo, site)
    folder = subpath.rstrip("/")
    if subpath == "" or subpath.endswith("/"):
        if folder == "" or folder in site.folders:
            return _serve_blob(repo, site, posixpath.join(folder, "index.html"))
        return _not_found(repo, site)
    if subpath in site.files:
        return _serve_blob(repo, site, subpath)
    if subpath in site.folders:
        return _slash_redirect()
    if subpath + ".html" in site.files:
        return _serve_blob(repo, site, subpath + ".html")
    return _not_found(repo, site)


def _clean_request_path(subpath: str) -> bool:
    """False for any empty, '.' or '..' segment, backslash or NUL: those never name a committed file."""
    if "\\" in subpath or "\x00" in subpath:
        return False
    segments = subpath.split("/")
    if segments and segments[-1] == "":
        segments = segments[:-1]
    return all(s not in ("", ".", "..") for s in segments)


def _serve_blob(repo: Repo, site: Site, path: str, status: int = 200) -> BaseResponse:
    """Send one committed file with its content type, ETag (blob sha) and no-cache."""
    blob_sha = site.files.get(path)
    if blob_sha is None:
        return _not_found(repo, site) if status == 200 else _plain_404()
    from dulwich.objects import Blob  # why: as above

    from utils.publishers.local import read_object  # why: loads dulwich (see above)

    response = Response(read_object(repo, blob_sha, Blob).data, status=status, content_type=content_type_for(path))
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if status == 200:
        response.set_etag(blob_sha.decode("ascii"))
        response.make_conditional(request)
    return response


def _not_found(repo: Repo, site: Site) -> BaseResponse:
    """The site's own 404.html with status 404 if it has one, else a plain 404."""
    if "404.html" in site.files:
        return _serve_blob(repo, site, "404.html", status=404)
    return _plain_404()


def _plain_404() -> BaseResponse:
    """A plain-text 404."""
    return Response("404 Not Found\n", status=404, content_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


def _slash_redirect() -> BaseResponse:
    """Redirect to the current path plus '/', keeping the query string."""
    query = request.query_string.decode("latin-1")
    location = request.script_root + request.path + "/" + ("?" + query if query else "")
    return redirect(location, code=301)

