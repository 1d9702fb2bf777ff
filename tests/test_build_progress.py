"""What a user sees of a build while and after it runs: stage names in the log, warnings, the dashboard's rows.

The real service on loopback with the scripted model, the local publisher and
the evaluation receiver; the dashboard is read as HTML (the browser tests in
test_dashboard.py drive the form).
"""

from __future__ import annotations

import json
import re
import time

import requests

from tests.conftest import SECRET, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Delay, Fail
from tests.sample_task import ROUND1_REPLY


def log_lines(err: str) -> list[dict]:
    """The JSON log lines of a captured stderr."""
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def dashboard(service) -> str:
    """The dashboard as a signed-in visitor sees it (builds are shown only after the secret, issue 16)."""
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    return visitor.get(service.url + "/", timeout=5).text


def build_row(html: str, nonce: str) -> str:
    """The dashboard's table row of ``nonce`` ("" when it has none)."""
    found = re.search(r'<tr class="build"[^>]*data-nonce="' + re.escape(nonce) + r'">(.*?)</tr>', html, re.S)
    return found.group(1) if found else ""


def test_a_notification_never_accepted_is_a_warning_and_an_error_in_the_log(service, model, capfd):
    model.enqueue(ROUND1_REPLY)
    # a Retry-After past the deadline: the service gives up after one attempt instead of knocking early
    with EvaluationReceiver([Fail(503, retry_after=3600)] * 5) as busy:
        body = service.post(task_request(nonce="never-accepted", evaluation_url=busy.notify_url)).json()
    assert body["status"] == "success" and body["notified"] is False
    assert any("did not accept the notification" in w and "HTTP 503" in w for w in body["warnings"]), body["warnings"]
    notify = [line for line in log_lines(capfd.readouterr().err)
              if line.get("message") == "stage finished" and line.get("stage") == "notify"]
    assert len(notify) == 1 and notify[0]["outcome"] == "error" and notify[0]["level"] == "error"
    assert "HTTP 503" in notify[0]["error"]
    html = dashboard(service)
    assert '"stages notification bad">not notified' in build_row(html, "never-accepted")


def test_preparation_is_its_own_stage_before_generation(service, model, receiver, capfd):
    model.enqueue(ROUND1_REPLY)
    body = service.post(task_request(nonce="stage-names", evaluation_url=receiver.notify_url)).json()
    assert set(body["timings"]) == {"prepare", "generation", "self_check", "publish", "pages", "notify"}
    assert body["notified"] is True and body["warnings"] == []
    stages = [line["stage"] for line in log_lines(capfd.readouterr().err) if line.get("message") == "stage finished"]
    assert stages == ["prepare", "generation", "self_check", "publish", "pages", "notify"]
    assert '"stages notification">notified' in build_row(dashboard(service), "stage-names")


def test_without_an_evaluation_url_the_dashboard_says_nothing_about_notifying(service, model):
    model.enqueue(ROUND1_REPLY)
    assert service.post(task_request(nonce="no-callback")).json()["notified"] is False
    row = build_row(dashboard(service), "no-callback")
    assert "success" in row and "notified" not in row


def test_a_running_build_shows_its_stage_and_repository_link(service, model):
    model.enqueue(Delay(3.0, ROUND1_REPLY))
    answered = service.post(task_request(nonce="in-progress"), headers={"Prefer": "respond-async"})
    assert answered.json()["status"] == "accepted"
    deadline, row = time.monotonic() + 10, ""
    while time.monotonic() < deadline:
        row = build_row(dashboard(service), "in-progress")
        if "generation…" in row:
            break
        time.sleep(0.1)
    assert "running" in row and "generation…" in row, row
    assert 'class="repo" href="http://127.0.0.1:' in row and "sales-summary-4f2a-round-1.git" in row
    assert 'class="page"' not in row, "the page is linked only once it is committed"
    assert 'data-stage="prepare"' in row, "the timings so far are drawn"
    while time.monotonic() < deadline + 20 and "running" in row:
        time.sleep(0.2)
        row = build_row(dashboard(service), "in-progress")
    assert "success" in row and 'class="page"' in row and "generation…" not in row


def test_a_running_builds_page_shows_its_stage_and_links_so_far(service, model):
    model.enqueue(Delay(3.0, ROUND1_REPLY))
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    answered = service.post(task_request(nonce="page-in-progress"), headers={"Prefer": "respond-async"})
    assert answered.json()["status"] == "accepted"
    deadline, page = time.monotonic() + 10, ""
    while time.monotonic() < deadline and "generation…" not in page:  # once blank until the build ended
        page = visitor.get(service.url + "/builds/page-in-progress", timeout=5).text
        time.sleep(0.1)
    assert 'id="current-stage">(generation…)' in page and 'class="repo"' in page, page
    assert 'class="page"' not in page and "notified" not in page, "no page before the commit, no callback asked"
    while time.monotonic() < deadline + 20 and "running" in page:
        time.sleep(0.2)
        page = visitor.get(service.url + "/builds/page-in-progress", timeout=5).text
    assert "success" in page and 'class="page"' in page and "notified" not in page and "current-stage" not in page


def test_a_running_builds_page_says_running_until_it_is_notified(service, model, receiver):
    model.enqueue(Delay(3.0, ROUND1_REPLY))
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    body = task_request(nonce="says-running", evaluation_url=receiver.notify_url)
    assert service.post(body, headers={"Prefer": "respond-async"}).json()["status"] == "accepted"
    deadline, page = time.monotonic() + 10, ""
    while time.monotonic() < deadline and "generation…" not in page:
        page = visitor.get(service.url + "/builds/says-running", timeout=5).text
        time.sleep(0.1)
    assert 'id="status" class="muted">running</span>' in page, page
    assert "running: the checks are shown once the self-check has run" in page
    assert "not notified" not in page and "No checks" not in page
    assert "not notified" not in build_row(dashboard(service), "says-running")
    while time.monotonic() < deadline + 20 and "running" in page:
        time.sleep(0.2)
        page = visitor.get(service.url + "/builds/says-running", timeout=5).text
    assert 'id="status" class="ok">success</span>' in page and "&middot; notified" in page


def test_a_retried_nonce_gets_the_new_attempts_received_time(service, model):
    model.enqueue(Fail(400, "bad request"))
    assert service.post(task_request(nonce="retried")).status_code == 502
    store = service.app.extensions["deploy"].services().store
    failed_at = store.get("retried").created_at
    time.sleep(1.1)  # the dashboard shows seconds
    model.enqueue(ROUND1_REPLY)
    retried_at = time.time()
    assert service.post(task_request(nonce="retried")).status_code == 200
    row = store.get("retried")
    assert row.status == "success" and row.created_at >= retried_at > failed_at + 1
    assert store.recent(1)[0].nonce == "retried"


def test_a_successful_builds_bar_has_no_failure_colour():
    css = re.search(r"<style>(.*?)</style>", (dashboard_template := _template()), re.S).group(1)
    bad = re.search(r"--bad:\s*(#[0-9a-fA-F]{6})", css).group(1).lower()
    colours = {stage: colour.lower() for stage, colour in
               re.findall(r'\.seg\[data-stage="(\w+)"\]\s*\{\s*background:\s*(#[0-9a-fA-F]{6})', css)}
    assert {"prepare", "generation", "self_check", "publish", "pages", "notify"} <= set(colours)
    assert bad not in colours.values(), colours
    assert len(set(colours.values())) == len(colours), "each stage has its own colour"
    assert "['prepare', 'generation', 'self_check', 'publish', 'pages', 'notify']" in dashboard_template


def _template() -> str:
    from utils.web import dashboard

    return dashboard.TEMPLATE


def test_progress_is_kept_only_while_a_build_runs(tmp_path):
    from utils.records import TaskRequest
    from utils.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "ledger.sqlite3")
    request = TaskRequest(email="a@example.com", task="t", round=1, nonce="n", brief="b")
    store.claim(request, "r1", lease_seconds=60)
    store.progress("n", {"stage": "generation", "repo_url": "http://x/git/t-round-1.git"})
    assert store.get("n").progress == {"stage": "generation", "repo_url": "http://x/git/t-round-1.git"}
    store.finish("n", "error", {"http_status": 502, "body": {}})
    store.progress("n", {"stage": "pages"})  # a late write never touches a finished row
    assert store.get("n").progress["stage"] == "generation"
    assert store.claim(request, "r2", lease_seconds=60).state == "new"
    assert store.get("n").progress is None, "a new attempt starts without the old one's stage"


def test_the_startup_line_without_configuration_lists_what_is_missing_as_problems(tmp_path, capfd):
    from main import create_app
    from utils.config import load_config

    create_app(load_config({"DATA_DIR": str(tmp_path / "data")}))
    startup = [line for line in log_lines(capfd.readouterr().err)
               if line.get("message", "").startswith("configuration")]
    assert len(startup) == 1 and startup[0]["level"] == "warning"
    line = startup[0]
    assert line["message"].startswith("configuration incomplete: set SECRET and OPENAI_API_KEY")
    assert line["missing"][0] == "SECRET" and "SECRET is not set" in line["problems"]
    assert any(problem.startswith("OPENAI_API_KEY") for problem in line["problems"])
