"""Browser checks against small static apps served on loopback, under a Pages-like sub-path.

Never reaches the internet and never downloads a browser: pages come from a
local Flask app and Chromium is the installed one (see browser_support).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask, Response, abort

from tests import browser_support
from tests.browser_support import chromium_or_skip
from tests.fakes.server import LocalServer
from utils.checks.browser import PageReport, browser_env, find_chromium, run_checks
from utils.records import Check

REPO_ROOT = Path(__file__).resolve().parents[1]

SALES_PAGE = """<!doctype html>
<html><head><title>Sales</title></head>
<body>
<h1>Sales</h1>
<p id="total-sales">Loading…</p>
<script>
fetch('data.csv').then(r => r.text()).then(text => {
  const rows = text.trim().split('\\n').slice(1);
  const total = rows.reduce((sum, row) => sum + Number(row.split(',')[1]), 0);
  setTimeout(() => { document.querySelector('#total-sales').textContent = 'Total: ' + total; }, 300);
});
</script>
</body></html>
"""

BROKEN_PAGE = """<!doctype html>
<html><head><title>Broken</title></head>
<body>
<script>console.error('chart failed to render');</script>
<script src="missing.js"></script>
<script>renderChart();</script>
</body></html>
"""

HUNG_PAGE = """<!doctype html>
<html><head><title>Hung</title></head>
<body><script>setTimeout(() => { while (true) {} }, 100);</script></body></html>
"""

FILES = {
    "index.html": SALES_PAGE,
    "data.csv": "region,sales\nnorth,30\nsouth,12\n",
    "broken.html": BROKEN_PAGE,
    "hung.html": HUNG_PAGE,
}
SLOW = {"data.csv": 0.3}


def make_pages_app() -> Flask:
    """A tiny static host serving FILES under /myrepo/, like a project Pages site."""
    app = Flask(__name__)

    @app.get("/myrepo/")
    @app.get("/myrepo/<path:name>")
    def serve(name: str = "index.html") -> Response:
        if name not in FILES:
            abort(404)
        time.sleep(SLOW.get(name, 0))
        kind = "text/csv" if name.endswith(".csv") else "text/html"
        return Response(FILES[name], mimetype=kind)

    return app


@pytest.fixture(scope="module")
def site():
    """The base URL of the running static host (ends in /myrepo/)."""
    with LocalServer(make_pages_app()) as server:
        yield f"{server.url}/myrepo/"


SALES_CHECKS = [
    Check("Title is Sales", "document.title === 'Sales'"),
    Check("Has a chart", "document.querySelector('canvas') !== null"),
    Check("Data file is served", "fetch('data.csv').then(r => r.ok)"),
    Check("Total shows 42", "document.querySelector('#total-sales').textContent.includes('42')"),
    Check("Statement style", "return document.title === 'Sales'"),
    Check("Function style", "() => document.querySelectorAll('h1').length"),
    Check("Script style", "const h1 = document.querySelector('h1'); h1.textContent === 'Sales';"),
    Check("Throws", "document.querySelector('#missing').textContent"),
    Check("The page looks professional"),
]


@pytest.fixture(scope="module")
def sales_report(site: str) -> PageReport:
    """One visit to the sales page with every kind of check."""
    return run_checks(site, SALES_CHECKS, chromium_path=chromium_or_skip(), check_timeout=2)


def result(report: PageReport, text: str):
    """The result of the check whose text is ``text``."""
    return next(r for r in report.results if r.check == text)


@pytest.mark.browser
def test_passing_and_failing_checks(sales_report: PageReport) -> None:
    """A true expression passes and a false one fails, with its final value recorded."""
    assert result(sales_report, "Title is Sales").passed is True
    assert result(sales_report, "Title is Sales").value == "true"
    failing = result(sales_report, "Has a chart")
    assert (failing.passed, failing.value, failing.error) == (False, "false", None)
    assert (sales_report.passed, sales_report.failed) == (6, 2)


@pytest.mark.browser
def test_promise_check_is_awaited(sales_report: PageReport) -> None:
    """A check returning a promise is judged on what the promise resolves to."""
    assert result(sales_report, "Data file is served").passed is True


@pytest.mark.browser
def test_check_passes_once_the_page_renders_the_attachment(sales_report: PageReport) -> None:
    """A check that is false at load and true after the page fetched its data passes by polling."""
    total = result(sales_report, "Total shows 42")
    assert total.passed is True
    assert total.seconds > 0.1


@pytest.mark.browser
def test_statement_and_function_style_checks(sales_report: PageReport) -> None:
    """A `return ...` body, statements judged by their last value and a `() => ...` function are accepted."""
    assert result(sales_report, "Statement style").passed is True
    assert result(sales_report, "Script style").passed is True
    assert result(sales_report, "Function style").value == "1"


@pytest.mark.browser
def test_exception_counts_as_falsy_with_message(sales_report: PageReport) -> None:
    """A check that throws fails and says why."""
    thrown = result(sales_report, "Throws")
    assert thrown.passed is False
    assert "TypeError" in (thrown.error or "")


@pytest.mark.browser
def test_natural_language_check_is_listed_but_not_judged(sales_report: PageReport) -> None:
    """A check without JavaScript comes back with passed=None, in its place."""
    assert sales_report.results[-1].check == "The page looks professional"
    assert sales_report.results[-1].passed is None
    assert [r.check for r in sales_report.results] == [c.text for c in SALES_CHECKS]


@pytest.mark.browser
def test_clean_page_reports_no_errors(sales_report: PageReport) -> None:
    """A working page has no console errors, page errors or failed requests (the favicon probe is ignored)."""
    assert sales_report.load_error is None
    assert (sales_report.console_errors, sales_report.page_errors, sales_report.failed_requests) == ([], [], [])


@pytest.mark.browser
def test_broken_page_errors_are_collected(site: str) -> None:
    """Uncaught exceptions, console.error calls and a 404 for a referenced script are reported."""
    checks = [Check("Title", "document.title === 'Broken'")]
    report = run_checks(site + "broken.html", checks, chromium_path=chromium_or_skip(), check_timeout=2)
    assert report.passed == 1
    assert any("ReferenceError" in e and "renderChart" in e for e in report.page_errors)
    assert any("chart failed to render" in e for e in report.console_errors)
    assert any("/myrepo/missing.js" in r and "404" in r for r in report.failed_requests)


@pytest.mark.browser
def test_check_that_never_passes_stops_at_check_timeout(site: str) -> None:
    """A never-true check fails after about check_timeout, not later."""
    checks = [Check("Never", "document.querySelector('#never') !== null")]
    report = run_checks(site, checks, chromium_path=chromium_or_skip(), check_timeout=1)
    assert report.results[0].passed is False
    assert 0.8 <= report.results[0].seconds <= 2.0


@pytest.mark.browser
def test_hung_page_is_bounded(site: str) -> None:
    """A page stuck in an endless loop cannot hold the caller past its timeouts."""
    checks = [Check("Never", "document.querySelector('#never') !== null")]
    started = time.monotonic()
    report = run_checks(site + "hung.html", checks, chromium_path=chromium_or_skip(), check_timeout=1, total_timeout=5)
    assert report.results[0].passed is False
    assert time.monotonic() - started < 15


@pytest.mark.browser
def test_unreachable_page_fails_fast_with_load_error() -> None:
    """When nothing answers, every JavaScript check fails with the load error and no time is spent polling."""
    with LocalServer(make_pages_app()) as server:
        url = f"{server.url}/myrepo/"
    checks = [Check("Title", "document.title === 'Sales'"), Check("Looks nice")]
    report = run_checks(url, checks, chromium_path=chromium_or_skip(), check_timeout=5)
    assert report.load_error and "ERR_CONNECTION_REFUSED" in report.load_error
    assert [r.passed for r in report.results] == [False, None]
    assert [r.seconds for r in report.results] == [0.0, 0.0]  # never polled


@pytest.mark.browser
def test_runs_from_inside_an_event_loop(site: str) -> None:
    """run_checks is synchronous but still works when called under a running asyncio loop."""

    async def caller() -> PageReport:
        return run_checks(site, [Check("Title", "document.title")], chromium_path=chromium_or_skip(), check_timeout=2)

    assert asyncio.run(caller()).results[0].value == '"Sales"'


def test_browser_environment_carries_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium is started without the service's variables and with a throwaway HOME."""
    monkeypatch.setenv("SECRET", "s3cret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    env = browser_env("/tmp/throwaway")
    assert "s3cret" not in env.values() and "ghp_example" not in env.values()
    assert env["HOME"] == "/tmp/throwaway"


def test_import_does_not_load_playwright() -> None:
    """Importing utils.checks.browser stays cheap: Playwright is imported only when checks run."""
    code = "import sys, utils.checks.browser; assert 'playwright' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_find_chromium_prefers_explicit_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit path wins over $CHROMIUM_PATH, which wins over the well-known installs."""
    explicit, from_env = tmp_path / "explicit", tmp_path / "from-env"
    for fake in (explicit, from_env):
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM_PATH", str(from_env))
    assert find_chromium(str(explicit)) == str(explicit)
    assert find_chromium() == str(from_env)


def test_find_chromium_rejects_a_wrong_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A $CHROMIUM_PATH that is not an executable gives None rather than another browser."""
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "nope"))
    assert find_chromium() is None


def test_chromium_or_skip_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a browser a local run skips, but CI fails so browser tests are never silently dropped."""
    monkeypatch.setattr(browser_support, "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        browser_support.chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        browser_support.chromium_or_skip()
