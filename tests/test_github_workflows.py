"""Issue 14 end to end against the fake GitHub: workflows and Pages from Actions, ROUND_REPO=same, .nojekyll,
the notification reserve, and the local publisher's side of the same.

The fake runs no workflow: its runs follow scripts (success, failure, stuck) and a successful Pages-deploying
run publishes the commit plus what the test says the run produced (``result.json``, generated in CI).
"""

from __future__ import annotations

import json
import subprocess
import time

import requests

from tests.conftest import SECRET
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.github_server import FakeGitHub
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body

CI_BRIEF = ("Add .github/workflows/ci.yml that runs ruff and executes script.py in CI, and publishes the "
            "generated result.json with GitHub Pages. Do not commit result.json; it must be generated in CI.")
WORKFLOW = """name: ci
on:
  push:
    branches: [main]
  workflow_dispatch:
permissions:
  contents: read
  pages: write
  id-token: write
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: '3.12'}
      - run: pip install ruff && ruff check .
      - run: mkdir -p site && python script.py > site/result.json && cp index.html site/
      - uses: actions/configure-pages@v5
      - uses: actions/upload-pages-artifact@v3
        with: {path: site}
  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment: {name: github-pages, url: '${{ steps.deployment.outputs.page_url }}'}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
"""
SCRIPT = 'import json\nprint(json.dumps({"answer": 42}))\n'
CI_REPLY = f"""index.html
```html
<!doctype html><title>CI result</title><p id="r">see result.json</p>
```

script.py
```python
{SCRIPT}```

.github/workflows/ci.yml
```yaml
{WORKFLOW}```

README.md
````markdown
# CI result

Runs ruff and script.py in GitHub Actions and publishes result.json with Pages.
````
"""
REPAIR_REPLY = """script.py
```python
<<<<<<< SEARCH
import json
=======
import json  # used below
>>>>>>> REPLACE
```
"""
UNDERSCORE_REPLY = """index.html
```html
<!doctype html><title>Underscore</title><script src="./_app/main.js"></script>
```

_app/main.js
```javascript
document.title = 'served';
```
"""


def ci_request(nonce: str = "ci-1", evaluation_url: str | None = None, round_number: int = 1) -> dict:
    body = {"email": "s@example.com", "secret": SECRET, "task": "ci-task-14", "round": round_number,
            "nonce": nonce, "brief": CI_BRIEF, "checks": ["result.json has answer 42"]}
    if evaluation_url:
        body["evaluation_url"] = evaluation_url
    return body


def github_service(start_service, github: FakeGitHub, **overrides: str):
    return start_service(GITHUB_TOKEN=github.token, GITHUB_API_URL=github.api_url, GITHUB_WRITE_INTERVAL="0",
                         GITHUB_POLL_INTERVAL="0.05", **overrides)


def test_ci_task_publishes_the_workflow_and_pages_from_actions(start_service, model, github):
    github.actions.produced = {"result.json": b'{"answer": 42}'}
    served_at_notify: list[int] = []

    def snapshot(payload: dict) -> None:
        served_at_notify.append(requests.get(payload["pages_url"] + "result.json", timeout=5).status_code)

    with EvaluationReceiver(on_receive=snapshot) as receiver:
        service = github_service(start_service, github)
        model.enqueue(CI_REPLY)
        body = service.post(ci_request(evaluation_url=receiver.notify_url)).json()

    assert body["status"] == "success" and body["pages_live"] is True and body["notified"] is True, body
    run = body["workflow_run"]
    assert run["conclusion"] == "success" and run["status"] == "completed" and run["repaired"] is False
    assert run["html_url"].startswith(github.url) and "/actions/runs/" in run["html_url"]
    repo = github.repo("ci-task-14-round-1")
    files = repo.files(body["commit_sha"])
    assert files[".github/workflows/ci.yml"] == WORKFLOW.encode()
    assert "result.json" not in files and ".nojekyll" not in files
    assert repo.pages["build_type"] == "workflow"
    assert served_at_notify == [200], "the notification must come after the run deployed result.json"
    assert json.loads(requests.get(body["pages_url"] + "result.json", timeout=5).content) == {"answer": 42}
    prompt = model.history[0].json["messages"][-1]["content"]
    assert "actions/deploy-pages@v4" in prompt and "id-token: write" in prompt
    assert "\n\n## The GitHub Actions workflow" in prompt, "its own section, apart from the checklist before it"
    assert not github.violations


def test_failed_run_gets_one_repair_commit(start_service, model, github):
    github.actions.queue_runs(["queued", "in_progress", "failure"])  # then the default: success
    service = github_service(start_service, github)
    model.enqueue(CI_REPLY, REPAIR_REPLY)
    body = service.post(ci_request()).json()

    assert body["status"] == "success" and body["pages_live"] is True
    assert body["workflow_run"]["conclusion"] == "success" and body["workflow_run"]["repaired"] is True
    history = [c.id.decode() for c in github.history("ci-task-14-round-1")]
    assert history[0] == body["commit_sha"] and len(history) == 2, "the repair is one commit on the failed one"
    repair_prompt = model.history[1].json["messages"][-1]["content"]
    assert "F401" in repair_prompt and "Process completed with exit code 1" in repair_prompt
    assert github.token not in repair_prompt
    assert b"# used below" in github.repo("ci-task-14-round-1").files(body["commit_sha"])["script.py"]
    assert not github.violations


def test_failed_run_without_time_to_repair_is_reported(start_service, model, github):
    github.actions.default_run_script = ["queued", "failure"]
    service = github_service(start_service, github, DEADLINE_SECONDS="20")  # less than a repair needs
    model.enqueue(CI_REPLY)
    body = service.post(ci_request()).json()

    assert body["status"] == "success" and body["pages_live"] is False
    assert body["workflow_run"]["conclusion"] == "failure" and body["workflow_run"]["failed_job"].startswith("build")
    assert any("workflow run failed" in w for w in body["warnings"])
    assert len(model.history) == 1


def test_stuck_run_still_notifies_in_time_and_says_so(start_service, model, github):
    github.actions.default_run_script = ["queued", "in_progress"]
    arrivals: list[float] = []
    with EvaluationReceiver(on_receive=lambda _payload: arrivals.append(time.monotonic())) as receiver:
        service = github_service(start_service, github, DEADLINE_SECONDS="8")
        model.enqueue(CI_REPLY)
        started = time.monotonic()
        body = service.post(ci_request(evaluation_url=receiver.notify_url)).json()

    assert body["notified"] is True and body["pages_live"] is False
    assert body["workflow_run"]["status"] == "in_progress"
    assert any("had not finished" in w for w in body["warnings"])
    assert any("not live yet" in w for w in body["warnings"])
    assert arrivals and arrivals[0] - started < 8 - 2, "the notification must start a reserve before the deadline"


def test_token_without_the_workflow_scope_fails_before_anything_is_created(start_service, model, github):
    github.oauth_scopes = "repo, read:org"
    service = github_service(start_service, github)
    model.enqueue(CI_REPLY)
    response = service.post(ci_request())

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["stage"] == "publish" and "workflow" in error["message"]
    assert "Workflows: Read and write" in error["message"]
    assert github.repos == {} and not model.history
    assert github.api_calls() == ["GET /user"]


def test_round_two_in_the_same_repository(start_service, model, github):
    service = github_service(start_service, github, ROUND_REPO="same")
    model.enqueue(ROUND1_REPLY)
    one = service.post(request_body(1, None)).json()
    before = len(github.api_calls())
    model.enqueue(ROUND2_REPLY)
    two = service.post(request_body(2, None)).json()

    assert two["status"] == "success" and two["pages_live"] is True
    assert two["repo_url"] == one["repo_url"] and two["pages_url"] == one["pages_url"]
    history = [c.id.decode() for c in github.history("sales-summary-7341-round-1")]
    assert history == [two["commit_sha"], one["commit_sha"]]
    assert "octo-user/sales-summary-7341-round-2" not in github.repos
    round_two_calls = github.api_calls()[before:]
    assert len(round_two_calls) <= 5, round_two_calls
    assert b"product-sales" in requests.get(two["pages_url"], timeout=5).content


def test_round_two_in_a_new_repository_reads_round_one_from_the_cache(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(ROUND1_REPLY)
    one = service.post(request_body(1, None)).json()
    before = len(github.api_calls())
    model.enqueue(ROUND2_REPLY)
    two = service.post(request_body(2, None)).json()

    round_two_calls = github.api_calls()[before:]
    assert not [c for c in round_two_calls if "blobs/{file_sha}" in c or "trees/{tree_sha}" in c], round_two_calls
    assert len(round_two_calls) <= 8, round_two_calls
    history = [c.id.decode() for c in github.history("sales-summary-7341-round-2")]
    assert history == [two["commit_sha"], one["commit_sha"]]


def test_round_two_reads_github_when_round_one_changed_behind_the_service(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(ROUND1_REPLY)
    one = service.post(request_body(1, None)).json()
    repo = github.repo("sales-summary-7341-round-1")
    files = {**repo.files(one["commit_sha"]), "extra.txt": b"pushed by a person"}
    tree = github._tree_from_files(repo, files)
    edit = github._make_commit(repo, tree, [one["commit_sha"]], "manual edit", None, None)
    repo.refs["refs/heads/main"] = edit.encode()
    model.enqueue(ROUND2_REPLY)
    two = service.post(request_body(2, None)).json()

    assert two["status"] == "success"
    assert github.repo("sales-summary-7341-round-2").files(two["commit_sha"])["extra.txt"] == b"pushed by a person"


def test_file_under_an_underscore_folder_is_served_live(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(UNDERSCORE_REPLY)
    body = service.post({**request_body(1, None), "brief": "A page with its script in _app/.", "checks": []}).json()

    assert body["status"] == "success" and body["pages_live"] is True
    assert requests.get(body["pages_url"] + "_app/main.js", timeout=5).status_code == 200


def test_fake_pages_hides_underscore_paths_without_nojekyll(github):
    github.add_repo("plain", {"index.html": b"x", "_app/main.js": b"y"}, "m")
    repo = github.repo("plain")
    repo.pages, repo.live_commit = {"source": {"branch": "main", "path": "/"}}, repo.head("main")
    assert requests.get(f"{github.url}/pages/{repo.full_name}/_app/main.js", timeout=5).status_code == 404


def test_workflow_not_asked_for_is_not_published(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(CI_REPLY)
    body = service.post({**ci_request(), "brief": "A page that shows a result."}).json()

    files = github.repo("ci-task-14-round-1").files(body["commit_sha"])
    assert not [p for p in files if p.startswith(".github/")] and ".nojekyll" in files
    assert any("asks for no workflow" in w for w in body["warnings"]) and body["workflow_run"] is None


def test_notification_reserve_with_pages_stuck(start_service, model, github):
    github.default_build_script = ["building"]
    arrivals: list[float] = []
    with EvaluationReceiver(on_receive=lambda _payload: arrivals.append(time.monotonic())) as receiver:
        service = github_service(start_service, github, DEADLINE_SECONDS="10")
        model.enqueue(ROUND1_REPLY)
        started = time.monotonic()
        body = service.post(request_body(1, receiver.notify_url)).json()

    assert body["notified"] is True and body["pages_live"] is False
    assert any("not live yet" in w for w in body["warnings"])
    assert arrivals[0] - started < 10 - 2, "the first attempt starts the reserve (3 s here) before the deadline"


def test_local_publisher_keeps_workflows_and_says_it_cannot_run_them(start_service, model, tmp_path):
    service = start_service(ROUND_REPO="same")
    model.enqueue(CI_REPLY)
    one = service.post(ci_request()).json()
    assert one["status"] == "success"
    assert any("cannot run" in w for w in one["warnings"])
    work = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", one["repo_url"], str(work)], check=True, timeout=60)
    assert (work / ".github/workflows/ci.yml").read_text() == WORKFLOW

    model.enqueue(REPAIR_REPLY)
    two = service.post(ci_request(nonce="ci-2", round_number=2)).json()
    assert two["status"] == "success" and two["repo_url"] == one["repo_url"]
    subprocess.run(["git", "-C", str(work), "pull", "-q"], check=True, timeout=60)
    log = subprocess.run(["git", "-C", str(work), "log", "--format=%H"], check=True, capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert log == [two["commit_sha"], one["commit_sha"]]


def test_fine_grained_token_refused_on_push_names_the_permission(start_service, model, github):
    github.oauth_scopes, github.workflow_pushes_allowed = None, False  # scopes cannot be listed in advance
    service = github_service(start_service, github)
    model.enqueue(CI_REPLY)
    response = service.post(ci_request())

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["stage"] == "publish" and "Workflows: Read and write" in error["message"]
    assert github.token not in response.text


def test_repair_holding_a_secret_is_not_committed(start_service, model, github, receiver):
    from tests.conftest import MODEL_KEY

    github.actions.queue_runs(["failure"])
    service = github_service(start_service, github)
    leaking = f'script.py\n```python\nKEY = "{MODEL_KEY}"\nprint(KEY)\n```\n'
    model.enqueue(CI_REPLY, leaking)
    body = service.post(ci_request(evaluation_url=receiver.notify_url)).json()

    assert body["status"] == "success" and body["notified"] is True
    assert body["workflow_run"]["conclusion"] == "failure" and body["workflow_run"]["repaired"] is False
    assert len(github.history("ci-task-14-round-1")) == 1
    assert MODEL_KEY.encode() not in github.repo("ci-task-14-round-1").files(body["commit_sha"])["script.py"]


# --- issue 23, finding 7: a workflow only on an explicit request, and never wider than the brief asks --------------

SCHEDULE = "  schedule:\n    - cron: '0 * * * *'\n"
WIDE_WORKFLOW = WORKFLOW.replace("  workflow_dispatch:\n", "  workflow_dispatch:\n" + SCHEDULE)
WIDE_WORKFLOW = WIDE_WORKFLOW.replace("  contents: read\n", "  contents: write\n")
WIDE_REPLY = CI_REPLY.replace(WORKFLOW, WIDE_WORKFLOW)


def test_a_workflow_wider_than_the_brief_asks_is_asked_again_then_dropped(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(WIDE_REPLY, WIDE_REPLY)
    body = service.post(ci_request()).json()

    assert body["status"] == "success", body
    files = github.repo("ci-task-14-round-1").files(body["commit_sha"])
    assert not [path for path in files if path.startswith(".github/")]
    assert any("'.github/workflows/ci.yml' is triggered by schedule" in w and "not published" in w
               for w in body["warnings"]), body["warnings"]
    reask = model.history[1].json["messages"][-1]["content"]
    assert "is triggered by schedule, which the brief does not ask for" in reask


def test_a_workflow_narrowed_after_the_reask_is_published(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(WIDE_REPLY.replace(SCHEDULE, ""), CI_REPLY)
    body = service.post(ci_request()).json()

    reask = model.history[1].json["messages"][-1]["content"]
    assert "asks for write permission on contents, which the brief does not ask for" in reask
    assert github.repo("ci-task-14-round-1").files(body["commit_sha"])[".github/workflows/ci.yml"] == WORKFLOW.encode()


def test_a_brief_refusing_workflows_gets_none(start_service, model, github):
    service = github_service(start_service, github)
    model.enqueue(CI_REPLY)
    brief = "A static page showing the result of script.py. No CI, no workflows. Do not use GitHub Actions."
    body = service.post({**ci_request(), "brief": brief}).json()

    files = github.repo("ci-task-14-round-1").files(body["commit_sha"])
    assert not [path for path in files if path.startswith(".github/")]
    assert any("asks for no workflow" in w for w in body["warnings"])
    assert "## The GitHub Actions workflow" not in model.history[0].json["messages"][-1]["content"]
