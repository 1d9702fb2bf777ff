"""End to end on the embedded local publisher: request in, live app out, callback sent.

Posts the sample graded task (rounds 1 and 2) to the real service, clones the
repository with git, fetches the page and runs the task's JavaScript checks in
headless Chromium, as a grader would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.browser_support import assert_checks_pass, chromium_or_skip
from tests.conftest import MODEL_KEY, SECRET
from tests.sample_task import (
    ROUND1_CHECKS,
    ROUND1_REPLY,
    ROUND1_SCRIPT,
    ROUND2_CHECKS,
    ROUND2_REPLY,
    SALES_CSV,
    request_body,
)

NOTIFICATION_KEYS = {"email", "task", "round", "nonce", "repo_url", "commit_sha", "pages_url"}


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the real git binary and return its output."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def clone(repo_url: str, into: Path) -> Path:
    """git clone ``repo_url`` and return the work tree."""
    git("clone", "--quiet", repo_url, str(into))
    return into


def prompt_text(recorded) -> str:
    """Every message's content of one recorded model request, joined."""
    return "\n".join(str(m.get("content")) for m in recorded.json["messages"])


@pytest.mark.browser
def test_round_one_and_two_end_to_end(service, model, receiver, tmp_path):
    chromium = chromium_or_skip()
    model.enqueue(ROUND1_REPLY)
    first = service.post(request_body(1, receiver.notify_url))
    assert first.status_code == 200, first.text
    one = first.json()
    assert one["status"] == "success" and one["notified"] is True and one["pages_live"] is True
    assert {"generation", "publish", "pages", "notify"} <= set(one["timings"])
    assert one["pages_url"].endswith("/")

    # The callback carries exactly the seven keys, matching the response.
    assert len(receiver.payloads) == 1
    payload = receiver.payloads[0]
    assert set(payload) == NOTIFICATION_KEYS
    assert {k: payload[k] for k in ("repo_url", "commit_sha", "pages_url")} == \
        {k: one[k] for k in ("repo_url", "commit_sha", "pages_url")}

    # The repository clones with git and holds the app, the attachment, README and LICENSE.
    work = clone(one["repo_url"], tmp_path / "round1")
    assert sorted(p.name for p in work.iterdir() if p.name != ".git") == \
        [".nojekyll", "LICENSE", "README.md", "app.js", "data.csv", "index.html"]  # issue 14: .nojekyll
    assert (work / "data.csv").read_bytes() == SALES_CSV
    assert "MIT License" in (work / "LICENSE").read_text()
    readme = (work / "README.md").read_text()
    assert one["pages_url"] in readme and "## License" in readme
    assert git("rev-parse", "HEAD", cwd=work).strip() == one["commit_sha"]

    # The page is live and passes the graders' checks in Chromium.
    page = requests.get(one["pages_url"], timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert_checks_pass(one["pages_url"], ROUND1_CHECKS, chromium)

    # The prompt carried every check verbatim and the attachment path, never a secret.
    prompt = prompt_text(model.history[0])
    for check in ROUND1_CHECKS:
        assert (check["js"] if isinstance(check, dict) else check) in prompt
    assert "data.csv" in prompt and "product,region,sales" in prompt
    assert SECRET not in prompt and MODEL_KEY not in prompt

    # Round 2 revises round 1: previous files in the prompt, parent commit in the history.
    model.enqueue(ROUND2_REPLY)
    second = service.post(request_body(2, receiver.notify_url))
    assert second.status_code == 200, second.text
    two = second.json()
    assert two["repo_url"] != one["repo_url"] and two["notified"] is True
    revision_prompt = prompt_text(model.history[1])
    assert ROUND1_SCRIPT.splitlines()[1] in revision_prompt
    assert ROUND1_CHECKS[0]["js"] in revision_prompt and ROUND2_CHECKS[0]["js"] in revision_prompt

    work2 = clone(two["repo_url"], tmp_path / "round2")
    assert git("log", "--format=%H", cwd=work2).split() == [two["commit_sha"], one["commit_sha"]]
    changed = set(git("diff", "--name-only", "HEAD~1", cwd=work2).split())
    assert changed == {"index.html", "app.js", "README.md"}
    assert (work2 / "data.csv").read_bytes() == SALES_CSV
    assert_checks_pass(two["pages_url"], ROUND2_CHECKS + ROUND1_CHECKS[:3], chromium)
    assert len(receiver.payloads) == 2 and receiver.payloads[1]["round"] == 2


def test_round_two_without_round_one_builds_from_scratch(service, model, receiver):
    model.enqueue(ROUND1_REPLY)
    response = service.post(request_body(2, receiver.notify_url, nonce="orphan-round-2"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert any("was not found" in w for w in body["warnings"])
    assert requests.get(body["pages_url"] + "data.csv", timeout=10).status_code == 404
    assert requests.get(body["pages_url"], timeout=10).status_code == 200
