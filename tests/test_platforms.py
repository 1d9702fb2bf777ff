"""Where students deploy it: the service started with the environment Hugging Face Spaces gives a container.

The real service on loopback (scripted model, local publisher). Spaces runs the
container with SYSTEM=spaces, SPACE_ID, SPACE_HOST and SPACE_AUTHOR_NAME among
others; with nothing else set the service must answer early (the Spaces proxy
cuts long requests), let the Space's page on https://huggingface.co frame its
pages, and keep the dashboard session working inside that frame: Chromium
opens the dashboard inside a page of https://huggingface.co (served by
Playwright's router) and signs in there.

No Docker daemon runs here, so the image is not built: the Dockerfile's build
arguments and install steps are read as text, and every apt package it names is
looked up in Debian's archive with apt-cache (skipped only without apt-cache,
never under CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.conftest import SECRET, task_request
from tests.sample_task import ROUND1_REPLY
from tests.service_process import ROOT
from tests.test_ops import wait_until
from utils.checks.browser import CHROMIUM_ARGS
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


def framed_dashboard(service_url: str, secret: str | None):
    """Open the service inside a page of https://huggingface.co (served by Playwright's router) in Chromium; sign
    in inside the frame when ``secret`` is given. Returns (frame URL, signed in?, the session cookies)."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    space_page = f'<!doctype html><title>Space</title><iframe id="space" src="{service_url}/" width="900"></iframe>'
    with sync_playwright() as playwright:
        # The Space's page is public and the service here is on loopback: Chromium's Local Network Access checks
        # would refuse that frame, which on Spaces (both public) never happens, so they are off for this test.
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=[*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"])
        try:
            page = browser.new_page()
            page.route("https://huggingface.co/**", lambda route: route.fulfill(status=200, body=space_page,
                                                                                 content_type="text/html"))
            page.goto("https://huggingface.co/spaces/student/llm-deploy")
            page.wait_for_load_state("load")
            frame = page.frame_locator("#space")
            signed_in = False
            if secret is not None:
                frame.locator("#f-secret").fill(secret)
                frame.locator("#sign-in-form button").click()
                frame.locator("#sign-out-form").wait_for(timeout=10_000)  # raises when no session opened there
                signed_in = True
            deadline = time.monotonic() + 15  # a refused frame commits an error page a moment after the load event
            while page.frames[1].url in ("", "about:blank") and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            return page.frames[1].url, signed_in, page.context.cookies()
        finally:
            browser.close()


@pytest.mark.browser
def test_on_spaces_the_dashboard_works_inside_huggingface_cos_frame(start_service):
    service = start_service(**SPACES_ENVIRONMENT)
    frame_url, signed_in, cookies = framed_dashboard(service.url, SECRET)
    assert frame_url == service.url + "/" and signed_in
    assert [(c["sameSite"], c["secure"], c.get("partitionKey")) for c in cookies] == \
        [("None", True, "https://huggingface.co")], cookies


@pytest.mark.browser
def test_elsewhere_huggingface_co_cannot_frame_the_dashboard(start_service):
    service = start_service()
    frame_url, _, cookies = framed_dashboard(service.url, None)
    assert frame_url.startswith("chrome-error://") and not cookies

# --- the Docker image (no Docker daemon in CI: its logic is checked as text, its packages against Debian) -------


def dockerfile() -> str:
    """The Dockerfile with its line continuations joined."""
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def build_arguments(text: str) -> dict[str, str]:
    """Every ``ARG NAME=default`` of the Dockerfile."""
    return dict(re.findall(r"^ARG\s+(\w+)=(\S*)", text, re.MULTILINE))


def apt_packages(text: str) -> list[str]:
    """Every package an ``apt-get install`` of the Dockerfile names (options and shell syntax left out)."""
    packages = []
    for command in re.findall(r"apt-get install([^;&|]*)", text):
        packages += [word for word in command.split() if not word.startswith(("-", "$")) and word != "install"]
    return packages


def test_the_default_image_installs_the_browser_and_a_build_argument_makes_it_slim():
    text = dockerfile()
    assert build_arguments(text)["WITH_BROWSER"] == "1", "Spaces builds with the defaults: the browser is in them"
    runs = re.findall(r"^RUN\s+(.*)$", text, re.MULTILINE)
    browser_steps = [run for run in runs if '"$WITH_BROWSER" = "1"' in run]
    assert any("apt-get install" in run and "chromium" in run for run in browser_steps), "Chromium, when 1"
    assert any("--extra browser" in run for run in browser_steps), "Playwright (the browser extra), when 1"
    locked = next(run for run in runs if "uv sync" in run)
    assert "else uv sync --locked --no-dev;" in locked, "WITH_BROWSER=0: the slim image, without the extra"
    assert "playwright" in (ROOT / "pyproject.toml").read_text().split("browser = [", 1)[1].split("]", 1)[0]


def test_every_package_the_image_installs_exists_in_debians_archive():
    base = re.search(r"^FROM\s+python:[\d.]+-slim-(\w+)", dockerfile(), re.MULTILINE)
    assert base, "the base image names its Debian release, so its packages can be checked"
    packages = apt_packages(dockerfile())
    assert "chromium" in packages
    if not shutil.which("apt-cache"):
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("apt-cache is needed to check the Dockerfile's packages (CI must not skip this)")
        pytest.skip("no apt-cache on this machine: the Dockerfile's packages cannot be looked up")
    release = subprocess.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True,
                             text=True).stdout.strip()
    for package in packages:
        shown = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and f"Package: {package}" in shown.stdout, (
            f"{package} is not in this machine's Debian archive ({release}; run apt-get update): {shown.stderr}")
    assert release == base.group(1) or not release, f"packages were looked up in {release}, the image uses " \
        f"{base.group(1)}"
