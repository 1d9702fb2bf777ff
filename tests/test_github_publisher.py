"""The GitHub publisher against the fake GitHub (real HTTP on loopback, OpenAPI-validated).

Rounds 1 and 2, REST call counts, the single atomic commit and its parent,
Pages going live, and faults: 5xx on each call, rate limits, a taken name,
Pages never finishing, a rejected token. The ``github`` fixture fails any test
during which a request broke GitHub's OpenAPI description. Never touches the
internet; sleeps are recorded and shortened.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests

from tests.fakes.faults import Fail
from tests.fakes.github_server import BUILD_POLL, FakeGitHub, primary_rate_limit, secondary_rate_limit
from tests.fakes.openapi_spec import load_openapi
from utils.deadline import Deadline
from utils.errors import PublishFailed, RepoNameTaken
from utils.publishers.base import commit_message
from utils.publishers.github import GitHubPublisher
from utils.publishers.github_api import MAX_ATTEMPTS, GitHubTransport
from utils.records import PreviousRound, RepoTarget

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
ROUND_ONE = {
    "index.html": b"<!doctype html><title>App</title><img src='assets/logo.png'><h1>Round 1</h1>",
    "README.md": b"# App\n\nA small app.\n",
    "LICENSE": b"MIT License\n\nCopyright (c) 2025\n",
    "assets/logo.png": PNG,
}
NAME = "sales-summary-round-1"


class Sleeps:
    """Records requested sleeps and sleeps a little, so deadlines still pass in real time."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        time.sleep(min(seconds, 0.01))


@pytest.fixture(scope="session", autouse=True)
def openapi_description() -> None:
    """Load GitHub's OpenAPI description once (installing it with npm if missing)."""
    load_openapi()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def publisher(github: FakeGitHub, sleeps: Sleeps) -> GitHubPublisher:
    return make_publisher(github, sleeps)


def make_publisher(github: FakeGitHub, sleeps: Sleeps, write_interval: float = 0.0,
                   **overrides: object) -> GitHubPublisher:
    options = {"sleep": sleeps, "poll_interval": 0.01, "rebuild_after": 0.2, **overrides}
    transport = GitHubTransport(github.token, github.api_url, sleep=sleeps, write_interval=write_interval)
    return GitHubPublisher(transport, **options)


def publish(publisher: GitHubPublisher, name: str = NAME, files: dict[str, bytes] = ROUND_ONE, nonce: str = "n-1",
            parent: PreviousRound | None = None, round_number: int = 1) -> tuple[RepoTarget, str]:
    """prepare + commit, as the pipeline does."""
    target = publisher.prepare(name, "Summarise sales from a CSV.\nShow the total.", nonce=nonce)
    sha = publisher.commit(target, files, commit_message(f"Round {round_number}", "sales", round_number, nonce), parent)
    return target, sha


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


# -- round 1 ---------------------------------------------------------------------------------


def test_round_one_is_one_commit_in_six_calls(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target, sha = publish(publisher)

    assert github.api_calls() == [
        "POST /user/repos",
        "POST /repos/{owner}/{repo}/pages",
        "POST /repos/{owner}/{repo}/git/blobs",
        "POST /repos/{owner}/{repo}/git/trees",
        "POST /repos/{owner}/{repo}/git/commits",
        "PATCH /repos/{owner}/{repo}/git/refs/{ref}",
    ]
    history = github.history(NAME)
    assert [c.id.decode() for c in history] == [sha]
    assert history[0].parents == []
    assert github.repo(NAME).files(sha) == ROUND_ONE


def test_round_one_urls_come_from_the_api(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target, _ = publish(publisher)

    repo = github.repo(NAME)
    assert target.repo_url == f"{github.url}/{github.login}/{NAME}"
    assert target.pages_url == f"{github.url}/pages/{github.login}/{NAME}/"
    assert not repo.private
    assert repo.description == "Summarise sales from a CSV. Show the total."
    assert repo.pages == {"source": {"branch": "main", "path": "/"}}
    assert requests.get(target.repo_url, timeout=5).status_code == 200


def test_commit_is_made_of_real_git_objects(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    _, sha = publish(publisher)

    tree = requests.get(f"{github.api_url}/repos/{github.login}/{NAME}/git/trees/{sha}?recursive=1",
                        headers={"Authorization": f"token {github.token}"}, timeout=5).json()
    blobs = {item["path"]: item["sha"] for item in tree["tree"] if item["type"] == "blob"}
    assert blobs == {path: git_blob_sha(data) for path, data in ROUND_ONE.items()}
    commit = github.history(NAME)[0]
    raw = commit.as_raw_string()
    assert hashlib.sha1(b"commit %d\x00" % len(raw) + raw).hexdigest() == sha


def test_pages_site_serves_the_commit(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(10))
    page = requests.get(target.pages_url, timeout=5)
    assert page.status_code == 200 and page.content == ROUND_ONE["index.html"]
    assert requests.get(target.pages_url + "assets/logo.png", timeout=5).content == PNG
    assert github.repo(NAME).live_commit == sha
    assert github.site_calls()[0].query.startswith(f"v={sha[:12]}")


def test_owner_is_read_once_and_only_when_needed(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    assert publisher.load_round("no-such-round") is None
    assert publisher.load_round("another-missing-round") is None

    assert github.api_calls() == ["GET /user", "GET /repos/{owner}/{repo}/branches/{branch}",
                                "GET /repos/{owner}/{repo}/branches/{branch}"]


def test_username_avoids_the_user_lookup(github: FakeGitHub, sleeps: Sleeps) -> None:
    transport = GitHubTransport(github.token, github.api_url, sleep=sleeps, write_interval=0)
    publisher = GitHubPublisher(transport, github.login, sleep=sleeps)

    assert publisher.load_round("no-such-round") is None
    assert "GET /user" not in github.api_calls()


def test_token_reaches_neither_the_repository_nor_the_site(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target, sha = publish(publisher)
    assert publisher.wait_until_live(target, sha, Deadline(10))

    store = github.repo(NAME).store
    assert all(github.token.encode() not in store[key].as_raw_string() for key in store)
    assert github.site_calls() and not any(call.authorized for call in github.site_calls())
    assert github.token not in repr(publisher)


# -- round 2 ----------------------------------------------------------------------------------


def test_round_two_starts_from_round_one_as_parent(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    _, first = publish(publisher)
    before = len(github.api_calls())
    previous = publisher.load_round(NAME)
    assert previous is not None and previous.commit_sha == first and previous.files == ROUND_ONE

    files = {**ROUND_ONE, "index.html": b"<h1>Round 2</h1>", "app.js": b"console.log(2)\n"}
    del files["LICENSE"]
    target, second = publish(publisher, "sales-summary-round-2", files, "n-2", previous, 2)

    history = github.history("sales-summary-round-2")
    assert [c.id.decode() for c in history] == [second, first]
    repo = github.repo("sales-summary-round-2")
    assert repo.files(first) == ROUND_ONE and repo.files(second) == files
    calls = github.api_calls()[before:]
    assert len(calls) == 14, calls
    assert calls.count("POST /repos/{owner}/{repo}/git/commits") == 2
    assert calls.count("PATCH /repos/{owner}/{repo}/git/refs/{ref}") == 1
    assert publisher.wait_until_live(target, second, Deadline(10))


def test_unchanged_round_two_reuses_the_parent_tree(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    _, first = publish(publisher)
    previous = publisher.load_round(NAME)
    before = len(github.api_calls())

    _, second = publish(publisher, "sales-summary-round-2", ROUND_ONE, "n-2", previous, 2)

    history = github.history("sales-summary-round-2")
    assert [c.id.decode() for c in history] == [second, first]
    assert history[0].tree == history[1].tree
    assert github.api_calls()[before:].count("POST /repos/{owner}/{repo}/git/trees") == 1


def test_load_round_reads_every_file(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    _, sha = publish(publisher)

    previous = make_publisher(github, Sleeps()).load_round(NAME)

    assert previous == PreviousRound(NAME, sha, ROUND_ONE)


def test_missing_previous_round_is_none(publisher: GitHubPublisher) -> None:
    assert publisher.load_round("sales-summary-round-0") is None


# -- reuse and conflicts ----------------------------------------------------------------------------


def test_same_nonce_reuses_the_repository(github: FakeGitHub, publisher: GitHubPublisher, sleeps: Sleeps) -> None:
    first_target, sha = publish(publisher)

    again = make_publisher(github, sleeps)
    target = again.prepare(NAME, "Summarise sales from a CSV.\nShow the total.", nonce="n-1")

    assert target == first_target
    assert again.find_commit(target, "n-1") == sha
    assert again.find_commit(target, "other") is None
    assert github.api_calls().count("POST /user/repos") == 2
    assert len(github.history(NAME)) == 1


def test_fresh_repository_has_no_commit_of_ours(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target = publisher.prepare(NAME, "brief", nonce="n-1")
    calls = len(github.api_calls())

    assert publisher.find_commit(target, "n-1") is None
    assert len(github.api_calls()) == calls


@pytest.mark.parametrize("message", ["Someone's own project", commit_message("Round 1", "sales", 1, "other-nonce")])
def test_repository_holding_other_work_is_a_409(github: FakeGitHub, publisher: GitHubPublisher, message: str) -> None:
    theirs = github.add_repo(NAME, {"index.html": b"theirs"}, message,
                           description="Summarise sales from a CSV. Show the total.")

    with pytest.raises(RepoNameTaken) as caught:
        publish(publisher)

    assert caught.value.status == 409 and caught.value.stage == "publish"
    assert NAME in caught.value.message
    assert github.repo(NAME).head("main") == theirs
    assert [c for c in github.api_calls() if not c.startswith("GET")] == ["POST /user/repos"]


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "pattern", "after", "attempts"), [
    ("POST", r"/user/repos$", False, 2),
    ("POST", r"/user/repos$", True, 1),
    ("POST", r"/pages$", False, 2),
    ("POST", r"/pages$", True, 1),
    ("POST", r"/git/blobs$", False, 2),
    ("POST", r"/git/trees$", True, 2),
    ("POST", r"/git/commits$", False, 2),
    ("PATCH", r"/git/refs/", True, 2),
    ("GET", r"/pages/builds/latest$", False, 2),
])
def test_server_error_on_each_call_is_survived(github: FakeGitHub, publisher: GitHubPublisher, method: str,
                                               pattern: str, after: bool, attempts: int) -> None:
    fault = github.inject(method, pattern, Fail(500), after=after)

    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(10))
    assert fault.times == 0
    sent = [c for c in github.calls if c.method == method and fault.pattern.search(c.path)]
    if method == "GET":
        assert len(sent) >= attempts
    else:
        assert len(sent) == attempts
    assert [c.id.decode() for c in github.history(NAME)] == [sha]


def test_server_error_on_reads_is_retried(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    _, sha = publish(publisher)
    for pattern in (r"/branches/main$", r"/git/trees/[0-9a-f]+$", r"/git/blobs/[0-9a-f]+$"):
        github.inject("GET", pattern, Fail(502))

    previous = publisher.load_round(NAME)

    assert previous is not None and previous.files == ROUND_ONE and previous.commit_sha == sha


def test_persistent_server_error_fails_with_githubs_message(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.inject("POST", r"/git/trees$", Fail(500, "Tree service unavailable"), times=10)

    with pytest.raises(PublishFailed) as caught:
        publish(publisher)

    assert caught.value.status == 502 and caught.value.stage == "publish"
    assert "HTTP 500" in caught.value.message and "Tree service unavailable" in caught.value.message
    assert github.api_calls().count("POST /repos/{owner}/{repo}/git/trees") == MAX_ATTEMPTS


def test_secondary_rate_limit_waits_for_retry_after(github: FakeGitHub, publisher: GitHubPublisher,
                                                    sleeps: Sleeps) -> None:
    github.inject("POST", r"/git/commits$", secondary_rate_limit(retry_after=7))

    publish(publisher)

    assert 7.0 in sleeps.requested
    assert github.api_calls().count("POST /repos/{owner}/{repo}/git/commits") == 2


def test_primary_rate_limit_waits_until_reset(github: FakeGitHub, publisher: GitHubPublisher, sleeps: Sleeps) -> None:
    github.inject("POST", r"/user/repos$", primary_rate_limit(reset_in=5))

    publish(publisher)

    assert any(4.0 <= s <= 6.5 for s in sleeps.requested), sleeps.requested
    assert github.api_calls().count("POST /user/repos") == 2


def test_rate_limit_longer_than_allowed_fails(github: FakeGitHub, publisher: GitHubPublisher,
                                              sleeps: Sleeps) -> None:
    github.inject("POST", r"/user/repos$", secondary_rate_limit(retry_after=3600))

    with pytest.raises(PublishFailed, match="rate limit"):
        publish(publisher)

    assert sleeps.requested == []


def test_empty_repository_answer_is_retried(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.inject("POST", r"/git/blobs$", Fail(409, "Git Repository is empty."))

    _, sha = publish(publisher)

    assert [c.id.decode() for c in github.history(NAME)] == [sha]


def test_repository_left_empty_is_seeded_then_replaced(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.honour_auto_init = False

    target, sha = publish(publisher)

    assert "PUT /repos/{owner}/{repo}/contents/{path}" in github.api_calls()
    assert [c.id.decode() for c in github.history(NAME)] == [sha]
    assert publisher.wait_until_live(target, sha, Deadline(10))


def test_default_branch_is_renamed_to_main(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.default_branch = "master"

    target, sha = publish(publisher)

    repo = github.repo(NAME)
    assert repo.default_branch == "main" and repo.head("main") == sha
    assert publisher.wait_until_live(target, sha, Deadline(10))


def test_rejected_token_is_named_without_the_token(github: FakeGitHub, sleeps: Sleeps) -> None:
    wrong = "ghp_wrongTOKENvalue0123456789"
    publisher = GitHubPublisher(GitHubTransport(wrong, github.api_url, sleep=sleeps, write_interval=0), sleep=sleeps)

    with pytest.raises(PublishFailed) as caught:
        publisher.prepare(NAME, "brief", nonce="n-1")

    error = caught.value
    assert error.status == 502 and error.stage == "publish"
    assert "token" in error.message and "401" in error.message and "Bad credentials" in error.message
    assert wrong not in error.message and wrong not in str(error.to_body())
    assert github.api_calls() == ["POST /user/repos"]


@pytest.mark.parametrize("path", [".github/dependabot.yml", ".github/workflows/sub/deploy.yml", ".gitmodules",
                                  ".git/config", "../escape.html", "/etc/passwd",
                                  "assets/.git/hooks/pre-commit"])
def test_forbidden_paths_are_never_committed(github: FakeGitHub, publisher: GitHubPublisher, path: str) -> None:
    target = publisher.prepare(NAME, "brief", nonce="n-1")
    calls = len(github.api_calls())

    with pytest.raises(PublishFailed, match="refusing to commit"):
        publisher.commit(target, {**ROUND_ONE, path: b"name: x"}, "message", None)

    assert len(github.api_calls()) == calls


def test_writes_are_spaced(github: FakeGitHub, sleeps: Sleeps) -> None:
    publisher = make_publisher(github, sleeps, write_interval=1.0)

    publish(publisher)

    assert len([s for s in sleeps.requested if 0.5 < s <= 1.0]) == 5


# -- waiting for Pages ------------------------------------------------------------------------


def test_pages_never_finishing_returns_false_by_the_deadline(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.default_build_script = ["building"]
    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(0.6)) is False
    assert github.api_calls(polling=True).count(BUILD_POLL) >= 2


def test_errored_build_is_rebuilt_once(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.queue_builds(["built"], ["building", "errored"], ["building", "built"])
    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(10))
    assert github.api_calls().count("POST /repos/{owner}/{repo}/pages/builds") == 1


def test_build_erroring_twice_gives_up(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.queue_builds(["built"], ["errored"], ["errored"])
    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(10)) is False
    assert github.api_calls().count("POST /repos/{owner}/{repo}/pages/builds") == 1


def test_missing_build_is_requested_once(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    github.build_on_push = False
    target, sha = publish(publisher)

    assert publisher.wait_until_live(target, sha, Deadline(10))
    assert github.api_calls().count("POST /repos/{owner}/{repo}/pages/builds") == 1


def test_site_is_polled_with_cache_busting_until_it_answers(github: FakeGitHub, publisher: GitHubPublisher) -> None:
    target, sha = publish(publisher)
    github.inject("GET", r"^/pages/", Fail(404, "Not Found"), times=2)

    assert publisher.wait_until_live(target, sha, Deadline(10))
    queries = [call.query for call in github.site_calls()]
    assert len(queries) == 3 and len(set(queries)) == 3


# -- the fake itself ---------------------------------------------------------------------------


def test_fake_rejects_requests_the_description_disallows(github: FakeGitHub) -> None:
    auth = {"Authorization": f"token {github.token}"}
    github.add_repo("x", {"a.txt": b"a"}, "m")

    unknown = requests.patch(f"{github.api_url}/repos/{github.login}/x/git/ref/heads%2Fmain", json={"sha": "0" * 40},
                             headers=auth, timeout=5)
    invalid = requests.post(f"{github.api_url}/repos/{github.login}/x/git/trees",
                            json={"tree": [{"path": "a", "mode": "644", "type": "blob", "content": "x"}]},
                            headers=auth, timeout=5)

    assert (unknown.status_code, invalid.status_code) == (404, 400)
    assert len(github.violations) == 2
    github.violations.clear()


def test_resumed_build_waits_for_the_workflow_run_of_an_earlier_attempts_commit(
        github: FakeGitHub, publisher: GitHubPublisher, sleeps: Sleeps) -> None:
    """A build resumed in a fresh process (crash recovery) finds the earlier commit and waits for its Pages-deploying
    run, not for a legacy build that never comes once Pages builds from GitHub Actions."""
    workflow = b"on: push\njobs:\n  deploy:\n    steps:\n      - uses: actions/deploy-pages@v4\n"
    first, sha = publish(publisher, files={**ROUND_ONE, ".github/workflows/pages.yml": workflow})

    resumed = make_publisher(github, sleeps)
    target = resumed.prepare(NAME, "Summarise sales from a CSV.\nShow the total.", nonce="n-1")
    assert resumed.find_commit(target, "n-1") == sha

    assert resumed.wait_until_live(target, sha, Deadline(5)) is True
    run = resumed.workflow_run(target, sha)
    assert run is not None and run.succeeded


def test_corrupt_round_cache_entry_is_a_miss(github: FakeGitHub, sleeps: Sleeps, tmp_path) -> None:
    """A cache entry that parses but does not describe the commit is read from GitHub instead, never an error."""
    from utils.publishers.round_cache import RoundCache

    writer = make_publisher(github, sleeps, cache=RoundCache(tmp_path))
    _, sha = publish(writer)
    [entry] = tmp_path.glob(f"*/{sha}.json")
    kept = json.loads(entry.read_text())
    reads_before = 0
    for meta in ({"sha": sha}, {**kept["meta"], "sha": "0" * 40}, {**kept["meta"], "author": "someone"}):
        entry.write_text(json.dumps({**kept, "meta": meta}))
        reader = make_publisher(github, sleeps, cache=RoundCache(tmp_path))
        previous = reader.load_round(NAME)
        assert previous is not None and previous.commit_sha == sha and previous.files == ROUND_ONE
        reads = [c for c in github.api_calls() if c.startswith("GET /repos/{owner}/{repo}/git/trees/")]
        assert len(reads) == reads_before + 1
        reads_before += 1


def test_same_repository_round_never_overwrites_a_push_made_meanwhile(github: FakeGitHub,
                                                                       publisher: GitHubPublisher) -> None:
    """ROUND_REPO=same: round 2's commit sits on round 1; a commit pushed since round 1 was read is kept, not lost."""
    target, sha = publish(publisher)
    previous = publisher.load_round(NAME)
    repo = github.repo(NAME)
    tree = github._tree_from_files(repo, {**repo.files(sha), "extra.txt": b"pushed by a person"})
    pushed = github._make_commit(repo, tree, [sha], "manual edit", None, None)
    repo.refs["refs/heads/main"] = pushed.encode()

    again = publisher.prepare(NAME, "Summarise sales from a CSV.\nShow the total.", nonce="n-2", existing=True)
    with pytest.raises(PublishFailed, match="moved"):
        publisher.commit(again, {**ROUND_ONE, "index.html": b"<h1>Round 2</h1>"},
                         commit_message("Round 2", "sales", 2, "n-2"), previous)
    assert repo.refs["refs/heads/main"].decode() == pushed


def test_failed_runs_log_is_read_within_the_deadline() -> None:
    """The failing job's log (a signed URL that answers slowly) is given up at the deadline, not LOG_TIMEOUT later."""
    from flask import Flask, Response

    from tests.fakes.server import LocalServer
    from utils.publishers.github_actions import ActionsWatcher
    from utils.publishers.github_api import GitHubTransport

    app = Flask("slow_log_storage")
    sha = "a" * 40

    @app.get("/repos/o/r/actions/runs")
    def runs():
        return {"total_count": 1, "workflow_runs": [{"id": 5, "head_sha": sha, "event": "push", "status": "completed",
                                                     "conclusion": "failure", "html_url": "x", "name": "ci"}]}

    @app.get("/repos/o/r/actions/runs/5/jobs")
    def jobs():
        return {"total_count": 1, "jobs": [{"id": 50, "name": "build", "conclusion": "failure", "steps": []}]}

    @app.get("/repos/o/r/actions/jobs/50/logs")
    def logs():
        return Response(status=302, headers={"Location": f"{server.url}/signed-log"})

    @app.get("/signed-log")
    def signed_log():
        time.sleep(4)
        return "too late\n"

    with LocalServer(app) as server:
        watcher = ActionsWatcher(GitHubTransport("t0ken-for-the-test", server.url), lambda deadline: False)
        started = time.monotonic()
        run = watcher.wait_for_run("o/r", sha, Deadline(1))
        elapsed = time.monotonic() - started

    assert run.failed and run.failed_job == "build" and run.log_tail == ""
    assert elapsed < 3, elapsed


def test_concurrent_calls_never_swap_requests_or_answers() -> None:
    """Concurrent builds share the publisher, hence its transport: every thread gets the answer to its own call."""
    import sys
    import threading

    from flask import Flask

    from tests.fakes.server import LocalServer
    from utils.publishers.github_api import GitHubTransport

    app = Flask("echo_api")

    @app.get("/echo/<int:number>")
    def echo(number: int):
        return {"number": number}

    wrong: list[tuple[int, object]] = []

    def calls(api: GitHubTransport, first: int) -> None:
        for number in range(first, first + 150):
            try:
                answer = api.request("GET", f"/echo/{number}", what="echo", expect=("number",)).data["number"]
            except PublishFailed as err:
                answer = err.message
            if answer != number:
                wrong.append((number, answer))

    with LocalServer(app) as server:
        api = GitHubTransport("t0ken-for-the-test", server.url, write_interval=0)
        switching = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible, so a shared connection shows
        try:
            threads = [threading.Thread(target=calls, args=(api, 1000 * (n + 1))) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(switching)

    assert wrong == []


def test_empty_list_in_an_answer_is_an_answer() -> None:
    """``expect`` asks for fields to be present: an empty list of runs (none started yet) is read at once."""
    from flask import Flask

    from tests.fakes.server import LocalServer
    from utils.publishers.github_api import GitHubTransport

    app = Flask("no_runs_yet")
    hits: list[str] = []

    @app.get("/repos/o/r/actions/runs")
    def runs():
        hits.append("runs")
        return {"total_count": 0, "workflow_runs": []}

    with LocalServer(app) as server:
        api = GitHubTransport("t0ken-for-the-test", server.url, sleep=lambda seconds: None)
        answer = api.request("GET", "/repos/o/r/actions/runs", what="read the workflow runs",
                             expect=("workflow_runs",))

    assert answer.data == {"total_count": 0, "workflow_runs": []} and hits == ["runs"]


def test_concurrent_writes_are_spaced_too() -> None:
    """Mutating calls of concurrent builds (one token) still reach GitHub ``write_interval`` apart."""
    import threading

    from flask import Flask

    from tests.fakes.server import LocalServer
    from utils.publishers.github_api import GitHubTransport

    app = Flask("write_times")
    arrivals: list[float] = []

    @app.post("/repos/o/r/git/blobs")
    def blob():
        arrivals.append(time.monotonic())
        return {"sha": "b" * 40}, 201

    with LocalServer(app) as server:
        api = GitHubTransport("t0ken-for-the-test", server.url, write_interval=0.3)
        threads = [threading.Thread(target=api.request, args=("POST", "/repos/o/r/git/blobs", {"content": "x"}),
                                    kwargs={"what": "upload x", "expect": ("sha",)}) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    times = sorted(arrivals)
    assert len(times) == 4 and min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.25, times
