"""The self-check stage inside the service: a broken app is repaired before it is published.

The scripted model first writes the sample app with a script that throws, then
sends the fix when the repair request shows it the failing check and the error.
"""

from __future__ import annotations

import pytest

from tests.browser_support import assert_checks_pass, chromium_or_skip
from tests.conftest import task_request
from tests.sample_task import ROUND1_CHECKS, ROUND1_REPLY, ROUND1_SCRIPT, request_body

BROKEN_REPLY = ROUND1_REPLY.replace("document.querySelector('#total-sales').textContent",
                                    "document.querySelector('#total').textContent")
FIX_REPLY = f"The element id was wrong.\n\napp.js\n```javascript\n{ROUND1_SCRIPT}```\n"


@pytest.mark.browser
def test_broken_app_is_repaired_before_publishing(start_service, model, receiver):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="120")
    model.enqueue(BROKEN_REPLY, FIX_REPLY)
    response = service.post(request_body(1, receiver.notify_url))
    assert response.status_code == 200, response.text
    body = response.json()
    report = body["self_check"]
    assert report["ran"] is True and report["repairs"] == 1
    assert report["before"][1] >= 1 and report["after"][1] == 0, report
    assert "self_check" in body["timings"]
    repair_prompt = "\n".join(str(m.get("content")) for m in model.history[1].json["messages"])
    assert "#total-sales" in repair_prompt and "TypeError" in repair_prompt
    assert_checks_pass(body["pages_url"], ROUND1_CHECKS, chromium)


def test_self_check_off_and_auto_without_a_browser_publish_unchecked(start_service, model):
    for mode, nonce in (("off", "mode-off"), ("auto", "mode-auto")):
        service = start_service(SELF_CHECK=mode, CHROMIUM_PATH="/nonexistent/chromium")
        model.enqueue(ROUND1_REPLY)
        body = service.post(task_request(nonce=nonce)).json()
        assert body["status"] == "success" and body["self_check"]["ran"] is False
        assert body["self_check"]["skipped_reason"]


def test_self_check_required_without_a_browser_is_503_before_any_model_call(start_service, model):
    service = start_service(SELF_CHECK="required", CHROMIUM_PATH="/nonexistent/chromium")
    response = service.post(task_request(nonce="mode-required"))
    assert response.status_code == 503
    assert response.json()["error"]["field"] == "CHROMIUM_PATH"
    assert not model.history
