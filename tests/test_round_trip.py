"""`check_config.py --round-trip URL`: a task sent to a real deployment on loopback, graded as graders do.

The deployment is the real service (scripted model, local publisher); the
round trip clones what it published with dulwich over the local publisher's
dumb HTTP, runs the checks in its own Chromium, and receives the notification
on its own receiver. `GET /builds/<nonce>` with a Bearer secret is what it
follows an early answer with.
"""

from __future__ import annotations

import json

import pytest
import requests

import check_config
from tests import graded_task
from tests.browser_support import chromium_or_skip
from tests.check_lanes import CHECK_WRITING, JUDGING
from tests.conftest import MODEL_KEY, SECRET, task_request
from tests.graded_task import files_reply
from tests.sample_task import ROUND1_REPLY
from utils.grading.grade import files_the_brief_names
from utils.grading.tasks import SAMPLE_TASK

GREETING_CHECK = SAMPLE_TASK["checks"][1]["js"]


def sample_app(greeting: str = "Hello") -> str:
    """A model reply publishing the sample task's app, its #greeting saying ``greeting``."""
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Round trip</title></head>'
            f'<body><p id="greeting">{greeting}, grader</p><a href="notes.txt">notes</a></body></html>')
    return files_reply({"index.html": page, "notes.txt": "All ready.\n", "README.md": "# Round trip\n\nA page.\n"})


def round_trip(url: str, tmp_path, capsys, *args: str) -> tuple[int, str]:
    """Run `check_config.py --round-trip url` in-process with this machine's SECRET; its exit code and output."""
    chromium = chromium_or_skip()
    environ = {"SECRET": SECRET, "DATA_DIR": str(tmp_path / "grader-data"), "CHROMIUM_PATH": chromium}
    code = check_config.main(["--round-trip", url, *args], environ=environ)
    return code, capsys.readouterr().out


def test_a_correct_deployment_passes_and_the_links_are_printed(start_service, model, tmp_path, capsys):
    service = start_service()
    model.enqueue(sample_app())
    code, out = round_trip(service.url, tmp_path, capsys)
    built = service.app.extensions["deploy"].services().store.recent(1)[0].result["body"]
    assert code == 0, out
    assert f"page:       {built['pages_url']}" in out and f"repository: {built['repo_url']}" in out
    for line in ("[      pass] repository    LICENSE is MIT", "[      pass] repository    notes.txt is published",
                 "[      pass] notification  notification received", "Every check holds"):
        assert line in out, out
    assert sum("[      pass] js" in line for line in out.splitlines()) == len(SAMPLE_TASK["checks"])
    assert SECRET not in out


def test_an_early_deployment_is_followed_to_its_end(start_service, model, tmp_path, capsys):
    service = start_service(RESPONSE_MODE="early")
    model.enqueue(sample_app())
    code, out = round_trip(service.url, tmp_path, capsys)
    assert code == 0 and "answered early, then success" in out, out


def test_a_deployment_that_publishes_a_failing_app_fails_naming_the_check(start_service, model, tmp_path, capsys):
    service = start_service()
    model.enqueue(sample_app(greeting="Goodbye"))
    code, out = round_trip(service.url, tmp_path, capsys)
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("[      FAIL]")]
    assert len(failed) == 1 and GREETING_CHECK[:60] in failed[0], out
    assert out.splitlines()[-1].startswith("FAILED: 1 of ") and "#greeting" in out.splitlines()[-1]


def test_a_task_file_is_sent_as_graders_send_it(start_service, model, tmp_path, capsys):
    service = start_service()
    task = task_request(nonce="ignored", secret="not-this-one", evaluation_url="https://grader.example/notify")
    (tmp_path / "task.json").write_text(json.dumps(task))
    model.enqueue(ROUND1_REPLY)
    code, out = round_trip(service.url, tmp_path, capsys, "--task", str(tmp_path / "task.json"))
    stored = service.app.extensions["deploy"].services().store.recent(1)[0]
    assert stored.task.startswith("sales-summary-4f2a-") and stored.nonce.startswith("round-trip-")
    assert stored.request["evaluation_url"].startswith("http://127.0.0.1:"), "our receiver, never the grader's"
    assert code == 0 and "data.csv is published" in out, out


@pytest.mark.browser
def test_plain_english_checks_are_graded_through_the_checks_the_deployment_wrote(start_service, model, tmp_path,
                                                                                 capsys):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, SELF_CHECK_REPAIRS="0")
    task = {"email": "student@example.com", "task": graded_task.TASK, "round": 1, "brief": graded_task.BRIEF,
            "checks": graded_task.CHECKS}
    (tmp_path / "task.json").write_text(json.dumps(task))
    model.enqueue(graded_task.REPAIR_REPLY)
    model.lane(CHECK_WRITING).enqueue(graded_task.as_json(graded_task.WRITTEN))
    model.lane(JUDGING).enqueue(graded_task.as_json(graded_task.VERDICT_PASS))
    code, out = round_trip(service.url, tmp_path, capsys, "--task", str(tmp_path / "task.json"))
    lines = out.splitlines()
    for check in (graded_task.STORY_CHECK, graded_task.ABOUT_CHECK):
        assert any(line.startswith("[      pass] written js") and check in line for line in lines), out
    judged = next(line for line in lines if graded_task.PELICAN_CHECK in line)
    assert judged.startswith("[unverified] judged") and "said pass (not counted)" in judged
    assert code == 2 and "No check failed, but 1 of" in lines[-1], out


@pytest.mark.browser
def test_with_a_model_configured_here_checks_only_a_reader_can_judge_are_judged_here(start_service, model, tmp_path,
                                                                                     capsys):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, SELF_CHECK_REPAIRS="0")
    task = {"email": "student@example.com", "task": graded_task.TASK, "round": 1, "brief": graded_task.BRIEF,
            "checks": graded_task.CHECKS}
    (tmp_path / "task.json").write_text(json.dumps(task))
    model.enqueue(graded_task.REPAIR_REPLY)
    model.lane(CHECK_WRITING).enqueue(graded_task.as_json(graded_task.WRITTEN))
    # the deployment's judge says pass; this machine's says fail: the round trip takes its own verdict
    model.lane(JUDGING).enqueue(graded_task.as_json(graded_task.VERDICT_PASS),
                                graded_task.as_json(graded_task.VERDICT_FAIL))
    environ = {"SECRET": SECRET, "DATA_DIR": str(tmp_path / "grader-data"), "CHROMIUM_PATH": chromium,
               "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url, "LLM_MODEL": "scripted-model"}
    code = check_config.main(["--round-trip", service.url, "--task", str(tmp_path / "task.json")], environ=environ)
    out = capsys.readouterr().out
    judged = next(line for line in out.splitlines() if graded_task.PELICAN_CHECK in line and "[" in line)
    assert judged.startswith("[      FAIL] judged here") and "a single circle" in judged, out
    assert code == 1 and MODEL_KEY not in out
    judging = model.lane(JUDGING).history
    assert len(judging) == 2 and graded_task.PELICAN_SVG[:40] in judging[-1].json["messages"][1]["content"], \
        "this machine's judge saw the clone's pelican.svg"


def test_a_wrong_secret_is_reported_not_graded(start_service, model, tmp_path, capsys):
    service = start_service()
    code = check_config.main(["--round-trip", service.url], environ={"SECRET": "not-the-secret",
                                                                      "DATA_DIR": str(tmp_path / "d")})
    out = capsys.readouterr().out
    assert code == 1 and "HTTP 403" in out and "secret does not match" in out and not model.history


@pytest.mark.parametrize("args", [["--round-trip", "localhost:5000"], ["--task", "task.json"],
                                  ["--round-trip", "http://localhost:5000", "--json"]])
def test_round_trip_arguments_that_cannot_work_are_refused(args, capsys):
    with pytest.raises(SystemExit) as exited:
        check_config.main(args, environ={"SECRET": SECRET})
    assert exited.value.code == 2 and "--" in capsys.readouterr().err


# --- GET /builds/<nonce> as JSON -----------------------------------------------------------------------------------


def test_a_build_is_answered_as_json_to_the_bearer_secret(service, model):
    model.enqueue(ROUND1_REPLY)
    built = service.post(task_request(nonce="as-json")).json()
    answer = requests.get(service.url + "/builds/as-json", headers={"Authorization": f"Bearer {SECRET}"}, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    status = answer.json()
    assert (status["status"], status["nonce"], status["round"]) == ("success", "as-json", 1)
    assert status["result"]["pages_url"] == built["pages_url"] and status["result"]["commit_sha"]
    missing = requests.get(service.url + "/builds/nope", headers={"Authorization": f"Bearer {SECRET}"}, timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no build with this nonce"


def test_wrong_bearer_secrets_count_towards_the_limit(start_service):
    service = start_service(SECRET_FAILURES_LIMIT="2")
    statuses = [requests.get(service.url + "/builds/any", headers={"Authorization": "Bearer guess"},
                             timeout=5).status_code for _ in range(3)]
    assert statuses == [403, 403, 429]
    assert requests.get(service.url + "/builds/any", timeout=5).status_code == 403, "no secret: the sign-in page"


@pytest.mark.parametrize(("brief", "named"), [
    (SAMPLE_TASK["brief"], ["notes.txt"]),
    ("Publish data.json and about.md. result.json is NOT committed. Draw it with Chart.js.",
     ["data.json", "about.md"]),
    ("Fetch https://example.com/x/data.csv and save rows.csv; add .github/workflows/ci.yml.",
     ["rows.csv", ".github/workflows/ci.yml"]),
])
def test_files_the_brief_names(brief, named):
    assert files_the_brief_names(brief) == named
