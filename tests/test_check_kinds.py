"""Checks as graders write them: bare JavaScript, plain English made executable, judged checks, all self-checked.

The scripted model answers generation and repairs from its main script and
the check-writing and judging calls from their own lanes (``tests/check_lanes.py``),
in the JSON formats of DESIGN.md.
"""

from __future__ import annotations

import pytest
import requests

from tests.browser_support import assert_checks_pass, chromium_or_skip
from tests.check_lanes import CHECK_WRITING, JUDGING
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.faults import Delay
from tests.graded_task import (
    ABOUT_CHECK,
    BARE_JS,
    BRIEF,
    CHECKS,
    FIRST_REPLY,
    PELICAN_CHECK,
    PELICAN_SVG,
    REPAIR_REPLY,
    SHORT_STORY,
    STORY_CHECK,
    TASK,
    TITLE,
    VERDICT_FAIL,
    VERDICT_PASS,
    WRITTEN,
    as_json,
    files_reply,
    index_html,
)
from utils.checks.judge import JudgeItem, parse_verdicts
from utils.checks.plan import publish_reserve
from utils.checks.writer import CheckWriting, parse_written
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.intake.check_kinds import is_javascript
from utils.intake.validation import parse_checks
from utils.model.llm import ModelClient
from utils.records import Attachments, Check


def body(nonce: str, checks: list = CHECKS) -> dict:
    """The graded task's request."""
    return {"email": "student@example.com", "secret": SECRET, "task": TASK, "round": 1, "nonce": nonce,
            "brief": BRIEF, "checks": checks}


def rows(report: dict) -> dict[str, dict]:
    """The report's per-check rows by check text."""
    return {row["check"]: row for row in report["checks"]}


# ---------------------------------------------------------------- recognising JavaScript

@pytest.mark.parametrize("text", [
    'document.title === "Sales Summary 601"',
    "!!document.querySelector(\"script[src*='marked']\")",
    "document.querySelector('#total')?.textContent.includes('$1,234')",
    "(async () => (await fetch('./data.json')).ok)()",
    "window.total > 0;",
    "Number(document.querySelector('#count').textContent) === 3",
])
def test_bare_javascript_is_recognised(text):
    assert is_javascript(text)
    assert parse_checks([text])[0].js == text.strip()


@pytest.mark.parametrize("text", [
    "about.md contains exactly three words", "pelican.svg is rated by an LLM", "Loaded", "42",
    "Hello, world", "The page explains where the numbers come from.", "restaurant.json data is consistent",
    "Page shows the total (in USD)", "a); alert(1", "Mobile-friendly", "Self-contained", "Responsive/mobile",
])
def test_prose_is_not_javascript(text):
    assert not is_javascript(text)
    assert parse_checks([text])[0].js is None


# ---------------------------------------------------------------- reply formats

def test_written_reply_keeps_usable_entries_and_names_the_rest():
    reply = {"checks": [{"check": STORY_CHECK.upper(), "kind": "js", "js": "1 +"},
                        {"check": ABOUT_CHECK, "kind": "js", "js": "true"},
                        {"check": "something never asked", "kind": "judge", "rubric": "x"}]}
    written, problems = parse_written(reply, [STORY_CHECK, ABOUT_CHECK, PELICAN_CHECK])
    assert [w.check for w in written] == [ABOUT_CHECK]
    assert any("not an expression" in p for p in problems)
    assert any("names no given check" in p for p in problems)
    assert any(PELICAN_CHECK in p for p in problems)
    with pytest.raises(ValueError):
        parse_written({"checks": "nope"}, [STORY_CHECK])


def test_verdicts_must_name_a_check_with_a_boolean():
    items = [JudgeItem(PELICAN_CHECK, "a pelican")]
    assert parse_verdicts(VERDICT_FAIL, items)[PELICAN_CHECK][0] is False
    with pytest.raises(ValueError):
        parse_verdicts({"verdicts": [{"check": PELICAN_CHECK, "pass": "yes"}]}, items)


# ---------------------------------------------------------------- the whole build

@pytest.mark.browser
def test_flawed_files_are_repaired_for_checks_of_every_kind(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180")
    model.enqueue(Delay(1.5, then=FIRST_REPLY), REPAIR_REPLY)
    model.lane(CHECK_WRITING).enqueue(Delay(1.5, then=as_json(WRITTEN)))
    model.lane(JUDGING).enqueue(as_json(VERDICT_FAIL), as_json(VERDICT_PASS))
    response = service.post(body("kinds-1"))
    assert response.status_code == 200, response.text
    answer = response.json()
    report = answer["self_check"]
    by_check = rows(report)
    assert {c: by_check[c]["kind"] for c in CHECKS} == {BARE_JS: "given JS", STORY_CHECK: "written JS",
                                                         ABOUT_CHECK: "written JS", PELICAN_CHECK: "judged"}
    assert all(by_check[c]["before"] is False and by_check[c]["after"] is True for c in CHECKS), by_check
    assert report["before"] == [0, 4] and report["after"] == [4, 0] and report["repairs"] == 1
    repair_prompt = model.history[1].json["messages"][-1]["content"]
    assert "nothing in it suggests a pelican" in repair_prompt and "story.txt" in repair_prompt
    purposes = [c["purpose"] for c in report["calls"]]
    assert purposes.count("check writing") == 1 and purposes.count("judging") == 2 and "repair" in purposes
    # the published files pass every check
    pages = answer["pages_url"]
    story = requests.get(pages + "story.txt", timeout=10).text
    assert 30 <= len(story.split()) <= 50
    assert len(requests.get(pages + "about.md", timeout=10).text.split()) == 3
    assert "<path" in requests.get(pages + "pelican.svg", timeout=10).text
    assert_checks_pass(pages, [BARE_JS] + [{"js": c["js"]} for c in WRITTEN["checks"] if c["kind"] == "js"],
                       chromium)
    # written checks are never published
    assert WRITTEN["checks"][0]["js"] not in requests.get(pages + "index.html", timeout=10).text
    # the build page shows every check, the calls and the screenshot
    assert requests.get(f"{service.url}/builds/kinds-1", timeout=10).status_code == 403  # not signed in
    visitor = requests.Session()
    assert visitor.post(service.url + "/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    page = visitor.get(f"{service.url}/builds/kinds-1", timeout=10)
    assert page.status_code == 200 and PELICAN_CHECK in page.text and "written JS" in page.text
    assert "check writing" in page.text and "judging" in page.text and "self_check" in page.text
    assert requests.get(f"{service.url}/builds/kinds-1/screenshot.png", timeout=10).status_code == 403
    shot = visitor.get(f"{service.url}/builds/kinds-1/screenshot.png", timeout=10)
    assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
    assert visitor.get(f"{service.url}/builds/no-such-nonce", timeout=10).status_code == 404


@pytest.mark.browser
def test_generation_and_check_writing_calls_overlap(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, SELF_CHECK_REPAIRS="0")
    model.enqueue(Delay(1.0, then=REPAIR_REPLY))
    model.lane(CHECK_WRITING).enqueue(Delay(1.0, then=as_json(WRITTEN)))
    model.lane(JUDGING).enqueue(as_json(VERDICT_PASS))
    assert service.post(body("kinds-overlap")).status_code == 200
    first_answer = model.timeline.index(("answered", "main")) if ("answered", "main") in model.timeline else 99
    first_answer = min(first_answer, model.timeline.index(("answered", CHECK_WRITING)))
    received = model.timeline[:first_answer]
    assert ("received", "main") in received and ("received", CHECK_WRITING) in received, model.timeline


@pytest.mark.browser
def test_unparseable_check_writing_reply_is_reported_and_published(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, SELF_CHECK_REPAIRS="0")
    model.enqueue(REPAIR_REPLY)
    model.lane(CHECK_WRITING).enqueue("Sure! Here are the checks: story fine, about fine.", "{not json")
    response = service.post(body("kinds-unparseable"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["commit_sha"] and len(model.lane(CHECK_WRITING).history) == 2
    assert any("check writing reply unusable after one retry" in w for w in answer["warnings"]), answer["warnings"]
    by_check = rows(answer["self_check"])
    assert by_check[BARE_JS]["after"] is True
    assert {by_check[c]["kind"] for c in (STORY_CHECK, ABOUT_CHECK, PELICAN_CHECK)} == {"unjudged"}


@pytest.mark.browser
def test_a_broken_written_check_is_reported_as_suspect_not_chased(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, SELF_CHECK_REPAIRS="3", DEADLINE_SECONDS="180")
    broken = {"checks": [{"check": ABOUT_CHECK, "kind": "js", "js": "countWordsOf('about.md') === 3"}]}
    good = files_reply({"index.html": index_html(TITLE), "story.txt": SHORT_STORY,
                        "about.md": "Harbor lighthouse notes", "pelican.svg": PELICAN_SVG,
                        "README.md": "# Harbor notes\n"})
    model.enqueue(good, files_reply({"README.md": "# Harbor notes\n\nThree files and a page.\n"}))
    model.lane(CHECK_WRITING).enqueue(as_json(broken))
    response = service.post(body("kinds-suspect", [BARE_JS, ABOUT_CHECK]))
    assert response.status_code == 200, response.text
    report = response.json()["self_check"]
    row = rows(report)[ABOUT_CHECK]
    assert row["kind"] == "written JS" and row["suspect"] is True and "ReferenceError" in (row["error"] or "")
    assert report["repairs"] == 1 and report["stop_reason"] == "only suspect checks fail"
    assert any(w.startswith("suspect check") for w in response.json()["warnings"])
    assert len(model.history) == 2  # generation and one repair: the broken check was not chased


def test_waiting_for_a_stalled_check_writer_never_eats_the_publishing_reserve(model):
    """The check writer stalls past the deadline: the build stops waiting where the publishing reserve begins
    (the self-check could not use the checks any later, and the notification must not be late)."""
    model.lane(CHECK_WRITING).enqueue(Delay(30.0, then=as_json(WRITTEN)))
    client = ModelClient([ProviderSpec("openai", model.base_url, MODEL_KEY, "scripted-model", "OPENAI_API_KEY")],
                         timeout=60, max_tokens=1000)
    deadline = Deadline(6.0)
    writing = CheckWriting([Check(ABOUT_CHECK)], BRIEF, Attachments(), client, deadline)
    written = writing.result(deadline)
    assert written.problems == ["check writing did not finish before the deadline"]
    assert deadline.remaining() > publish_reserve(deadline) - 1.0
