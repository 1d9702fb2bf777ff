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
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import SECRET, Service, data_uri, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Fail
from tests.sample_task import ROUND1_REPLY
from utils.config import load_config
from utils.deadline import Deadline
from utils.intake.json_limits import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, MAX_JSON_VALUES
from utils.jobs.notify import notify
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


# --------------------------------------------------------------------------- guessing the secret


def post_from(service: Service, client: str | None, secret: str, **fields) -> requests.Response:
    """POST as a proxy would, appending ``client`` to X-Forwarded-For."""
    headers = {"X-Forwarded-For": client} if client else {}
    return service.post(task_request(secret=secret, **fields), headers=headers)


def test_spaces_is_recognised_and_counts_clients_by_the_address_its_proxy_appends():
    spaces = {"SYSTEM": "spaces", "SPACE_ID": "someone/llm-deploy", "SPACE_HOST": "someone-llm-deploy.hf.space"}
    assert load_config(spaces, dotenv=False).trusted_proxy_hops == 1
    assert load_config({**spaces, "TRUSTED_PROXY_HOPS": "2"}, dotenv=False).trusted_proxy_hops == 2
    assert load_config({"SYSTEM": "spaces"}, dotenv=False).trusted_proxy_hops == 0, "SYSTEM alone is not a Space"
    assert load_config({}, dotenv=False).trusted_proxy_hops == 0


def test_on_spaces_one_guesser_does_not_lock_out_the_grader(start_service, model):
    service = start_service(SYSTEM="spaces", SPACE_ID="someone/llm-deploy", SECRET_FAILURES_LIMIT="3")
    statuses = [post_from(service, "203.0.113.7", f"guess-{i}").status_code for i in range(15)]
    assert statuses == [403] * 3 + [429] * 12
    model.enqueue(ROUND1_REPLY)
    graded = post_from(service, "192.0.2.44", SECRET)
    assert graded.status_code == 200 and graded.json()["status"] == "accepted", graded.text  # early on Spaces


def test_the_right_secret_is_served_from_an_address_past_the_limit(start_service, model):
    service = start_service(SECRET_FAILURES_LIMIT="3")  # nothing in front: everyone shares one address here
    assert [post_from(service, None, f"guess-{i}").status_code for i in range(5)] == [403, 403, 403, 429, 429]
    model.enqueue(ROUND1_REPLY)
    served = post_from(service, None, SECRET)
    assert served.status_code == 200 and served.json()["status"] == "success", served.text
    assert post_from(service, None, "guess-again").status_code == 429, "the right secret does not reset the count"


def test_parallel_wrong_secrets_cannot_slip_past_the_limit(start_service):
    service = start_service(SECRET_FAILURES_LIMIT="5")
    padding = [{"name": "big.txt", "url": data_uri(b"x" * 3_000_000, "text/plain")}]  # each takes a while to read
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda i: post_from(service, None, f"guess-{i}", nonce=f"p{i}",
                                                     attachments=padding).status_code, range(20)))
    assert sorted(statuses) == [403] * 5 + [429] * 15


def test_the_secret_is_checked_before_the_other_fields(service: Service):
    response = service.post(task_request(secret="wrong", round="not a round", checks="not a list"))
    assert response.status_code == 403, response.text


# --------------------------------------------------------------------------- JSON bombs


def bomb(count: int, item: str = "{}") -> bytes:
    """A body of ``count`` tiny JSON values, the shape that exhausted memory."""
    return ('{"secret": "wrong", "pad": [' + ",".join([item] * count) + "]}").encode()


@pytest.mark.parametrize("body, words", [
    (bomb(MAX_JSON_CONTAINERS + 1), "objects and lists"),
    (bomb(500_000), "objects and lists"),
    (bomb(MAX_JSON_VALUES + 1, "1"), "values"),
    (bomb(MAX_JSON_VALUES + 1, '"a"'), "values"),
    (b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "nested"),
], ids=["containers", "half-a-million", "numbers", "strings", "depth"])
def test_json_bombs_are_refused_before_parsing(service: Service, body: bytes, words: str):
    response = service.post(body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]


@pytest.mark.parametrize("tail", [b"", b"\\"], ids=["open-string", "trailing-backslash"])
def test_an_unterminated_string_of_escaped_quotes_is_refused_at_once(service: Service, tail: bytes):
    # the shape scan once retried the open string at every later quote: 300 kB kept a thread busy for minutes
    body = b'{"secret": "wrong", "pad": "' + b'\\"' * 150_000 + tail
    response = requests.post(f"{service.url}/api-endpoint", data=body, timeout=20)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"], response.text


def test_brackets_and_commas_inside_strings_do_not_count(service: Service, model):
    brief = "Show " + "[{}], " * 15_000 + 'and a quote \\" inside.'
    model.enqueue(ROUND1_REPLY)
    response = service.post(json.dumps(task_request(brief=brief)).encode())
    assert response.status_code == 200 and response.json()["status"] == "success", response.text
