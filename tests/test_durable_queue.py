"""No accepted build is ever lost: the real service (`python main.py`) killed, restarted, stopped, run twice.

Every case runs on SQLite under DATA_DIR and on PostgreSQL (DATABASE_URL; the
cluster `.ci/run` starts). An early-mode build SIGKILLed at each stage is
finished by the restarted service with no resend (one repository, one app
commit, one notification, at least once); two instances sharing one
DATABASE_URL that receive the same request at once build it once and answer
the same result; an instance killed mid-build is finished by another, and a
resend replays the result; a build found after its deadline is expired, not
run; a build whose process dies every time it runs is ended as an error after
two tries (a poison build), never resumed forever; SIGTERM lets the running
build finish and leaves queued builds queued for the next start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import MODEL_KEY, SECRET
from tests.crash_points import GITHUB_CRASH_POINTS
from tests.fakes.github_server import FakeGitHub
from tests.postgres_support import BACKENDS, fresh_database
from tests.sample_task import ROUND1_REPLY, request_body
from tests.service_process import ServiceProcess, free_port, start_in_new_folder
from tests.test_crash_recovery import TASK, crash, expected_payload, github_env

DEADLINE = "20"


@pytest.fixture(params=BACKENDS)
def store_env(request) -> Iterator[dict[str, str]]:
    """The environment that picks the build store: nothing (SQLite under DATA_DIR) or a fresh DATABASE_URL."""
    if request.param == "sqlite":
        yield {}
        return
    databases = fresh_database()
    yield {"DATABASE_URL": next(databases)}
    next(databases, None)


@pytest.fixture
def launch(tmp_path: Path, model, store_env) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `python main.py`; ``instance`` names its port and DATA_DIR (a restart reuses both); stop all after."""
    started: list[ServiceProcess] = []
    ports: dict[str, str] = {}

    def start(instance: str = "a", **extra: str) -> ServiceProcess:
        port = ports.setdefault(instance, str(free_port()))
        env = {"SECRET": SECRET, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": MODEL_KEY, "PORT": port,
               "DATA_DIR": str(tmp_path / f"data-{instance}"), "DEADLINE_SECONDS": DEADLINE, "SELF_CHECK": "off",
               **store_env, **extra}
        return start_in_new_folder(tmp_path, started, env)

    yield start
    for service in started:
        service.stop()


def wait_for(condition: Callable[[], object], seconds: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it is true, or fail naming ``what``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def ready(service: ServiceProcess) -> dict:
    """The /ready answer's store section."""
    return requests.get(f"{service.url}/ready", timeout=10).json()["store"]


def history(github: FakeGitHub) -> list[str]:
    """The shas of round 1's history on the fake GitHub, newest first."""
    return [commit.id.decode() for commit in github.history(f"{TASK}-round-1")]


# --- SIGKILL of an early-mode build at each stage, then a restart (no resend) ---------------------------------


@pytest.mark.parametrize("method, path, model_calls", GITHUB_CRASH_POINTS)
def test_early_build_killed_at_each_stage_is_finished_by_the_restarted_service(launch, model, github, receiver,
                                                                               method, path, model_calls):
    model.default_reply = lambda _body: ROUND1_REPLY
    env = {**github_env(github), "RESPONSE_MODE": "early"}
    body = request_body(1, receiver.notify_url)
    box = [launch(**env)]
    github.on_call(method, path, crash(box))
    assert box[0].post(body).json()["status"] == "accepted"
    box[0].process.wait(timeout=30)

    launch(**env)  # nobody sends the request again
    wait_for(lambda: receiver.payloads, what="the resumed build's notification")
    sha = receiver.payloads[0]["commit_sha"]
    assert sorted(github.repos) == [f"{github.login}/{TASK}-round-1"]
    assert history(github) == [sha], "one app commit"
    assert len(model.history) == model_calls, "the model is asked again only when no commit of the request exists"
    assert receiver.payloads == [expected_payload(body, {**receiver.payloads[0]})]


def test_early_build_killed_at_the_notification_notifies_at_least_once(launch, model, github, receiver):
    model.default_reply = lambda _body: ROUND1_REPLY
    env = {**github_env(github), "RESPONSE_MODE": "early"}
    body = request_body(1, receiver.notify_url)
    box = [launch(**env)]
    receiver.on_receive = crash(box)
    assert box[0].post(body).json()["status"] == "accepted"
    box[0].process.wait(timeout=30)
    receiver.on_receive = None

    service = launch(**env)
    wait_for(lambda: len(receiver.payloads) == 2, what="the second notification")
    assert receiver.payloads[0] == receiver.payloads[1] and len(model.history) == 1
    assert service.post(body).json()["status"] == "accepted", "early mode answers a resend at once, too"
    time.sleep(1)
    assert len(receiver.payloads) == 2, "a notification the service saw accepted is never sent again"
    assert history(github) == [receiver.payloads[0]["commit_sha"]]


# --- several instances --------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)  # instances share builds through PostgreSQL
def test_two_instances_sharing_a_database_build_the_same_request_once(launch, model, github, receiver):

    def slow_reply(_body: dict) -> str:
        time.sleep(1)  # both requests arrive while the first build is generating
        return ROUND1_REPLY

    model.default_reply = slow_reply
    first, second = launch("a", **github_env(github)), launch("b", **github_env(github))
    body = request_body(1, receiver.notify_url)
    answers: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda s=s: answers.setdefault(s.url, s.post(body).json()))
               for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = answers[first.url], answers[second.url]
    assert a["status"] == b["status"] == "success", answers
    assert a["commit_sha"] == b["commit_sha"] == history(github)[0] and len(history(github)) == 1
    assert len(model.history) == 1 and len(receiver.payloads) == 1
    assert [a.get("replayed"), b.get("replayed")].count(True) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)  # the other instance sees it through PostgreSQL
def test_a_killed_instances_request_is_finished_by_another_and_a_resend_replays_it(launch, model, github, receiver):
    model.default_reply = lambda _body: ROUND1_REPLY
    body = request_body(1, receiver.notify_url)
    box = [launch("a", **github_env(github))]
    other = launch("b", **github_env(github))
    github.on_call("POST", r"/git/trees$", crash(box))
    with pytest.raises(requests.ConnectionError):
        box[0].post(body)  # a synchronous request: its client loses the connection

    wait_for(lambda: receiver.payloads, seconds=float(DEADLINE), what="the other instance finishing the build")
    assert history(github) == [receiver.payloads[0]["commit_sha"]] and len(model.history) == 2
    resent = other.post(body).json()
    assert resent["replayed"] is True and resent["commit_sha"] == receiver.payloads[0]["commit_sha"]
    assert len(receiver.payloads) == 1


# --- deadlines and stopping ------------------------------------------------------------------------------------


def test_a_build_found_after_its_deadline_is_expired_not_run(launch, model, receiver):
    box: list[ServiceProcess] = []

    def crash_while_generating(_body: dict) -> str:
        box[0].kill()
        return ROUND1_REPLY

    model.default_reply = crash_while_generating
    env = {"RESPONSE_MODE": "early", "DEADLINE_SECONDS": "3"}
    box.append(launch(**env))
    assert box[0].post(request_body(1, receiver.notify_url)).json()["status"] == "accepted"
    box[0].process.wait(timeout=30)
    time.sleep(3.5)  # the deadline passes while no instance runs

    service = launch(**env)
    wait_for(lambda: ready(service)["expired"] == 1, what="the build to be marked expired")
    assert ready(service)["running"] == ready(service)["queued"] == 0
    time.sleep(1)
    assert len(model.history) == 1 and receiver.payloads == [], "an expired build is not started again"
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert 'llm_deploy_builds_total{outcome="expired",stage="deadline"} 1.0' in metrics
    visitor = requests.Session()  # builds are shown only after the secret was given (issue 16)
    assert visitor.post(f"{service.url}/sign-in", json={"secret": SECRET}, timeout=10).status_code == 200
    dashboard = visitor.get(service.url, timeout=10).text
    assert "expired" in dashboard and "deadline passed" in dashboard


def test_a_build_that_crashes_its_process_every_time_ends_as_an_error_after_two_tries(launch, model, receiver):
    box: list[ServiceProcess] = []

    def crash_while_generating(_body: dict) -> str:
        box[-1].kill()  # as a native crash in a parser would: the whole process dies mid-build
        return ROUND1_REPLY

    model.default_reply = crash_while_generating
    env = {"RESPONSE_MODE": "early", "DEADLINE_SECONDS": "60"}
    box.append(launch(**env))
    assert box[0].post(request_body(1, receiver.notify_url)).json()["status"] == "accepted"
    box[0].process.wait(timeout=30)
    box.append(launch(**env))  # resumes the build: its second try, which crashes again
    box[1].process.wait(timeout=30)

    service = launch(**env)  # finds it abandoned after two tries: ends it, never starts it
    visitor = requests.Session()
    assert visitor.post(f"{service.url}/sign-in", json={"secret": SECRET}, timeout=10).status_code == 200
    wait_for(lambda: "died 2 times" in visitor.get(service.url, timeout=10).text, what="the poison build's error")
    assert ready(service)["running"] == ready(service)["queued"] == 0
    time.sleep(1)
    assert len(model.history) == 2 and receiver.payloads == [], "a build is tried at most twice"
    assert service.process.poll() is None


def test_sigterm_finishes_the_running_build_and_leaves_queued_ones_for_the_next_start(launch, model, receiver):
    def slow_reply(_body: dict) -> str:
        time.sleep(2)
        return ROUND1_REPLY

    model.default_reply = slow_reply
    env = {"RESPONSE_MODE": "early", "MAX_CONCURRENT_BUILDS": "1"}
    service = launch(**env)
    running, waiting = request_body(1, receiver.notify_url, "running-1"), request_body(1, receiver.notify_url,
                                                                                       "queued-1")
    assert service.post(running).json()["queued"] is False
    assert service.post(waiting).json()["queued"] is True
    wait_for(lambda: model.history, what="the first build to reach the model")
    assert service.stop() == 0, service.log()
    assert [p["nonce"] for p in receiver.payloads] == ["running-1"], "the running build finished before the exit"
    assert len(model.history) == 1, "the queued build was left for the next instance"
    assert "stopping: no new builds" in service.log()

    restarted = launch(**env)
    wait_for(lambda: len(receiver.payloads) == 2, what="the queued build after the restart")
    assert receiver.payloads[1]["nonce"] == "queued-1" and ready(restarted)["queued"] == 0


def test_a_stopping_instance_refuses_new_builds_with_retry_after(start_service, model):
    from tests.conftest import task_request

    service = start_service(RESPONSE_MODE="early")
    service.app.extensions["deploy"].worker.stop()  # what SIGTERM does in a gunicorn worker
    response = service.post(task_request(nonce="after-stop"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "shutting down" in response.json()["error"]["message"] and not model.history
    assert requests.get(f"{service.url}/ready", timeout=10).json()["store"]["stopping"] is True


@pytest.mark.postgres
@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_ready_shows_no_database_location_and_the_dashboard_no_password(launch, store_env):
    from urllib.parse import urlsplit

    parts = urlsplit(store_env["DATABASE_URL"])  # the test cluster trusts local connections: any password works
    socket_dir = parts.query.split("=", 1)[1]
    dsn = f"host={socket_dir} dbname={parts.path.lstrip('/')} user={parts.username} password=pg-secret-pw-77"
    service = launch(DATABASE_URL=dsn)  # libpq's key=value form, which psycopg accepts
    store = ready(service)
    assert store["backend"] == "postgresql" and "location" not in store
    assert store["queued"] == store["running"] == store["expired"] == 0
    assert socket_dir not in requests.get(f"{service.url}/ready", timeout=10).text
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    page = visitor.get(service.url, timeout=10).text
    assert f"postgresql://{parts.username}@{socket_dir}{parts.path}" in page
    assert "pg-secret-pw-77" not in page + requests.get(service.url, timeout=10).text + service.log()


# --- the queue thread of one app (in-process): store hiccups and a removed DATA_DIR -----------------------------


def test_a_store_hiccup_while_taking_a_queued_build_keeps_the_build_slot(start_service, model):
    import sqlite3

    from tests.test_build_store import sample_request
    from utils.records import Attachments

    model.default_reply = lambda _body: ROUND1_REPLY
    service = start_service(MAX_CONCURRENT_BUILDS="1")
    runtime = service.app.extensions["deploy"]
    store = runtime.services().store
    store.claim(sample_request("queued-after-hiccup"), "rid", runtime.queue.lease_seconds, queued=True,
                deadline_at=time.time() + 60, attachments=Attachments((), ()), public_url=service.url)
    with sqlite3.connect(service.config.data_dir / "ledger.sqlite3") as db:  # the database refuses the take once
        db.execute("CREATE TRIGGER hiccup BEFORE UPDATE OF status ON builds WHEN NEW.status = 'running'"
                   " BEGIN SELECT RAISE(ABORT, 'disk I/O hiccup'); END")
    runtime.worker.tick()  # logged, not raised
    assert store.get("queued-after-hiccup").status == "queued"
    with sqlite3.connect(service.config.data_dir / "ledger.sqlite3") as db:
        db.execute("DROP TRIGGER hiccup")

    assert runtime.worker.resume_once() == 1, "the only build slot is free again after the hiccup"
    wait_for(lambda: store.get("queued-after-hiccup").status == "success", what="the queued build to finish")


def test_an_apps_queue_thread_stops_quietly_once_its_data_dir_is_removed(start_service, model, caplog):
    import logging
    import shutil

    from tests.conftest import task_request

    caplog.set_level(logging.INFO, logger="utils.jobs.worker")
    model.default_reply = lambda _body: ROUND1_REPLY
    service = start_service(RESPONSE_MODE="early")
    runtime = service.app.extensions["deploy"]
    assert service.post(task_request(nonce="then-removed")).json()["status"] == "accepted"  # starts the thread
    wait_for(lambda: runtime.services().store.get("then-removed").status == "success", what="the build")

    shutil.rmtree(service.config.data_dir)  # what a finished test or benchmark does with its temporary DATA_DIR
    runtime.worker.wake()
    gone = lambda: [r for r in caplog.records if "build store is gone" in r.getMessage()]  # noqa: E731
    wait_for(gone, seconds=10, what="the queue thread to notice its store is gone")
    runtime.worker.wake()  # a thread still running would look at the queue again
    time.sleep(0.5)
    assert len(gone()) == 1, "the thread stopped"
    assert str(service.config.data_dir) in gone()[0].error
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "utils.jobs.worker"]
    assert not service.config.data_dir.exists(), "the removed DATA_DIR is not created again"


def test_an_accepted_early_build_without_the_required_browser_ends_as_an_error_not_running(start_service, model):
    from tests.conftest import task_request

    service = start_service(RESPONSE_MODE="early", SELF_CHECK="required", CHROMIUM_PATH="/nonexistent/chromium")
    assert service.post(task_request(nonce="no-browser")).json()["status"] == "accepted"
    store = service.app.extensions["deploy"].services().store
    wait_for(lambda: store.get("no-browser").status != "running", seconds=10,
             what="the build to end (it stayed 'running', to be taken over again and again until it expired)")
    row = store.get("no-browser")
    assert row.status == "error" and row.result["http_status"] == 503
    assert row.result["body"]["error"]["field"] == "CHROMIUM_PATH" and not model.history
