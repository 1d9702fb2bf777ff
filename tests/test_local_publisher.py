"""The local publisher and its web blueprint, over real HTTP on loopback and with the real git binary."""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.fakes.server import LocalServer
from utils.content_types import content_type_for
from utils.deadline import Deadline
from utils.errors import PublishFailed
from utils.publishers.base import commit_message
from utils.publishers.local import LocalPublisher
from utils.records import RepoTarget
from utils.web.local_pages import create_local_blueprint

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
APP = {
    "index.html": b"<!doctype html><title>Sales</title><script src='app.js'></script>",
    "app.js": b"fetch('data/sales.csv').then(r => r.text());\n",
    "data/sales.csv": b"region,amount\nnorth,10\nsouth,20\n",
    "docs/index.html": b"<h1>Docs</h1>",
    "docs/guide/index.html": b"<h1>Guide</h1>",
    "img/logo.png": PNG,
    "README.md": b"# Sales\n",
    "LICENSE": b"MIT License\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One Flask app with only the local blueprint, on a real loopback port, for the whole module."""
    root = tmp_path_factory.mktemp("repos")
    app = Flask(__name__)
    app.register_blueprint(create_local_blueprint(root))
    with LocalServer(app) as srv:
        srv.root = root
        yield srv


@pytest.fixture
def publisher(server) -> LocalPublisher:
    """A publisher writing where the server reads, with links to the server."""
    return LocalPublisher(server.root, server.url + "/")


@pytest.fixture
def name() -> str:
    """A repository name no other test uses (the server and its root are shared)."""
    return f"app-{uuid.uuid4().hex[:10]}"


def publish(publisher: LocalPublisher, name: str, files: dict[str, bytes], nonce: str = "n1",
            parent=None) -> tuple[RepoTarget, str]:
    """Prepare ``name`` and commit ``files``; return the target and the sha."""
    target = publisher.prepare(name, "A test app")
    sha = publisher.commit(target, files, commit_message("Build", "task", 1, nonce), parent)
    return target, sha


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the real git binary without prompts or user configuration."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "HOME": str(cwd or Path.cwd())}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def clone(url: str, dest: Path) -> Path:
    """Clone ``url`` into ``dest`` with the real git binary."""
    git("clone", "-q", url, str(dest), cwd=dest.parent)
    return dest


def worktree_files(folder: Path) -> dict[str, bytes]:
    """Every file of a checkout except .git, as path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts}


def raw_get(url: str, path: str) -> int:
    """GET ``path`` exactly as written (no client-side dot-segment removal); return the status."""
    host = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_prepare_and_commit_return_urls_and_sha(publisher, server, name):
    target, sha = publish(publisher, name, APP)
    assert target.repo_url == f"{server.url}/git/{name}.git"
    assert target.pages_url == f"{server.url}/pages/{name}/"
    assert len(sha) == 40 and int(sha, 16) >= 0
    assert (server.root / f"{name}.git" / "description").read_text().strip() == "A test app"
    assert publisher.prepare(name, "again") == target
    assert publisher.wait_until_live(target, sha, Deadline(5)) is True
    assert publisher.wait_until_live(target, "0" * 40, Deadline(5)) is False


def test_pages_serve_committed_files_with_types(publisher, name):
    target, _ = publish(publisher, name, APP)
    index = requests.get(target.pages_url, timeout=10)
    assert index.status_code == 200 and index.content == APP["index.html"]
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert index.headers["Cache-Control"] == "no-cache"
    csv = requests.get(target.pages_url + "data/sales.csv", timeout=10)
    assert csv.headers["Content-Type"].startswith("text/csv") and csv.content == APP["data/sales.csv"]
    assert requests.get(target.pages_url + "app.js", timeout=10).headers["Content-Type"].startswith("text/javascript")
    png = requests.get(target.pages_url + "img/logo.png", timeout=10)
    assert png.headers["Content-Type"] == "image/png" and png.content == PNG
    assert requests.get(target.pages_url + "docs/guide/", timeout=10).content == APP["docs/guide/index.html"]


def test_pages_redirect_to_slash_form(publisher, name):
    target, _ = publish(publisher, name, APP)
    bare = requests.get(target.pages_url.rstrip("/"), timeout=10, allow_redirects=False)
    assert bare.status_code == 301 and bare.headers["Location"].endswith(f"/pages/{name}/")
    folder = requests.get(target.pages_url + "docs?x=1", timeout=10, allow_redirects=False)
    assert folder.status_code == 301 and folder.headers["Location"].endswith(f"/pages/{name}/docs/?x=1")
    assert requests.get(target.pages_url + "docs", timeout=10).content == APP["docs/index.html"]


@pytest.mark.parametrize("path", [
    "missing.html", "data/", "data/missing.csv", "../x.git/config", "%2e%2e/x.git/config",
    "docs/%2e%2e/index.html", "docs/./index.html", "docs//index.html", "index.html%00", "docs%5cindex.html",
])
def test_pages_miss_and_traversal_are_404(publisher, server, name, path):
    publish(publisher, name, APP)
    assert raw_get(server.url, f"/pages/{name}/index.html") == 200
    assert raw_get(server.url, f"/pages/{name}/{path}") == 404


def test_pages_raw_traversal_out_of_pages(publisher, server, name):
    publish(publisher, name, APP)
    for path in [f"/pages/{name}/../x", f"/pages/{name}/%2e%2e/x", f"/pages/%2e%2e/{name}.git/config",
                 f"/pages/{name}/%2e%2e/%2e%2e/{name}.git/HEAD", "/pages/.hidden/", "/pages/nope/"]:
        assert raw_get(server.url, path) == 404, path


def test_pages_use_committed_404_html(publisher, name):
    target, _ = publish(publisher, name, {**APP, "404.html": b"<p>lost</p>"})
    miss = requests.get(target.pages_url + "nowhere", timeout=10)
    assert miss.status_code == 404 and miss.content == b"<p>lost</p>"
    assert miss.headers["Content-Type"] == "text/html; charset=utf-8"


def test_pages_etag_304_and_head(publisher, name):
    target, _ = publish(publisher, name, APP)
    first = requests.get(target.pages_url + "app.js", timeout=10)
    etag = first.headers["ETag"]
    again = requests.get(target.pages_url + "app.js", headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    head = requests.head(target.pages_url + "app.js", timeout=10)
    assert head.status_code == 200 and head.content == b"" and head.headers["ETag"] == etag


def test_pages_follow_new_commits(publisher, name):
    target, _ = publish(publisher, name, APP)
    publish(publisher, name, {**APP, "index.html": b"<p>v2</p>"}, nonce="n2")
    assert requests.get(target.pages_url, timeout=10).content == b"<p>v2</p>"


@pytest.mark.parametrize("path", ["config", "hooks/pre-receive", "description", "info/exclude",
                                  "refs/heads/main", "objects/../config", "objects/%2e%2e/config",
                                  "HEAD/../config", "objects/info/alternates"])
def test_git_serves_only_protocol_files(publisher, server, name, path):
    publish(publisher, name, APP)
    assert raw_get(server.url, f"/git/{name}.git/info/refs") == 200
    assert raw_get(server.url, f"/git/{name}.git/{path}") == 404


def test_git_refuses_push(publisher, name):
    target, _ = publish(publisher, name, APP)
    assert requests.post(target.repo_url + "/git-receive-pack", timeout=10).status_code in (404, 405)
    assert requests.put(target.repo_url + "/objects/info/packs", timeout=10).status_code == 405


def test_git_clone_yields_exactly_the_committed_files(publisher, name, tmp_path):
    target, sha = publish(publisher, name, APP)
    checkout = clone(target.repo_url, tmp_path / "clone")
    assert worktree_files(checkout) == APP
    assert git("rev-parse", "HEAD", cwd=checkout).strip() == sha
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=checkout).strip() == "main"
    git("fsck", "--strict", cwd=checkout)


def test_round_two_has_round_one_as_parent(publisher, name, tmp_path):
    _, sha1 = publish(publisher, f"{name}-round-1", APP)
    previous = publisher.load_round(f"{name}-round-1")
    changed = {**previous.files, "app.js": b"console.log('round 2');\n"}
    target2, sha2 = publish(publisher, f"{name}-round-2", changed, nonce="n2", parent=previous)
    checkout = clone(target2.repo_url, tmp_path / "round2")
    assert git("log", "--format=%H", cwd=checkout).split() == [sha2, sha1]
    assert git("log", "-1", "--format=%P", cwd=checkout).strip() == sha1
    stat = git("diff", "HEAD~1", "--stat", cwd=checkout)
    assert "app.js" in stat and "1 file changed" in stat
    assert worktree_files(checkout) == changed
    git("fsck", "--strict", cwd=checkout)


def test_round_two_with_unknown_parent_fails(publisher, name):
    publish(publisher, f"{name}-round-1", APP)
    previous = publisher.load_round(f"{name}-round-1")
    target = publisher.prepare(f"{name}-round-2", "x")
    ghost = type(previous)(previous.repo_name, "0" * 40, previous.files)
    with pytest.raises(PublishFailed, match="lacks commit"):
        publisher.commit(target, APP, "m", ghost)
    missing = type(previous)(f"{name}-nowhere", previous.commit_sha, previous.files)
    with pytest.raises(PublishFailed, match="does not exist"):
        publisher.commit(target, APP, "m", missing)
    assert publisher.load_round(f"{name}-round-2") is None


def test_load_round_is_byte_identical(publisher, name):
    _, sha = publish(publisher, name, APP)
    loaded = publisher.load_round(name)
    assert loaded.repo_name == name and loaded.commit_sha == sha
    assert loaded.files == APP


def test_load_round_missing(publisher, name):
    assert publisher.load_round(f"{name}-never") is None
    publisher.prepare(name, "no commit yet")
    assert publisher.load_round(name) is None


def test_find_commit_by_nonce(publisher, name):
    target, sha = publish(publisher, name, APP, nonce="abc-123")
    assert publisher.find_commit(target, "abc-123") == sha
    assert publisher.find_commit(target, "other") is None
    empty = publisher.prepare(f"{name}-empty", "no commit yet")
    assert publisher.find_commit(empty, "abc-123") is None


def test_second_commit_fast_forwards(publisher, name, tmp_path):
    target, sha1 = publish(publisher, name, APP)
    _, sha2 = publish(publisher, name, {**APP, "README.md": b"# v2\n"}, nonce="n2")
    checkout = clone(target.repo_url, tmp_path / "clone")
    assert git("log", "--format=%H", cwd=checkout).split() == [sha2, sha1]


def test_concurrent_commits_to_one_repo_all_land(publisher, name):
    target = publisher.prepare(name, "concurrent")
    shas: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            shas.append(publisher.commit(target, {"index.html": f"<p>{i}</p>".encode()}, f"c{i}", None))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(set(shas)) == 6
    assert publisher.load_round(name).commit_sha in shas


@pytest.mark.parametrize("path", [".github/dependabot.yml", ".github/workflows/x.sh", ".gitmodules", ".git/config",
                                  "a/.git/hooks/x", "../escape.txt", "/abs.txt", "dir/../x", "sp ace.txt"])
def test_commit_refuses_unsafe_paths(publisher, name, path):
    target = publisher.prepare(name, "x")
    with pytest.raises(PublishFailed):
        publisher.commit(target, {"index.html": b"ok", path: b"bad"}, "m", None)
    assert publisher.load_round(name) is None


def test_commit_refuses_file_folder_clash_and_empty(publisher, name):
    target = publisher.prepare(name, "x")
    with pytest.raises(PublishFailed):
        publisher.commit(target, {"a": b"1", "a/b": b"2"}, "m", None)
    with pytest.raises(PublishFailed):
        publisher.commit(target, {}, "m", None)


@pytest.mark.parametrize("bad", [".hidden", "../up", "a/b", "", "sp ace", "x\x00y"])
def test_invalid_repo_names_are_refused(publisher, bad):
    with pytest.raises(PublishFailed):
        publisher.prepare(bad, "x")


def test_commit_without_prepare_fails_clearly(publisher, name):
    target = RepoTarget(name, f"http://x/git/{name}.git", f"http://x/pages/{name}/")
    with pytest.raises(PublishFailed, match="prepare"):
        publisher.commit(target, APP, "m", None)


@pytest.mark.parametrize("path,expected", [
    ("a.html", "text/html; charset=utf-8"), ("a.mjs", "text/javascript; charset=utf-8"),
    ("a.css", "text/css; charset=utf-8"), ("a.json", "application/json; charset=utf-8"),
    ("a.svg", "image/svg+xml"), ("a.wasm", "application/wasm"), ("a.md", "text/markdown; charset=utf-8"),
    ("site.webmanifest", "application/manifest+json; charset=utf-8"), ("blob", "application/octet-stream"),
])
def test_content_types(path, expected):
    assert content_type_for(path) == expected
