"""Crash recovery: SIGKILL the real service mid-build, restart it on the same DATA_DIR, resend the request.

The service runs as `python main.py` (gunicorn) in its own process group and is
killed, master and workers at once, from the fakes' hooks (the fake still
handles the request that fired the hook): after generation (the first git
tree), with the commit object written but ``main`` not moved, with ``main``
moved but the answer lost, after the commit (the first Pages build poll), right
before notifying (the Pages site check) and at the notification itself. The
resent request must finish at once (the dead process's claim is taken over, not
waited out), build one repository with one app commit, spend
no second model call once the commit exists, and notify exactly when no
notification was accepted before. Also the build store alone (ownership across real
processes, the migration of a store written before ownership existed) and the
files a killed writer leaves in a local repository.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from dulwich.repo import Repo

from tests.browser_support import chromium_or_skip
from tests.conftest import MODEL_KEY, SECRET
from tests.crash_points import GITHUB_CRASH_POINTS
from tests.fakes.github_server import FakeGitHub
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from tests.service_process import ROOT, ServiceProcess, one_service
from utils.deadline import Deadline
from utils.errors import PublishFailed
from utils.publishers.base import commit_message
from utils.publishers.local import LocalPublisher
from utils.records import TaskRequest
from utils.store.sqlite import SQLiteStore

TASK = "sales-summary-7341"
# For the browser test: a page with nothing to fetch from other hosts, so Chromium stays on loopback.
OFFLINE_REPLY = """index.html
```html
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sales Summary 7341</title></head>
<body><p>Total: <strong id="total-sales">1000.00</strong></p></body></html>
```

README.md
```markdown
# Sales Summary 7341

Shows the total of the sales column.
```
"""
OFFLINE_CHECKS = [{"js": "document.querySelector('#total-sales').textContent === '1000.00'"}]


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def launch(tmp_path: Path, model) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `python main.py` on one port and one DATA_DIR (so a restart is the same service); stop after."""
    env = {"SECRET": SECRET, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": MODEL_KEY,
           "DEADLINE_SECONDS": "20", "SELF_CHECK": "off"}
    with one_service(tmp_path, env) as start:
        yield start


def github_env(github: FakeGitHub) -> dict[str, str]:
    """The variables that make the service publish to the fake GitHub, with fast polling."""
    return {"GITHUB_TOKEN": github.token, "GITHUB_API_URL": github.api_url, "GITHUB_WRITE_INTERVAL": "0",
            "GITHUB_POLL_INTERVAL": "0.05"}


def crash(service_box: list[ServiceProcess]) -> Callable[..., None]:
    """A hook callback that SIGKILLs the service currently in ``service_box``."""

    def kill(*_: object) -> None:
        service_box[0].kill()

    return kill


def send_and_crash(service: ServiceProcess, body: dict) -> None:
    """Send ``body`` and expect the connection to die with the service."""
    with pytest.raises(requests.ConnectionError):
        service.post(body)
    assert service.process.wait(timeout=30) is not None, "the crash hook never fired"


def resend(launch: Callable[..., ServiceProcess], body: dict, **env: str) -> dict:
    """Restart the service on the same DATA_DIR and resend ``body``; the build completes with 200."""
    service = launch(**env)
    response = service.post(body)
    assert response.status_code == 200, f"{response.text}\n{service.log()}"
    result = response.json()
    assert result["status"] == "success" and result["notified"] is True, result
    return result


def expected_payload(body: dict, result: dict) -> dict:
    """The notification DESIGN.md specifies for ``result``."""
    return {"email": body["email"], "task": body["task"], "round": body["round"], "nonce": body["nonce"],
            "repo_url": result["repo_url"], "commit_sha": result["commit_sha"], "pages_url": result["pages_url"]}


def github_repos(github: FakeGitHub) -> list[str]:
    """Every repository on the fake."""
    return sorted(github.repos)


def local_repos(launch_data: Path) -> list[str]:
    """Every bare repository the local publisher stored."""
    return sorted(path.name for path in (launch_data / "repos").glob("*.git"))


def local_history(launch_data: Path, name: str) -> list[str]:
    """The shas of ``main``'s history in a local repository, newest first."""
    with Repo(str(launch_data / "repos" / f"{name}.git")) as repo:
        return [entry.commit.id.decode() for entry in repo.get_walker([repo.refs[b"refs/heads/main"]])]


# --- GitHub: crash at each point of a round-1 build --------------------------------------------------------------


@pytest.mark.parametrize("method, path, model_calls", GITHUB_CRASH_POINTS)
def test_github_build_killed_mid_way_completes_once_on_resend(launch, model, github, receiver,
                                                            method, path, model_calls):
    model.default_reply = lambda _body: ROUND1_REPLY
    body = request_body(1, receiver.notify_url)
    box = [launch(**github_env(github))]
    github.on_call(method, path, crash(box))
    send_and_crash(box[0], body)

    result = resend(launch, body, **github_env(github))
    assert github_repos(github) == [f"{github.login}/{TASK}-round-1"]
    assert [c.id.decode() for c in github.history(f"{TASK}-round-1")] == [result["commit_sha"]], \
        "round 1 holds exactly one commit: the app's (GitHub's placeholder is replaced)"
    assert len(model.history) == model_calls, "the model is asked again only when no commit of the request exists"
    assert receiver.payloads == [expected_payload(body, result)]


def test_resend_after_recovery_is_a_replay(launch, model, github, receiver):
    model.default_reply = lambda _body: ROUND1_REPLY
    body = request_body(1, receiver.notify_url)
    box = [launch(**github_env(github))]
    github.on_call("GET", r"/pages/builds/latest$", crash(box))
    send_and_crash(box[0], body)
    first = resend(launch, body, **github_env(github))

    again = requests.post(f"{box[0].url}/api-endpoint", json=body, timeout=30).json()
    assert again["replayed"] is True and again["commit_sha"] == first["commit_sha"]
    assert len(receiver.payloads) == 1 and len(model.history) == 1


# --- killed at the notification itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("publisher", ["github", "local"])
def test_killed_while_the_receiver_answers_notifies_again_then_never(launch, model, github, receiver, tmp_path,
                                                                     publisher):
    env = github_env(github) if publisher == "github" else {}
    model.default_reply = lambda _body: ROUND1_REPLY
    body = request_body(1, receiver.notify_url)
    box = [launch(**env)]
    receiver.on_receive = crash(box)  # the receiver records the POST; its 2xx never reaches the service
    send_and_crash(box[0], body)
    assert len(receiver.payloads) == 1
    receiver.on_receive = None

    result = resend(launch, body, **env)
    # The dead service never learned that the first POST landed, so it sends once more (at least once);
    # both carry the same nonce and commit, which is what graders deduplicate on.
    assert receiver.payloads == [expected_payload(body, result)] * 2
    assert len(model.history) == 1, "the commit existed: no second model call"
    if publisher == "github":
        assert [c.id.decode() for c in github.history(f"{TASK}-round-1")] == [result["commit_sha"]]
    else:
        assert local_history(tmp_path / "data", f"{TASK}-round-1") == [result["commit_sha"]]

    replay = requests.post(f"{box[0].url}/api-endpoint", json=body, timeout=30).json()
    assert replay["replayed"] is True and len(receiver.payloads) == 2, "an accepted notification is never re-sent"


@pytest.mark.browser
def test_killed_after_an_accepted_notification_never_notifies_again(launch, model, github, receiver):
    chromium = chromium_or_skip()
    env = {**github_env(github), "SELF_CHECK": "auto", "CHROMIUM_PATH": chromium}
    model.default_reply = lambda _body: OFFLINE_REPLY
    body = {**request_body(1, receiver.notify_url), "checks": OFFLINE_CHECKS}
    box = [launch(**env)]

    def crash_during_live_check(*_: str) -> None:
        if receiver.payloads and box[0].process.poll() is None:  # the browser opens the live page after notifying
            box[0].kill()

    github.on_call("GET", r"^/pages/", crash_during_live_check, times=1000)
    send_and_crash(box[0], body)
    assert len(receiver.payloads) == 1

    result = resend(launch, body, **env)
    assert receiver.payloads == [expected_payload(body, result)], "the accepted notification was recorded at once"
    assert any("not sent again" in warning for warning in result["warnings"])
    assert result["live_check"] is not None, "the live check the crash interrupted ran this time"
    assert len(model.history) == 1


# --- local publisher ---------------------------------------------------------------------------------------------


def test_local_build_killed_during_generation_builds_once_on_resend(launch, model, receiver, tmp_path):
    box: list[ServiceProcess] = []

    def answer_after_crashing(_body: dict) -> str:
        if len(model.history) == 1:
            box[0].kill()  # the model answered, but nobody is left to commit its files
        return ROUND1_REPLY

    model.default_reply = answer_after_crashing
    body = request_body(1, receiver.notify_url)
    box.append(launch())
    send_and_crash(box[0], body)

    result = resend(launch, body)
    data = tmp_path / "data"
    assert local_repos(data) == [f"{TASK}-round-1.git"]
    assert local_history(data, f"{TASK}-round-1") == [result["commit_sha"]]
    assert len(model.history) == 2
    assert receiver.payloads == [expected_payload(body, result)]


# --- round 2 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("publisher", ["github", "local"])
def test_round_two_killed_after_its_commit_makes_no_second_revision(launch, model, github, receiver, tmp_path,
                                                                    publisher):
    env = github_env(github) if publisher == "github" else {}
    model.enqueue(ROUND1_REPLY, ROUND2_REPLY)
    box = [launch(**env)]
    one = box[0].post(request_body(1, receiver.notify_url)).json()
    assert one["status"] == "success"
    if publisher == "github":
        github.on_call("GET", rf"{TASK}-round-2/pages/builds/latest$", crash(box))
    else:
        receiver.on_receive = crash(box)
    body = request_body(2, receiver.notify_url)
    send_and_crash(box[0], body)
    receiver.on_receive = None

    two = resend(launch, body, **env)
    history = ([c.id.decode() for c in github.history(f"{TASK}-round-2")] if publisher == "github"
               else local_history(tmp_path / "data", f"{TASK}-round-2"))
    assert history == [two["commit_sha"], one["commit_sha"]], "one revision commit on top of round 1"
    assert len(model.history) == 2, "round 2's commit existed: the model was not asked again"
    assert receiver.payloads[-1] == expected_payload(body, two)
    assert [p["round"] for p in receiver.payloads].count(2) == (1 if publisher == "github" else 2)


# --- the build store across processes ---------------------------------------------------------------------------------


def claim_in_child(ledger_path: Path, request: TaskRequest) -> subprocess.Popen:
    """Another process that claims ``request``'s nonce, says so on stdout, and holds it until stdin closes."""
    code = ("import sys; from utils.store.sqlite import SQLiteStore; from utils.records import TaskRequest, Check;"
            f"SQLiteStore(__import__('pathlib').Path({str(ledger_path)!r})).claim({request!r}, 'child', 600);"
            "print('claimed', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "claimed"
    return child


def sample_request(nonce: str = "ledger-nonce") -> TaskRequest:
    """A small valid request."""
    return TaskRequest(email="a@example.com", task="t", round=1, nonce=nonce, brief="b")


def test_a_claim_held_by_a_live_process_is_respected_and_taken_over_once_it_dies(tmp_path):
    store = SQLiteStore(tmp_path / "ledger.sqlite3")
    request = sample_request()
    child = claim_in_child(store.path, request)
    try:
        assert store.claim(request, "me", 600).state == "running", "a live worker's build is waited for"
    finally:
        child.kill()
        child.wait()
    taken = store.claim(request, "me", 600)
    assert taken.state == "new" and taken.row is not None and taken.row.request_id == "child"
    assert store.claim(request, "again", 600).state == "running", "now this live process holds it"


@pytest.mark.parametrize("field, value, state", [
    pytest.param(0, "another-host", "running", id="another-machine-or-container-keeps-its-lease"),
    pytest.param(2, "pid:[1]", "new", id="an-earlier-run-of-this-container-is-gone"),
])
def test_owner_seen_from_elsewhere(tmp_path, field, value, state):
    store = SQLiteStore(tmp_path / "ledger.sqlite3")
    request = sample_request()
    store.claim(request, "first", 600)
    owner = store.get(request.nonce).owner.split("|")  # hostname|boot-id|pid-namespace|pid|start-time
    owner[field] = value
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE builds SET owner = ? WHERE nonce = ?", ("|".join(owner), request.nonce))
    assert store.claim(request, "second", 600).state == state


def test_a_ledger_written_before_ownership_is_migrated(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE builds (nonce TEXT PRIMARY KEY, task TEXT NOT NULL, round INTEGER NOT NULL,"
                   " email TEXT NOT NULL, request_json TEXT NOT NULL, request_id TEXT NOT NULL, status TEXT NOT NULL,"
                   " lease_until REAL NOT NULL, result_json TEXT, notified INTEGER NOT NULL DEFAULT 0,"
                   " created_at REAL NOT NULL, updated_at REAL NOT NULL)")
        db.execute("INSERT INTO builds VALUES ('old', 't', 1, 'a@example.com', '{\"task\": \"t\", \"round\": 1,"
                   " \"email\": \"a@example.com\", \"brief\": \"b\"}', 'r', 'running', 1e12, NULL, 0, 1, 1)")
    store = SQLiteStore(path)
    SQLiteStore(path)  # opening twice (a second worker) must not fail
    assert store.claim(sample_request("old"), "me", 600).state == "running", "an unowned row keeps its lease"
    assert store.claim(sample_request("new"), "me", 600).state == "new"
    assert store.get("new").owner is not None


# --- what a killed writer leaves in a local repository -----------------------------------------------------------


def test_a_lock_left_by_a_killed_writer_does_not_block_the_repository(tmp_path):
    publisher = LocalPublisher(tmp_path / "repos", "http://127.0.0.1:9")
    target = publisher.prepare("app-round-1", "An app")
    lock = tmp_path / "repos" / "app-round-1.git" / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")  # what a writer killed while moving main leaves behind
    files, message = {"index.html": b"<p>hi</p>"}, commit_message("Round 1", "app", 1, "n-1")
    with pytest.raises(PublishFailed, match="locked"):
        publisher.commit(target, files, message, None)  # a fresh lock may belong to a live writer: a 502, not a 500

    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    sha = publisher.commit(target, files, message, None)
    assert publisher.find_commit(target, "n-1") == sha and not lock.exists()


def test_clone_index_missed_by_a_crash_is_written_when_the_commit_is_reused(tmp_path):
    publisher = LocalPublisher(tmp_path / "repos", "http://127.0.0.1:9")
    target = publisher.prepare("app-round-1", "An app")
    sha = publisher.commit(target, {"index.html": b"<p>hi</p>"}, commit_message("Round 1", "app", 1, "n-1"), None)
    index = tmp_path / "repos" / "app-round-1.git" / "info" / "refs"
    index.unlink()  # killed after moving main, before writing the index `git clone` reads first

    assert publisher.wait_until_live(target, sha, Deadline(5)) is True
    assert f"{sha}\trefs/heads/main" in index.read_text()
