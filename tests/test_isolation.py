"""Generated apps are isolated from the service's own pages; the dashboard shows builds only after sign-in.

The attack review's generated page read `/` and `/metrics`, framed the
dashboard and hooked its secret field, all from the dashboard's origin. Here a
published app tries the same in real Chromium and must fail, while its own
relative fetches keep working; the dashboard refuses framing, forgets the
typed secret after a submit, and shows builds only to a signed-in session.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.conftest import SECRET, Service, task_request
from tests.sample_task import ROUND1_REPLY
from utils.checks.browser import CHROMIUM_ARGS, run_checks
from utils.config import load_config
from utils.records import Check

PROBING_APP_REPLY = """Here is the app.

index.html
```html
<!doctype html>
<html><head><meta charset="utf-8"><title>Probe</title></head>
<body><h1 id="greeting">Hello</h1><script src="app.js"></script></body></html>
```

app.js
```javascript
window.own = fetch("./data.json").then((r) => r.json()).then((d) => d.ok === true, () => false);
const readable = (url) => fetch(url, { credentials: "include" }).then((r) => r.text()).then(() => true, () => false);
window.readsDashboard = readable("/");
window.readsMetrics = readable("/metrics");
window.framesDashboard = new Promise((resolve) => {
  const frame = document.createElement("iframe");
  frame.src = "/";
  frame.onload = () => {
    try { resolve(!!(frame.contentDocument && frame.contentDocument.getElementById("f-secret"))); }
    catch (e) { resolve(false); }
  };
  document.body.appendChild(frame);
  setTimeout(() => resolve(false), 4000);
});
```

data.json
```json
{"ok": true}
```

README.md
```markdown
# Probe

A page. MIT license.
```
"""


def published_app(service: Service, model) -> str:
    """Publish the probing app with the local publisher; its pages URL."""
    model.enqueue(PROBING_APP_REPLY)
    response = service.post(task_request(nonce="probe", checks=[], attachments=[]))
    assert response.status_code == 200, response.text
    return response.json()["pages_url"]


def test_a_generated_app_cannot_read_or_frame_the_service_but_loads_its_own_files(service, model):
    chromium = chromium_or_skip()
    pages_url = published_app(service, model)
    checks = [Check(text="own files", js="window.own"),
              Check(text="no dashboard", js="window.readsDashboard.then((ok) => !ok)"),
              Check(text="no metrics", js="window.readsMetrics.then((ok) => !ok)"),
              Check(text="no framing", js="window.framesDashboard.then((ok) => !ok)")]
    report = run_checks(pages_url, checks, chromium_path=chromium, check_timeout=10)
    assert [(r.check, r.passed) for r in report.results] == [(c.text, True) for c in checks], report.results


def test_isolation_headers(service, model):
    pages_url = published_app(service, model)
    app_file = requests.get(pages_url + "data.json", timeout=10)
    assert "sandbox" in app_file.headers["Content-Security-Policy"]
    assert "allow-same-origin" not in app_file.headers["Content-Security-Policy"]
    assert app_file.headers["Access-Control-Allow-Origin"] == "*"
    for path in ("/", "/metrics", "/health"):
        own = requests.get(service.url + path, timeout=10)
        assert own.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in own.headers["Content-Security-Policy"], path
        assert "Access-Control-Allow-Origin" not in own.headers, path


def test_the_dashboard_forgets_the_typed_secret_after_a_submit(service, model):
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    model.enqueue(ROUND1_REPLY)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.goto(service.url + "/")
            page.fill("#f-secret", SECRET)
            page.fill("#f-email", "student@example.com")
            page.fill("#f-task", "forget-secret")
            page.fill("#f-brief", "A page that says Hello in #greeting.")
            page.click("#submit-form button[type=submit]")
            page.wait_for_selector("#submit-status.ok", timeout=60_000)
            assert page.input_value("#f-secret") == ""
            assert SECRET not in page.content()
            assert page.wait_for_selector('#builds tr.build[data-task="forget-secret"]', timeout=10_000)
        finally:
            browser.close()


def test_anonymous_visitors_see_status_and_the_form_only(service, model):
    model.enqueue(ROUND1_REPLY)
    built = service.post(task_request(nonce="private-nonce-7")).json()
    anonymous = requests.get(service.url + "/", timeout=10).text
    assert "Ready to build" in anonymous and 'id="submit-form"' in anonymous
    for private in ("private-nonce-7", "sales-summary-4f2a", built["pages_url"], "scripted-model"):
        assert private not in anonymous, private

    visitor = requests.Session()
    wrong = visitor.post(service.url + "/sign-in", json={"secret": "wrong"}, timeout=10)
    assert wrong.status_code == 403 and wrong.json()["error"]["field"] == "secret"
    assert "private-nonce-7" not in visitor.get(service.url + "/", timeout=10).text

    signed = visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=10)
    assert signed.status_code == 200
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and SECRET not in cookie
    assert "private-nonce-7" in visitor.get(service.url + "/", timeout=10).text

    forged = requests.Session()
    name, value = cookie.split(";")[0].split("=", 1)
    forged.cookies.set(name, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert "private-nonce-7" not in forged.get(service.url + "/", timeout=10).text, "a tampered cookie is refused"

    assert visitor.post(service.url + "/sign-out", json={}, timeout=10).status_code == 200
    assert "private-nonce-7" not in visitor.get(service.url + "/", timeout=10).text


def test_a_form_sign_in_works_without_javascript(service):
    visitor = requests.Session()
    response = visitor.post(service.url + "/sign-in", data={"secret": SECRET}, timeout=10)
    assert response.status_code == 200 and "Sign out" in response.text


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_sign_in_reads_json_whatever_the_content_type(service, content_type):
    # like /api-endpoint: `curl -d '{"secret": ...}'` sends application/x-www-form-urlencoded
    headers = {"Content-Type": content_type} if content_type else {}
    visitor = requests.Session()
    signed = visitor.post(service.url + "/sign-in", data=json.dumps({"secret": SECRET}), headers=headers, timeout=10)
    assert signed.status_code == 200 and signed.json() == {"status": "signed in"}, signed.text
    assert 'id="sign-out-form"' in visitor.get(service.url + "/", timeout=10).text
    wrong = requests.post(service.url + "/sign-in", data=json.dumps({"secret": "nope"}), headers=headers, timeout=10)
    assert wrong.status_code == 403 and wrong.json()["error"]["field"] == "secret"


def test_sign_in_refuses_a_large_body_before_parsing_it(service):
    # /api-endpoint bounds JSON bombs; /sign-in once parsed 25 MB of {} (about 700 MB of objects) unauthenticated
    bomb = b'{"secret": "wrong", "pad": [' + b",".join([b"{}"] * 500_000) + b"]}"
    as_json = requests.post(service.url + "/sign-in", data=bomb, timeout=10,
                            headers={"Content-Type": "application/json"})
    as_form = requests.post(service.url + "/sign-in", data=b"a=&" * 500_000 + b"secret=wrong", timeout=10,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    for response in (as_json, as_form):
        assert response.status_code == 413, response.text
        assert "larger than the limit of 8192 bytes" in response.json()["error"]["message"]


def test_links_never_come_from_the_host_header(service, model):
    model.enqueue(ROUND1_REPLY)
    response = service.post(task_request(nonce="host-header"), headers={"Host": "attacker.example"})
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["pages_url"].startswith(service.url + "/pages/"), body["pages_url"]
    assert "attacker.example" not in body["repo_url"]


def test_on_spaces_links_default_to_the_space_address():
    config = load_config({"SYSTEM": "spaces", "SPACE_ID": "someone/app", "SPACE_HOST": "someone-app.hf.space"},
                         dotenv=False)
    assert config.public_url == "https://someone-app.hf.space"
    explicit = load_config({"SYSTEM": "spaces", "SPACE_HOST": "someone-app.hf.space",
                            "PUBLIC_URL": "https://deploy.example.org"}, dotenv=False)
    assert explicit.public_url == "https://deploy.example.org"
