"""Where students deploy it: the service started with the environment Hugging Face Spaces gives a container.

The real service on loopback (scripted model, local publisher). Spaces runs the
container with SYSTEM=spaces, SPACE_ID, SPACE_HOST and SPACE_AUTHOR_NAME among
others; with nothing else set the service must answer early (the Spaces proxy
cuts long requests), let the Space's page on https://huggingface.co frame its
pages, and keep the dashboard session working inside that frame.
"""

from __future__ import annotations

import requests

from tests.conftest import SECRET, task_request
from tests.sample_task import ROUND1_REPLY
from tests.test_ops import wait_until
from utils.config import load_config

SPACES_ENVIRONMENT = {"SYSTEM": "spaces", "SPACE_ID": "student/llm-deploy", "SPACE_HOST": "student-llm-deploy.hf.space",
                      "SPACE_AUTHOR_NAME": "student", "SPACE_REPO_NAME": "llm-deploy", "SPACE_TITLE": "LLM Deploy"}


def test_on_spaces_tasks_are_answered_early_with_no_setting(start_service, model, receiver):
    service = start_service(**SPACES_ENVIRONMENT)
    model.enqueue(ROUND1_REPLY)
    response = service.post(task_request(nonce="spaces-early", evaluation_url=receiver.notify_url))
    assert response.status_code == 200 and response.json()["status"] == "accepted", response.text
    assert wait_until(lambda: receiver.payloads, seconds=60), "the build went on in the background"
    payload = receiver.payloads[0]
    assert payload["nonce"] == "spaces-early" and payload["pages_url"].startswith("https://student-llm-deploy.hf.space")


def test_an_explicit_response_mode_wins_on_spaces_and_elsewhere_sync_is_the_default():
    assert load_config({**SPACES_ENVIRONMENT}, dotenv=False).response_mode == "early"
    assert load_config({**SPACES_ENVIRONMENT, "RESPONSE_MODE": "sync"}, dotenv=False).response_mode == "sync"
    assert load_config({}, dotenv=False).response_mode == "sync"
    assert load_config({"VERCEL": "1"}, dotenv=False).response_mode == "sync"
    assert load_config({"SYSTEM": "spaces"}, dotenv=False).response_mode == "sync", "SYSTEM alone is not a Space"


def test_on_spaces_huggingface_may_frame_the_pages_and_the_session_works_in_the_frame(start_service):
    service = start_service(**SPACES_ENVIRONMENT)
    for path in ("/", "/health", "/ready"):
        headers = requests.get(service.url + path, timeout=10).headers
        assert headers["Content-Security-Policy"] == "frame-ancestors https://huggingface.co", path
        assert "X-Frame-Options" not in headers, f"{path}: X-Frame-Options cannot allow one origin and would win"
    signed = requests.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=10)
    cookie = signed.headers["Set-Cookie"]
    assert signed.status_code == 200
    assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie and "HttpOnly" in cookie


def test_elsewhere_nothing_may_frame_the_pages(start_service):
    service = start_service(SPACE_ID="student/llm-deploy")  # a variable alone is not a Space
    headers = requests.get(service.url + "/", timeout=10).headers
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'" and headers["X-Frame-Options"] == "DENY"
    cookie = requests.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=10).headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "Partitioned" not in cookie
