"""End to end through the service with GITHUB_TOKEN set, against the fake GitHub.

The fake is real HTTP on loopback, hashes git objects for real, serves the Pages
site from the built commit and fails any request GitHub's OpenAPI description
does not allow. Checks call counts, the single commit, the parent history,
that the callback comes only once Pages serves this commit, and the page.
"""

from __future__ import annotations

import pytest
import requests

from tests.browser_support import assert_checks_pass, chromium_or_skip
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.github_server import FakeGitHub
from tests.sample_task import ROUND1_CHECKS, ROUND1_REPLY, ROUND2_CHECKS, ROUND2_REPLY, SALES_CSV, request_body


def github_service(start_service, github: FakeGitHub, **overrides: str):
    """The service publishing to the fake GitHub, with short spacing and polling for tests."""
    return start_service(GITHUB_TOKEN=github.token, GITHUB_API_URL=github.api_url, GITHUB_WRITE_INTERVAL="0",
                         GITHUB_POLL_INTERVAL="0.05", **overrides)


@pytest.mark.browser
def test_rounds_one_and_two_on_github(start_service, model, github):
    chromium = chromium_or_skip()
    live_at_notify: list[bool] = []

    def snapshot(payload: dict) -> None:
        served = [c for c in github.site_calls() if c.status == 200]
        live_at_notify.append(bool(served))

    with EvaluationReceiver(on_receive=snapshot) as receiver:
        service = github_service(start_service, github)
        model.enqueue(ROUND1_REPLY)
        one = service.post(request_body(1, receiver.notify_url)).json()
        assert one["status"] == "success" and one["pages_live"] is True and one["notified"] is True
        round_one_calls = github.api_calls()
        assert len(round_one_calls) <= 7, round_one_calls

        name1 = "sales-summary-7341-round-1"
        assert [c.id.decode() for c in github.history(name1)] == [one["commit_sha"]]
        files = github.repo(name1).files(one["commit_sha"])
        # issue 14: .nojekyll
        assert sorted(files) == [".nojekyll", "LICENSE", "README.md", "app.js", "data.csv", "index.html"]
        assert files["data.csv"] == SALES_CSV and b"MIT License" in files["LICENSE"]
        assert one["pages_url"].encode() in files["README.md"]
        assert one["repo_url"].startswith(github.url) and one["pages_url"].startswith(github.url)
        assert live_at_notify == [True], "the callback must come after Pages serves the commit"
        assert_checks_pass(one["pages_url"], ROUND1_CHECKS, chromium)

        model.enqueue(ROUND2_REPLY)
        two = service.post(request_body(2, receiver.notify_url)).json()
        assert two["status"] == "success" and two["notified"] is True
        history = [c.id.decode() for c in github.history("sales-summary-7341-round-2")]
        assert history == [two["commit_sha"], one["commit_sha"]]
        assert_checks_pass(two["pages_url"], ROUND2_CHECKS + ROUND1_CHECKS[:3], chromium)
        assert len(receiver.payloads) == 2

        exposition = requests.get(f"{service.url}/metrics", timeout=10).text
        assert "llm_deploy_github_calls_total{" in exposition
        assert 'llm_deploy_provider_calls_total{' in exposition
        assert 'llm_deploy_notification_attempts_total{' in exposition


def test_rejected_token_is_a_502_naming_the_token(start_service, model, github):
    service = start_service(GITHUB_TOKEN="ghp_wrongtoken123456", GITHUB_API_URL=github.api_url)
    model.enqueue(ROUND1_REPLY)
    response = service.post(request_body(1, None))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["stage"] == "publish" and "token" in error["message"]
    assert "ghp_wrongtoken123456" not in response.text
    assert not model.history, "no model call is spent when the repository cannot be created"


def test_repository_holding_other_work_is_not_overwritten(start_service, model, github):
    github.add_repo("sales-summary-7341-round-1", {"index.html": b"someone else's"}, "Other work\n\nNonce: other")
    service = github_service(start_service, github)
    response = service.post(request_body(1, None))
    assert response.status_code == 409
    assert response.json()["error"]["stage"] == "publish"
    head = github.history("sales-summary-7341-round-1")[0].id.decode()
    assert github.repo("sales-summary-7341-round-1").files(head) == {"index.html": b"someone else's"}


def test_pages_never_finishing_still_notifies_within_the_deadline(start_service, model, github, receiver):
    github.default_build_script = ["building"]
    service = github_service(start_service, github, DEADLINE_SECONDS="6")
    model.enqueue(ROUND1_REPLY)
    response = service.post(request_body(1, receiver.notify_url))
    body = response.json()
    assert response.status_code == 200 and body["pages_live"] is False and body["notified"] is True
    assert any("Pages" in w for w in body["warnings"])
    assert response.elapsed.total_seconds() < 9
