"""Find the Chromium for browser tests: skip locally when there is none, fail under CI.

Never downloads a browser (no `playwright install`); it only looks for one
already installed (Debian's chromium, or $CHROMIUM_PATH).
"""

from __future__ import annotations

import os

import pytest

from utils.checks.browser import find_chromium

SKIP_REASON = "no Chromium found: install Debian's chromium or set CHROMIUM_PATH"


def chromium_or_skip() -> str:
    """The Chromium executable; skips the test when none is found, fails instead when $CI is set."""
    path = find_chromium()
    if path:
        return path
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{SKIP_REASON} (CI must not skip browser tests)")
    pytest.skip(SKIP_REASON)


def assert_checks_pass(pages_url: str, checks: list, chromium: str) -> None:
    """Run a request's JavaScript checks in Chromium against the live page; every one must pass."""
    from utils.checks.browser import run_checks
    from utils.intake.validation import parse_checks

    report = run_checks(pages_url, parse_checks(checks), chromium_path=chromium, check_timeout=10)
    judged = [r for r in report.results if r.passed is not None]
    assert judged and all(r.passed for r in judged), [(r.check, r.value, r.error) for r in report.results]
    assert not report.page_errors, report.page_errors
