"""Secrets never leave the service, and guessing the shared secret is rate limited.

A full two-round build against the fake GitHub with distinctive values for
SECRET, OPENAI_API_KEY and GITHUB_TOKEN, then a search of everything the build
produced (logs, store files, prompts, responses, git objects, served pages,
notifications) for each value, its base64 and its URL-encoded form. A model
that echoes a key gets its commit blocked by the secret scan. Wrong secrets
from one client address are limited to SECRET_FAILURES_LIMIT per window.

Values are assembled at run time so this file holds no literal token.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Service, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.sample_task import ROUND1_INDEX, ROUND1_REPLY, ROUND1_SCRIPT, ROUND2_REPLY, request_body
from utils.config import load_config

SHARED_SECRET = "Shared+Secret/" + "q7Vb2Xn9Kc4" + "=="  # '+', '/' and '=' change under URL and JSON encodings
OPENAI_KEY = "sk-" + "proj-" + "Lm3Qw8Zt5Xv1Rb7Nk2Hj9Pd4Sf6Gc0Ya8Ue"
GITHUB_TOKEN = "gh" + "p_" + "T4kN8qW2zX6vB1mR9sL3cJ7hD5fG0pYa2EuI"
STRAY_TOKEN = "gh" + "p_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9OoN"  # a token the service was never given
SECRETS = {"SECRET": SHARED_SECRET, "OPENAI_API_KEY": OPENAI_KEY, "GITHUB_TOKEN": GITHUB_TOKEN}


def forms(value: str) -> dict[str, bytes]:
    """The value and the encodings a leak could take."""
    raw = value.encode()
    return {"raw": raw, "base64": base64.b64encode(raw), "urlsafe base64": base64.urlsafe_b64encode(raw),
            "url-encoded": urllib.parse.quote(value, safe="").encode(),
            "json-escaped": json.dumps(value)[1:-1].encode()}


def assert_no_secret(where: str, data: bytes | str) -> None:
    """Fail naming the place and the form if any secret shows up in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    for name, value in SECRETS.items():
        for form, needle in forms(value).items():
            assert needle not in blob, f"{name} ({form}) leaked into {where}"


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    """A scripted model that accepts only OPENAI_KEY."""
    with ScriptedModel(api_key=OPENAI_KEY) as model:
        yield model


@pytest.fixture
def github_token() -> str:
    """The conftest ``github`` fake accepts only GITHUB_TOKEN."""
    return GITHUB_TOKEN


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """Start the service with the distinctive secrets plus overrides; stopped after the test."""
    started: list[Service] = []

    def run(model: ScriptedModel, **overrides: str) -> Service:
        env = {"SECRET": SHARED_SECRET, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": model.base_url,
               "LLM_MODEL": "scripted-model", "DATA_DIR": str(tmp_path / "data"), "DEADLINE_SECONDS": "60",
               "SELF_CHECK": "off", **overrides}
        service = Service(load_config(env))
        started.append(service)
        return service

    yield run
    for service in started:
        service.server.stop()


def github_overrides(github: FakeGitHub) -> dict[str, str]:
    """Settings that publish to the fake GitHub without pauses."""
    return {"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": github.api_url, "GITHUB_WRITE_INTERVAL": "0",
            "GITHUB_POLL_INTERVAL": "0.05"}


def git_objects(github: FakeGitHub) -> Iterator[tuple[str, bytes]]:
    """Every object of every fake repository, raw, with a label."""
    for name, repo in github.repos.items():
        for sha in list(repo.store):
            yield f"{name} object {sha.decode()}", repo.store[sha].as_raw_string()
        yield f"{name} description", (repo.description or "").encode()


def data_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file the service wrote under DATA_DIR (the build store, its -wal and -shm, anything else).

    The build queue's thread may close the build store meanwhile, and SQLite then removes its -wal and -shm
    files (their content is in the build store by then): a file gone before it is read held nothing to check.
    """
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            yield str(path.relative_to(root)), path.read_bytes()
        except FileNotFoundError:
            continue


# --------------------------------------------------------------------------- nothing leaks


def test_two_rounds_on_github_leak_no_secret_anywhere(start, scripted, github, tmp_path, capsys):
    with EvaluationReceiver() as receiver:
        service = start(scripted, **github_overrides(github))
        scripted.enqueue(ROUND1_REPLY, ROUND2_REPLY)
        responses = []
        for round_number in (1, 2):
            body = {**request_body(round_number, receiver.notify_url), "secret": SHARED_SECRET}
            response = service.post(body)
            assert response.status_code == 200, response.text
            responses.append(response)
        payloads = list(receiver.payloads)
    two = responses[1].json()
    assert [c.id.decode() for c in github.history("sales-summary-7341-round-2")][0] == two["commit_sha"]

    served = [requests.get(url, timeout=10) for body in (r.json() for r in responses)
              for url in (body["pages_url"], body["pages_url"] + "app.js", body["pages_url"] + "README.md")]
    assert all(page.status_code == 200 for page in served)
    own_pages = [requests.get(f"{service.url}{path}", timeout=10) for path in ("/", "/metrics", "/ready", "/health")]
    wrong = service.post({**request_body(1, None, nonce="wrong-secret"), "secret": "not-" + SHARED_SECRET[:6]})
    assert wrong.status_code == 403

    for response in [*responses, *served, *own_pages, wrong]:
        assert_no_secret(f"response from {response.url}", response.content)
        assert_no_secret(f"headers from {response.url}", json.dumps(dict(response.headers)))
    for number, recorded in enumerate(scripted.history):
        assert_no_secret(f"prompt {number}", json.dumps(recorded.json) + json.dumps(recorded.headers))
    assert len(scripted.history) == 2
    for label, raw in git_objects(github):
        assert_no_secret(label, raw)
    assert_no_secret("notifications", json.dumps(payloads))
    files = dict(data_files(tmp_path / "data"))
    assert "ledger.sqlite3" in files
    for label, raw in files.items():
        assert_no_secret(f"DATA_DIR/{label}", raw)
    logged = capsys.readouterr()
    lines = [line for line in logged.err.splitlines() if line.startswith("{")]
    assert any(json.loads(line).get("stage") == "publish" for line in lines), "the service's logs were captured"
    assert_no_secret("stderr", logged.err)
    assert_no_secret("stdout", logged.out)


ECHOES = [
    ("configured model key", OPENAI_KEY, "configured secret value"),
    ("configured github token", GITHUB_TOKEN, "configured secret value"),
    ("stray github token", STRAY_TOKEN, "GitHub Token"),
]


@pytest.mark.parametrize("name, leaked, kind", ECHOES, ids=[case[0] for case in ECHOES])
def test_a_reply_echoing_a_key_is_never_committed(start, scripted, github, tmp_path, capsys, name, leaked, kind):
    index = ROUND1_INDEX.replace("<h1>Sales Summary</h1>", f"<h1>Sales Summary</h1>\n  <!-- key: {leaked} -->")
    line = index.splitlines().index(f"  <!-- key: {leaked} -->") + 1
    scripted.enqueue(ROUND1_REPLY.replace(ROUND1_INDEX, index))
    service = start(scripted, **github_overrides(github))
    response = service.post({**request_body(1, None), "secret": SHARED_SECRET})

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["stage"] == "secret-scan"
    assert f"index.html:{line}" in error["message"] and kind in error["message"]
    assert leaked not in response.text and leaked[-12:] not in response.text
    for label, raw in git_objects(github):
        assert leaked.encode() not in raw, f"the key reached {label}"
        assert ROUND1_SCRIPT.encode() not in raw, f"part of the blocked commit reached {label}"
    assert all("/git/blobs" not in call.path and "/git/commits" not in call.path for call in github.calls)
    for label, raw in data_files(tmp_path / "data"):
        assert leaked.encode() not in raw, f"the key reached DATA_DIR/{label}"
    assert leaked not in capsys.readouterr().err


# --------------------------------------------------------------------------- guessing the secret


def post_as(service: Service, client: str | None, secret: str, **fields) -> requests.Response:
    """POST a request from ``client`` (an X-Forwarded-For address, trusted when TRUSTED_PROXY_HOPS is 1)."""
    headers = {"X-Forwarded-For": client} if client else {}
    return service.post(task_request(secret=secret, **fields), headers=headers)


def limited_count(service: Service) -> float:
    """The service's count of requests refused at the auth stage (metrics are per process, so compare)."""
    exposition = requests.get(f"{service.url}/metrics", timeout=10).text
    prefix = 'llm_deploy_builds_total{outcome="rejected",stage="auth"} '
    return sum(float(line[len(prefix):]) for line in exposition.splitlines() if line.startswith(prefix))


def test_wrong_secrets_from_one_address_are_limited_and_others_are_not(start, scripted):
    service = start(scripted, SECRET_FAILURES_LIMIT="3", TRUSTED_PROXY_HOPS="1")
    limited_before = limited_count(service)
    guesser, neighbour, grader = "203.0.113.7", "198.51.100.23", "192.0.2.44"
    assert [post_as(service, guesser, f"guess-{i}").status_code for i in range(3)] == [403, 403, 403]

    limited = post_as(service, guesser, "guess-3")
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 600
    body = limited.json()
    assert body["status"] == "error" and body["error"]["stage"] == "auth"
    assert "too many wrong secrets" in body["error"]["message"] and "3 within 600 s" in body["error"]["message"]
    assert post_as(service, guesser, "guess-again").status_code == 429

    assert post_as(service, neighbour, "neighbour-guess").status_code == 403
    scripted.enqueue(ROUND1_REPLY)
    built = post_as(service, grader, SHARED_SECRET)
    assert built.status_code == 200 and built.json()["status"] == "success"
    assert len(scripted.history) == 1, "only the grader's build reached the model"

    assert limited_count(service) - limited_before == 2
    assert 'status="429"' in requests.get(f"{service.url}/metrics", timeout=10).text


def test_forwarded_headers_are_ignored_without_trusted_hops(start, scripted):
    service = start(scripted, SECRET_FAILURES_LIMIT="2")
    assert post_as(service, "203.0.113.1", "guess-1").status_code == 403
    assert post_as(service, "203.0.113.2", "guess-2").status_code == 403
    assert post_as(service, "203.0.113.3", "guess-3").status_code == 429, "a spoofed header must not reset it"


def test_the_limit_expires_with_its_window(start, scripted):
    service = start(scripted, SECRET_FAILURES_LIMIT="1", SECRET_FAILURES_WINDOW_SECONDS="1")
    assert post_as(service, None, "guess").status_code == 403
    assert post_as(service, None, "guess").status_code == 429
    time.sleep(1.2)
    assert post_as(service, None, "guess").status_code == 403


def test_a_limit_of_zero_turns_the_guard_off(start, scripted):
    service = start(scripted, SECRET_FAILURES_LIMIT="0")
    assert {post_as(service, None, f"guess-{i}").status_code for i in range(12)} == {403}


def test_limit_settings_are_validated():
    config = load_config({"SECRET_FAILURES_LIMIT": "many", "SECRET_FAILURES_WINDOW_SECONDS": "0",
                          "TRUSTED_PROXY_HOPS": "-1"})
    assert (config.secret_failures_limit, config.secret_failures_window_seconds, config.trusted_proxy_hops) \
        == (10, 600, 0)
    assert len(config.problems) == 3
    assert "SECRET_FAILURES_LIMIT='many' is not a number; using 10" in config.problems
