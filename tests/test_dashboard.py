"""The dashboard at `/`: configuration status, recent builds with timing bars and links, the submit form.

The browser tests drive Debian's Chromium through Playwright against the real
service (scripted model, local publisher) and fill the form as a person would:
the form must send the same JSON as any client, with attachments read into
data URIs. A screenshot of the page after two builds goes to /tmp/dashboard.png.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.conftest import SECRET, task_request
from tests.fakes.faults import Delay
from tests.sample_task import ROUND1_BRIEF, ROUND1_CHECKS, ROUND1_REPLY, ROUND2_BRIEF, ROUND2_REPLY, SALES_CSV
from utils.checks.browser import CHROMIUM_ARGS
from utils.web import dashboard

SCREENSHOT = "/tmp/dashboard.png"
TASK = "sales-summary-7341"


@pytest.fixture
def page(service) -> Iterator:
    """A Chromium page on the dashboard, collecting console and page errors in ``page.errors``."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.errors = []
        tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.goto(service.url + "/")
        try:
            yield tab
        finally:
            browser.close()


def check_lines(checks: list) -> str:
    """The checks as the form takes them: one a line, JavaScript ones prefixed with ``js:``."""
    return "\n".join(f"js: {c['js']}" if isinstance(c, dict) else c for c in checks)


def fill_form(page, *, round_number: int, brief: str, checks: str = "", files: list | None = None,
              evaluation_url: str = "") -> str:
    """Fill the submit form; return the nonce it will send."""
    page.fill("#f-secret", SECRET)
    page.fill("#f-email", "student@example.com")
    page.fill("#f-task", TASK)
    page.fill("#f-round", str(round_number))
    page.fill("#f-brief", brief)
    page.fill("#f-checks", checks)
    page.fill("#f-evaluation", evaluation_url)
    page.set_input_files("#f-attachments", files or [])
    return page.input_value("#f-nonce")


def build_row(page, nonce: str, status: str = "success", timeout: float = 30_000):
    """Wait for the builds table to show ``nonce`` with ``status``; return the row."""
    return page.wait_for_selector(f'#builds tr.build[data-nonce="{nonce}"][data-status="{status}"]', timeout=timeout)


@pytest.mark.browser
def test_submitted_builds_appear_in_the_list(page, service, model, receiver):
    assert "Ready to build" in page.text_content("#configuration")
    assert "shown to those who know the secret" in page.text_content("#builds"), "anonymous: no builds (issue 16)"

    model.enqueue(ROUND1_REPLY, ROUND2_REPLY)
    csv = {"name": "data.csv", "mimeType": "text/csv", "buffer": SALES_CSV}
    first = fill_form(page, round_number=1, brief=ROUND1_BRIEF, checks=check_lines(ROUND1_CHECKS), files=[csv],
                      evaluation_url=receiver.notify_url)
    page.click("#submit-form button[type=submit]")
    page.wait_for_selector("#submit-status.ok", timeout=60_000)
    row = build_row(page, first)
    built = service.app.extensions["deploy"].services().store.get(first).result["body"]
    assert page.get_attribute("#submit-result a.result-page", "href") == built["pages_url"], "links, not raw JSON"
    assert page.get_attribute("#submit-result a.result-repo", "href") == built["repo_url"]
    assert page.get_attribute("#submit-result a.result-build", "href") == f"builds/{first}"
    assert page.query_selector("#submit-result pre") is None
    assert '"commit_sha"' not in page.text_content("#submit-result")
    assert page.input_value("#f-nonce") != first, "a fresh nonce is ready for the next build"

    second = fill_form(page, round_number=2, brief=ROUND2_BRIEF, evaluation_url=receiver.notify_url)
    page.click("#submit-form button[type=submit]")
    build_row(page, second)
    row = build_row(page, first)

    pages_url = row.query_selector("a.page").get_attribute("href")
    assert requests.get(pages_url + "data.csv", timeout=10).content == SALES_CSV, "FileReader sent the bytes"
    assert row.query_selector("a.repo").get_attribute("href").endswith(".git")
    assert len(row.query_selector("code.commit").text_content()) == 10
    stages = [s.get_attribute("data-stage") for s in row.query_selector_all(".bar .seg")]
    assert {"generation", "publish", "pages", "notify"} <= set(stages)

    stored = service.app.extensions["deploy"].services().store.get(first).request
    assert stored["round"] == 1 and stored["attachments"] == ["data.csv"]
    assert [c["js"] for c in stored["checks"] if c["js"]][0] == ROUND1_CHECKS[0]["js"]
    assert [p["round"] for p in receiver.payloads] == [1, 2]
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert page.errors == []


@pytest.mark.browser
def test_an_early_build_shows_up_running_then_finished(page, model):
    model.enqueue(Delay(2.0, ROUND1_REPLY))
    nonce = fill_form(page, round_number=1, brief=ROUND1_BRIEF,
                      files=[{"name": "data.csv", "mimeType": "text/csv", "buffer": SALES_CSV}])
    page.check("#f-early")
    page.click("#submit-form button[type=submit]")
    page.wait_for_selector("#submit-status.ok", timeout=10_000)
    assert "Accepted" in page.text_content("#submit-status")
    build_row(page, nonce, "running", timeout=10_000)
    build_row(page, nonce, "success", timeout=30_000)
    assert page.errors == []


@pytest.mark.browser
def test_a_rejected_submission_is_shown(page, model):
    fill_form(page, round_number=1, brief=ROUND1_BRIEF)
    page.fill("#f-secret", "not-the-secret")
    page.click("#submit-form button[type=submit]")
    status = page.wait_for_selector("#submit-status.bad", timeout=10_000)
    assert "HTTP 403" in status.text_content() and "secret" in status.text_content()
    assert not model.history


def test_one_secret_field_signs_in_and_builds(service):
    anonymous = requests.get(service.url + "/", timeout=5).text
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    signed_in = visitor.get(service.url + "/", timeout=5).text
    for html in (anonymous, signed_in):
        assert html.count('type="password"') == 1 and 'id="f-secret"' in html
    assert "Show builds" in anonymous and "Show builds" not in signed_in


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"SELF_CHECK": "off"}, "without a self-check: SELF_CHECK=off"),
    ({"SELF_CHECK": "auto", "CHROMIUM_PATH": "/nonexistent/chromium"}, "without a self-check: no Chromium found"),
])
def test_ready_to_build_says_when_the_self_check_is_off_and_why(start_service, overrides, reason):
    html = requests.get(start_service(**overrides).url + "/", timeout=5).text
    assert "Ready to build" in html and reason in html


def test_ready_to_build_says_nothing_more_when_the_self_check_runs(start_service):
    chromium_or_skip()
    html = requests.get(start_service(SELF_CHECK="auto").url + "/", timeout=5).text
    assert "Ready to build." in html and "without a self-check" not in html


def test_dashboard_escapes_what_requests_put_in_it(service, model):
    model.enqueue(ROUND1_REPLY)
    hostile = "<img src=x onerror=alert(1)>"
    assert service.post(task_request(task=hostile, nonce="hostile")).status_code == 200
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    html = visitor.get(service.url + "/", timeout=5).text
    assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_signed_in_dashboard_renders_when_the_build_store_cannot_be_read(start_service):
    with socket.socket() as probe:  # a PostgreSQL address where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = start_service(DATABASE_URL=f"postgresql://deploy:pw@127.0.0.1:{port}/builds")
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    response = visitor.get(service.url + "/", timeout=30)  # once a 500: the recent builds were read unguarded
    assert response.status_code == 200 and "cannot be read (OperationalError)" in response.text, response.text


def test_timing_bars_are_scaled_to_the_slowest_build():
    rows = [SimpleNamespace(task="t", round=1, nonce=f"n{i}", status="success", created_at=0.0, notified=True,
                            request={"evaluation_url": "http://127.0.0.1:9/notify"}) for i in range(2)]
    bodies = [{"repo_url": "https://github.com/me/t-round-1", "commit_sha": "a" * 40,
               "timings": {"generation": 6.0, "publish": 2.0}},
              {"repo_url": "http://localhost:5000/git/t-round-1.git", "commit_sha": "b" * 40,
               "timings": {"generation": 2.0, "bogus": "x"}}]
    slow, fast = (dashboard.build_view(row, body, longest=8.0) for row, body in zip(rows, bodies, strict=False))
    assert [(s.name, s.percent) for s in slow.stages] == [("generation", 75.0), ("publish", 25.0)]
    assert [(s.name, s.percent) for s in fast.stages] == [("generation", 25.0)]
    assert slow.commit_url == "https://github.com/me/t-round-1/commit/" + "a" * 40
    assert fast.commit_url == "", "the local publisher has no commit page"
