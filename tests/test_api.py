"""The /api-endpoint contract: bad input, configuration errors, idempotency, notification.

Hostile and malformed requests get a 4xx JSON error naming the problem, never a
5xx, and nothing is written outside DATA_DIR.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import requests

from main import create_app
from tests.conftest import MODEL_KEY, SECRET, data_uri, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Fail
from tests.sample_task import ROUND1_REPLY

BAD_REQUESTS = [
    ("empty body", b"", 400, None),
    ("not JSON", b"hello", 400, None),
    ("JSON list", b"[1, 2]", 400, None),
    ("JSON string", b'"text"', 400, None),
    ("not UTF-8", b"\xff\xfe{\x00", 400, None),
    ("deeply nested", b"[" * 50_000 + b"]" * 50_000, 400, None),
    ("missing email", task_request(email=None), 400, "email"),
    ("missing brief", task_request(brief=None), 400, "brief"),
    ("missing secret", task_request(secret=None), 400, "secret"),
    ("empty task", task_request(task="  "), 400, "task"),
    ("numeric nonce", task_request(nonce=5), 400, "nonce"),
    ("round zero", task_request(round=0), 400, "round"),
    ("round float", task_request(round=1.5), 400, "round"),
    ("round boolean", task_request(round=True), 400, "round"),
    ("round text", task_request(round="two"), 400, "round"),
    ("checks not a list", task_request(checks="x"), 400, "checks"),
    ("check is a number", task_request(checks=[3]), 400, "checks[0]"),
    ("check object without js", task_request(checks=[{"python": "x"}]), 400, "checks[0]"),
    ("ftp callback", task_request(evaluation_url="ftp://example.com/x"), 400, "evaluation_url"),
    ("javascript callback", task_request(evaluation_url="javascript:alert(1)"), 400, "evaluation_url"),
    ("file callback", task_request(evaluation_url="file:///etc/passwd"), 400, "evaluation_url"),
    ("attachments not a list", task_request(attachments={"name": "a"}), 400, "attachments"),
    ("attachment not an object", task_request(attachments=["data.csv"]), 400, "attachments[0]"),
    ("attachment without url", task_request(attachments=[{"name": "a.csv"}]), 400, "attachments[0].url"),
    ("traversal name", task_request(attachments=[{"name": "../../etc/cron.d/x", "url": data_uri(b"x")}]),
     400, "attachments[0].name"),
    ("absolute name", task_request(attachments=[{"name": "/etc/passwd", "url": data_uri(b"x")}]),
     400, "attachments[0].name"),
    ("workflow name", task_request(attachments=[{"name": ".github/workflows/x.yml", "url": data_uri(b"x")}]),
     400, "attachments[0].name"),
    ("git config name", task_request(attachments=[{"name": ".git/config", "url": data_uri(b"x")}]),
     400, "attachments[0].name"),
    ("NUL in name", task_request(attachments=[{"name": "a\x00.csv", "url": data_uri(b"x")}]),
     400, "attachments[0].name"),
    ("dot name", task_request(attachments=[{"name": ".", "url": data_uri(b"x")}]), 400, "attachments[0].name"),
    ("invalid base64", task_request(attachments=[{"name": "a.csv", "url": "data:text/csv;base64,@@@"}]),
     400, "attachments[0].url"),
    ("file scheme attachment", task_request(attachments=[{"name": "a", "url": "file:///etc/passwd"}]),
     400, "attachments[0].url"),
    ("wrong secret", task_request(secret="not-the-secret"), 403, "secret"),
]


@pytest.mark.parametrize("name, body, status, field", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_clear_4xx(make_config, tmp_path, monkeypatch, model, name, body, status, field):
    monkeypatch.chdir(tmp_path)
    client = create_app(make_config()).test_client()
    if isinstance(body, dict):
        body = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    response = client.post("/api-endpoint", data=body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert response.get_json()["status"] == "error" and error["message"]
    if field:
        assert error["field"] == field
    assert SECRET not in response.get_data(as_text=True)
    assert not model.history, "a rejected request must not reach the model"
    written = [p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "data")]
    assert written == []


def test_json_is_parsed_without_a_content_type(service, model):
    model.enqueue(ROUND1_REPLY)
    body = json.dumps(task_request(nonce="no-content-type")).encode()
    response = requests.post(f"{service.url}/api-endpoint", data=body, timeout=60,
                             headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text


def test_body_over_the_limit_gets_413(start_service):
    service = start_service(MAX_REQUEST_BYTES="2048")
    response = service.post(task_request(brief="x" * 5000))
    assert response.status_code == 413
    assert "2048" in response.json()["error"]["message"]


@pytest.mark.parametrize("missing, named", [("SECRET", "SECRET"), ("OPENAI_API_KEY", "OPENAI_API_KEY")])
def test_missing_configuration_gets_503_naming_the_variable(start_service, missing, named):
    service = start_service(**{missing: None})
    response = service.post(task_request())
    assert response.status_code == 503
    assert named in response.json()["error"]["message"]
    assert response.headers["Retry-After"]
    ready = requests.get(f"{service.url}/ready", timeout=5)
    assert ready.status_code == 503 and any(named in m for m in ready.json()["missing"])


def test_service_starts_with_no_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from utils.config import load_config

    client = create_app(load_config({})).test_client()
    assert client.get("/health").get_json() == {"status": "healthy"}
    assert client.post("/api-endpoint", json=task_request()).status_code == 503
    assert client.get("/").status_code == 200


def test_same_nonce_twice_builds_once(service, model, receiver):
    model.enqueue(ROUND1_REPLY)
    body = task_request(nonce="dup-seq", evaluation_url=receiver.notify_url)
    first = service.post(body).json()
    second = service.post(body).json()
    assert len(model.history) == 1
    assert second["replayed"] is True
    assert {k: second[k] for k in ("repo_url", "pages_url", "commit_sha")} == \
        {k: first[k] for k in ("repo_url", "pages_url", "commit_sha")}
    assert len(receiver.payloads) == 1, "a successful notification is not sent again"


def test_concurrent_duplicates_build_once(service, model):
    model.enqueue(ROUND1_REPLY)
    body = task_request(nonce="dup-concurrent")
    results: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: results.append(service.post(body))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert len({r.json()["commit_sha"] for r in results}) == 1
    assert len(model.history) == 1


def test_nonce_reused_for_another_round_gets_409(service, model):
    model.enqueue(ROUND1_REPLY)
    assert service.post(task_request(nonce="reused")).status_code == 200
    response = service.post(task_request(nonce="reused", round=2))
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "nonce"


def test_results_survive_a_restart(make_config, model):
    model.enqueue(ROUND1_REPLY)
    config = make_config()
    body = task_request(nonce="restart")
    first = create_app(config).test_client().post("/api-endpoint", json=body)
    again = create_app(config).test_client().post("/api-endpoint", json=body)
    assert again.status_code == 200 and again.get_json()["commit_sha"] == first.get_json()["commit_sha"]
    assert len(model.history) == 1


def test_notification_is_retried_until_accepted(service, model):
    model.enqueue(ROUND1_REPLY)
    with EvaluationReceiver([Fail(503)] * 2) as flaky:
        response = service.post(task_request(nonce="flaky-callback", evaluation_url=flaky.notify_url))
        assert response.json()["notified"] is True
        assert flaky.attempts == 3 and len(flaky.payloads) == 1


def test_notification_failure_is_reported_and_resent_on_duplicate(start_service, model):
    service = start_service(DEADLINE_SECONDS="4")
    model.enqueue(ROUND1_REPLY)
    with EvaluationReceiver([Fail(500)] * 1000) as down:
        body = task_request(nonce="callback-down", evaluation_url=down.notify_url)
        response = service.post(body)
        assert response.status_code == 200 and response.json()["notified"] is False
        assert down.attempts >= 2
    with EvaluationReceiver() as up:
        body["evaluation_url"] = up.notify_url
        again = service.post(body).json()
        assert again["notified"] is True and len(up.payloads) == 1
    assert len(model.history) == 1


def test_logs_are_json_and_never_contain_secrets(service, model, receiver, capfd):
    model.enqueue(ROUND1_REPLY)
    service.post(task_request(nonce="log-check", evaluation_url=receiver.notify_url))
    service.post(task_request(nonce="log-check-2", secret="wrong-" + SECRET))
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line.get("stage") == "generation" and "seconds" in line for line in lines)
    assert all(line["request_id"] != "-" for line in lines if line.get("stage") in ("generation", "publish"))
    assert SECRET not in err and MODEL_KEY not in err
    assert "product,sales" not in err


def test_ledger_keeps_no_secret(service, model):
    model.enqueue(ROUND1_REPLY)
    service.post(task_request(nonce="ledger-secret"))
    store = Path(service.config.data_dir, "ledger.sqlite3").read_bytes()
    assert SECRET.encode() not in store and MODEL_KEY.encode() not in store


def test_dashboard_lists_builds(service, model):
    model.enqueue(ROUND1_REPLY)
    body = service.post(task_request(nonce="dashboard")).json()
    visitor = requests.Session()  # builds are shown once the secret was given (issue 16)
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    page = visitor.get(service.url + "/", timeout=5).text
    assert "sales-summary-4f2a" in page and body["pages_url"] in page
