"""The prompts a build really sends, read as the model reads them: no instruction contradicts another or the brief,
and the model is shown what it is asked to change.

Each test drives a graded-style build through the service against the scripted model and asserts on the text
the fake received (generation, check writing, repair, CI repair, judging), never on template strings.
"""

from __future__ import annotations

import json

from tests import test_computed_data as share
from tests import test_published_checks as pages
from tests import test_repository_tasks as analyze
from tests.browser_support import chromium_or_skip
from tests.check_lanes import CHECK_WRITING, JUDGING
from tests.conftest import task_request
from tests.fakes.data_site import DataSite, Document

RUFF_STEP = "      - run: pip install ruff && ruff check .\n"
RUN_STEP = "      - run: mkdir -p site && python execute.py > site/result.json\n"


def flat(text: str) -> str:
    """Text with every run of whitespace made one space (templates wrap lines)."""
    return " ".join(text.split())


def user_text(recorded) -> str:
    return flat(recorded.json["messages"][-1]["content"])


def system_text(recorded) -> str:
    return flat(recorded.json["messages"][0]["content"])


def test_the_analyze_task_prompts_speak_of_files_and_show_the_fix_and_the_log(start_service, model, github):
    """A repository task with two slips: the typo left in (a files check, one repair) and no ruff step (a run
    check, the CI repair)."""
    github.actions.produced = {"result.json": b'{"rows": 2}'}
    service = analyze.github_service(start_service, github, SELF_CHECK="auto", CHROMIUM_PATH=chromium_or_skip(),
                             DEADLINE_SECONDS="180")
    model.lane(CHECK_WRITING).enqueue(json.dumps(analyze.ANALYZE_WRITTEN))
    broken = analyze.ANALYZE_REPLY.replace(analyze.FIXED_PY.decode(), analyze.EXECUTE_PY.decode())
    broken = broken.replace(RUFF_STEP, "")
    fix = ("execute.py\n```python\n<<<<<<< SEARCH\n" + analyze.EXECUTE_LINES[-1] + "\n=======\n"
           + analyze.EXECUTE_LINES[-1].replace("rowz", "rows") + "\n>>>>>>> REPLACE\n```\n")
    ci_fix = (".github/workflows/ci.yml\n```yaml\n<<<<<<< SEARCH\n" + RUN_STEP + "=======\n" + RUFF_STEP + RUN_STEP
              + ">>>>>>> REPLACE\n```\n")
    model.enqueue(broken, fix, ci_fix)
    checks = [analyze.NOT_COMMITTED, analyze.NO_TYPO, analyze.CSV_EQUALS, analyze.CI_LOGS]
    body = service.post(analyze.analyze_request(nonce="review-analyze", checks=checks)).json()
    assert body["status"] == "success", body
    assert len(model.history) == 3, "generation, one repair, one CI repair"
    generation, repair, ci_repair = model.history
    writer = model.lane(CHECK_WRITING).history[0]

    asked = user_text(generation)
    assert "holds on page load" not in asked, "no page is asked for: checks cannot hold 'on page load'"
    assert "Every check above holds for the files exactly as you send them" in asked
    assert "The repository is graded on each of these checks" in asked
    assert "on the repository's files exactly as committed" in asked, "plain-English checks are explained"
    assert "setup (none needed beyond a static file server" not in system_text(generation)
    assert "for scripts: what to install and the command that runs each" in system_text(generation)

    assert "Preview: ``` data.xlsx (" not in asked, "no preview that only repeats the attachment's name and size"
    assert "load it with fetch" not in asked, "no page reads data.xlsx: the brief converts it"
    assert "len(rowz)" in user_text(writer), "the check writer sees the whole file whose typo a check names"

    fixing = user_text(repair)
    assert "the page did not load" not in fixing and "it fails in the browser" not in fixing
    assert "the app has no index.html; its checks read the files, not a page" in fixing
    assert "(the service writes them: attachments kept as attached, files made from derive blocks, and " \
           "LICENSE): `LICENSE`, `data.csv`, `data.xlsx`" in fixing, "data.csv is derived, not 'published as given'"

    ci = ci_repair.json["messages"][-1]["content"]
    assert "The last lines of the run's log (every job), which the checks below read:" in ci
    assert "Run mkdir -p site && python execute.py" in ci, "the log the run check read is shown"
    assert "(no failing job's log)" not in ci and "## The failed run" not in ci
    assert "`LICENSE`, `data.csv`, `data.xlsx`" in flat(ci), "the CI repair keeps derived files as made too"


def test_the_llm_pages_prompts_name_every_file_and_the_judge_is_not_told_it_sees_everything(start_service, model):
    """A page task with files and content rules, an attachment kept as-is and two slips."""
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium_or_skip(), DEADLINE_SECONDS="180")
    model.lane(CHECK_WRITING).enqueue(json.dumps(pages.WRITTEN))
    model.lane(JUDGING).enqueue(pages.verdict(True), pages.verdict(True))
    model.enqueue(pages.FIRST_REPLY, pages.REPAIR_REPLY)
    checks = [pages.LICENSE_CHECK, pages.UID_CHECK, pages.ABOUT_CHECK, pages.COUNT_CHECK, pages.TIDY_CHECK]
    body = service.post(pages.pages_request("review-pages", checks)).json()
    assert body["status"] == "success", body

    asked = user_text(model.history[0])
    assert "every other file the brief asks for at exactly the path the brief gives" in asked, \
        "a page task's 'what to send' must not stop at the page's own files when the brief names about.md"
    assert "Plain-English checks are tested the same way on the page and the published files" in asked
    assert "Every check above holds on page load" in asked

    fixing = model.history[1].json["messages"][-1]["content"]
    assert "- `.nojekyll` (empty; written by the service" in fixing and ".nojekyll\n```" not in fixing, \
        "the repair is not shown an empty block it might edit"

    judged = model.lane(JUDGING).history[0].json["messages"][-1]["content"]
    assert "Other files of the repository (not shown" in judged
    assert "All current files are shown above" not in judged, "the judge is told some files are not shown"
    assert "SEARCH/REPLACE" not in judged, "the judge sends verdicts, never edits"


def test_the_share_volume_prompt_says_the_user_agent_is_set_and_names_data_json(start_service, model):
    """A brief asking for a descriptive User-Agent: the service sent one; the page could not, so it must not try."""
    document = json.dumps(share.DOCUMENT).encode()
    with DataSite({share.CONCEPT_PATH: Document(document, needs_contact=True)}) as site:
        url = site.url + share.CONCEPT_PATH
        service = start_service(FETCH_ALLOW_PRIVATE="true", CHROMIUM_PATH="/nonexistent/chromium")
        model.default_reply = share.share_model(url)
        response = service.post(task_request(brief=share.share_brief(url), attachments=[], checks=[]))
    assert response.status_code == 200, response.text

    asked = user_text(model.history[0])
    assert "with a descriptive User-Agent (so a brief asking for one is already satisfied; a page in a browser " \
           "cannot set that header)" in asked
    assert "every other file the brief asks for at exactly the path the brief gives" in asked
