"""The GitHub publisher's own decisions, through a recording transport (no HTTP at all).

``GitHubPublisher`` takes its transport as an argument (httpx's MockTransport
idea): here a small one records every call and answers from a script, so a
test reads as the calls the publisher chose to make. Everything that talks
HTTP is tested against the OpenAPI-validated fake in test_github_publisher.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from utils.errors import GitHubCallFailed, PublishFailed
from utils.publishers.base import commit_message
from utils.publishers.github import GitHubPublisher
from utils.publishers.github_api import GitHubAnswer
from utils.records import RepoTarget

OWNER = "octo"
FULL = f"{OWNER}/sales-round-1"
TARGET = RepoTarget(name="sales-round-1", repo_url="https://git.example/octo/sales-round-1",
                    pages_url="https://octo.pages.example/sales-round-1/")
Answer = dict[str, Any] | Exception | Callable[[dict[str, Any] | None], dict[str, Any]]


class RecordingTransport:
    """Records ``(method, path, body)`` of every call; answers by ``(method, path)`` from a script."""

    api_url = "https://git.example/api/v3"

    def __init__(self, answers: dict[tuple[str, str], Answer]):
        self.answers = answers
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # a call without a body records {}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str,
                params: dict[str, str] | None = None, expect: tuple[str, ...] | None = None,
                repeatable: bool | None = None, verify: Callable[[], Any] | None = None) -> GitHubAnswer:
        self.calls.append((method, path, body or {}))
        if (method, path) not in self.answers:
            raise AssertionError(f"the publisher made an unscripted call: {method} {path}")
        answer = self.answers[(method, path)]
        if isinstance(answer, Exception):
            raise answer
        return GitHubAnswer(answer(body) if callable(answer) else answer, {})

    def routes(self) -> list[str]:
        return [f"{method} {path}" for method, path, _body in self.calls]


def refused(status: int, message: str) -> GitHubCallFailed:
    return GitHubCallFailed(f"GitHub answered {status}: {message}", github_status=status, github_message=message,
                            rate_limited=False)


def branch(sha: str, message: str) -> dict[str, Any]:
    """A Repos API branch whose head is commit ``sha`` with ``message``."""
    person = {"name": "a", "email": "a@example.com", "date": "2026-01-01T00:00:00Z"}
    return {"commit": {"sha": sha, "parents": [], "commit": {"tree": {"sha": "t" + sha}, "message": message,
                                                            "author": person, "committer": person}}}


def writes(sha: str = "c1") -> dict[tuple[str, str], Answer]:
    """Answers to a round-1 commit's calls: a blob, the tree, the commit and the ref."""
    return {
        ("POST", f"/repos/{FULL}/git/blobs"): {"sha": "b1"},
        ("POST", f"/repos/{FULL}/git/trees"): {"sha": "t1"},
        ("POST", f"/repos/{FULL}/git/commits"): {"sha": sha, "tree": {"sha": "t1"}},
        ("PATCH", f"/repos/{FULL}/git/refs/heads%2Fmain"): {"object": {"sha": sha}},
    }


def test_find_commit_reuses_a_head_only_when_its_trailer_names_this_nonce():
    head = commit_message("Round 1", "sales", 1, "nonce-1")
    transport = RecordingTransport({("GET", f"/repos/{FULL}/branches/main"): branch("abc", head)})
    publisher = GitHubPublisher(transport, OWNER)

    assert publisher.find_commit(TARGET, "nonce-1") == "abc"
    assert GitHubPublisher(transport, OWNER).find_commit(TARGET, "nonce-2") is None
    assert "GET /user" not in transport.routes(), "a configured username spares the user lookup"


def test_the_owner_comes_from_the_token_once_when_no_username_is_set():
    transport = RecordingTransport({("GET", "/user"): {"login": OWNER},
                                    ("GET", f"/repos/{FULL}/branches/main"): refused(404, "Branch not found")})
    publisher = GitHubPublisher(transport)

    assert publisher.load_round(TARGET.name) is None
    assert publisher.load_round(TARGET.name) is None
    assert transport.routes().count("GET /user") == 1


def test_round_one_sends_text_inline_binary_as_a_blob_and_force_moves_main():
    transport = RecordingTransport(writes())
    files = {"index.html": b"<!doctype html><title>Sales</title>", "logo.png": b"\x89PNG\r\n\x1a\n\x00\x01"}

    sha = GitHubPublisher(transport, OWNER).commit(TARGET, files, "Round 1", None)

    assert sha == "c1"
    assert transport.routes() == [f"POST /repos/{FULL}/git/blobs", f"POST /repos/{FULL}/git/trees",
                                  f"POST /repos/{FULL}/git/commits", f"PATCH /repos/{FULL}/git/refs/heads%2Fmain"]
    tree = transport.calls[1][2]["tree"]
    assert {e["path"]: ("content" in e, e.get("sha")) for e in tree} == {"index.html": (True, None),
                                                                        "logo.png": (False, "b1")}
    assert transport.calls[2][2]["parents"] == [], "round 1's history is exactly one commit"
    assert transport.calls[3][2] == {"sha": "c1", "force": True}, "main replaces the auto_init placeholder"


def test_a_refused_workflow_push_names_the_missing_permission():
    answers = writes()
    answers[("PATCH", f"/repos/{FULL}/git/refs/heads%2Fmain")] = refused(
        403, "refusing to allow a Personal Access Token to create or update workflow without `workflow` scope")
    transport = RecordingTransport(answers)
    files = {"index.html": b"<p>hi</p>", ".github/workflows/ci.yml": b"on: push\njobs: {}\n"}

    with pytest.raises(PublishFailed) as caught:
        GitHubPublisher(transport, OWNER).commit(TARGET, files, "Round 1", None)

    assert "lacks" in caught.value.message and "workflow" in caught.value.message
    assert not any(path.endswith("/git/refs") for _m, path, _b in transport.calls), "main is not created instead"


def test_a_commit_that_deploys_pages_switches_the_pages_source_before_main_moves():
    answers = writes()
    answers[("PUT", f"/repos/{FULL}/pages")] = {}
    transport = RecordingTransport(answers)
    workflow = (b"on: push\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n"
                b"      - uses: actions/deploy-pages@v4\n")

    GitHubPublisher(transport, OWNER).commit(TARGET, {"index.html": b"<p>hi</p>",
                                                      ".github/workflows/pages.yml": workflow}, "Round 1", None)

    routes = transport.routes()
    assert routes.index(f"PUT /repos/{FULL}/pages") < routes.index(f"PATCH /repos/{FULL}/git/refs/heads%2Fmain")
    assert transport.calls[routes.index(f"PUT /repos/{FULL}/pages")][2]["build_type"] == "workflow"
