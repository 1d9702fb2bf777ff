"""Issue 21 in the browser: the self-check sees the published tree (LICENSE included), one repair fixes two slips
in five model calls, a check still failing is said (warnings, dashboard, /metrics), a quiet page ends early.
"""

from __future__ import annotations

import json

import requests

from tests.browser_support import chromium_or_skip
from tests.check_lanes import CHECK_WRITING, JUDGING
from tests.conftest import SECRET, data_uri
from utils.checks.browser import VisitOptions, run_checks
from utils.checks.site_server import StaticSite
from utils.records import Check

UID = b"uid-2f9c-41\n"
PAGES_BRIEF = ("Publish these files: uid.txt (the attached file, as-is), about.md with exactly three words, "
               "data.json with a numeric count field, and an index.html page titled LLM Pages that links to each.")
LICENSE_CHECK = "LICENSE contains the MIT license text"
UID_CHECK = "uid.txt matches the attached uid.txt"
ABOUT_CHECK = "about.md contains exactly three words"
COUNT_CHECK = "data.json has a numeric count field"
TIDY_CHECK = "index.html is a tidy page (rated by an LLM)"
WRITTEN = {"checks": [
    {"check": LICENSE_CHECK, "kind": "js",
     "js": "(async () => (await (await fetch('./LICENSE')).text()).includes('Permission is hereby granted'))()"},
    {"check": UID_CHECK, "kind": "js",
     "js": "(async () => (await (await fetch('./uid.txt')).text()) === 'uid-2f9c-41\\n')()"},
    {"check": ABOUT_CHECK, "kind": "js",
     "js": "(async () => (await (await fetch('./about.md')).text()).trim().split(/\\s+/).length === 3)()"},
    {"check": COUNT_CHECK, "kind": "js",
     "js": "(async () => typeof (await (await fetch('./data.json')).json()).count === 'number')()"},
    {"check": TIDY_CHECK, "kind": "judge", "rubric": "The page is tidy and links to every file."},
]}
PAGE = ('<!doctype html><html><head><title>LLM Pages</title></head><body><h1>LLM Pages</h1><ul>'
        '<li><a href="./uid.txt">uid</a></li><li><a href="./about.md">about</a></li>'
        '<li><a href="./data.json">data</a></li></ul></body></html>')
FIRST_REPLY = f"""index.html
```html
{PAGE}
```

about.md
````markdown
Small static pages here
````

data.json
```json
{{"count": "3"}}
```
"""
REPAIR_REPLY = """about.md
````markdown
Small static pages
````

data.json
```json
{"count": 3}
```
"""


def pages_request(nonce: str, checks: list) -> dict:
    return {"email": "s@example.com", "secret": SECRET, "task": "llm-pages", "round": 1, "nonce": nonce,
            "brief": PAGES_BRIEF, "checks": checks,
            "attachments": [{"name": "uid.txt", "url": data_uri(UID, "text/plain")}]}


def verdict(passed: bool) -> str:
    return json.dumps({"verdicts": [{"check": TIDY_CHECK, "pass": passed, "reason": "tidy" if passed else "no"}]})


def metric_values(text: str) -> dict[str, float]:
    """Sample name (with labels) -> value of a Prometheus text exposition."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def calls(model) -> int:
    return len(model.history) + sum(len(lane.history) for lane in model.lanes)


def test_two_slips_are_fixed_by_one_repair_in_five_calls_and_license_checks_pass(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180")
    model.lane(CHECK_WRITING).enqueue(json.dumps(WRITTEN))
    model.lane(JUDGING).enqueue(verdict(True), verdict(True))
    model.enqueue(FIRST_REPLY, REPAIR_REPLY)
    checks = [LICENSE_CHECK, UID_CHECK, ABOUT_CHECK, COUNT_CHECK, TIDY_CHECK]
    body = service.post(pages_request("pages-1", checks)).json()

    assert body["status"] == "success", body
    rows = {row["check"]: row for row in body["self_check"]["checks"]}
    assert rows[LICENSE_CHECK]["before"] is True and rows[UID_CHECK]["before"] is True
    assert rows[ABOUT_CHECK]["before"] is False and rows[COUNT_CHECK]["before"] is False
    assert all(row["after"] is True for row in rows.values()), rows
    assert body["self_check"]["repairs"] == 1 and body["unmet_checks"] == []
    assert calls(model) == 5, "writer, generation, judge, one repair, one re-judge"
    assert not any("suspect" in w for w in body["warnings"]), body["warnings"]


def test_a_check_still_failing_is_a_warning_on_the_dashboard_and_in_metrics(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180",
                            SELF_CHECK_REPAIRS="0")
    model.enqueue(FIRST_REPLY)
    check = "document.title === 'Something else'"
    before = metric_values(requests.get(f"{service.url}/metrics", timeout=10).text)  # counters are per process
    body = service.post(pages_request("pages-unmet", [check])).json()

    assert body["status"] == "success"
    assert body["unmet_checks"] == [{"check": check, "kind": "given JS", "value": "false"}]
    assert f"check still failing when published: {check} (last value or reason: false)" in body["warnings"]
    session = requests.Session()
    session.post(f"{service.url}/sign-in", data={"secret": SECRET}, timeout=10)
    dashboard = session.get(f"{service.url}/", timeout=10).text
    assert "1 check unmet" in dashboard and 'class="warn"' in dashboard
    after = metric_values(requests.get(f"{service.url}/metrics", timeout=10).text)
    assert after["llm_deploy_builds_with_unmet_checks_total"] == before.get("llm_deploy_builds_with_unmet_checks_total",
                                                                             0.0) + 1
    unmet_js = 'llm_deploy_unmet_checks_total{kind="given JS"}'
    assert after[unmet_js] == before.get(unmet_js, 0.0) + 1


def test_a_false_check_on_a_quiet_page_ends_early_but_a_late_change_is_still_seen():
    chromium = chromium_or_skip()
    page = (b"<!doctype html><title>t</title><p id=a>1</p>"
            b"<script>setTimeout(() => { document.getElementById('a').textContent = '2'; }, 3000)</script>")
    checks = [Check("never", "document.title === 'never'"),
              Check("late", "document.getElementById('a').textContent === '2'")]
    with StaticSite("r", {"index.html": page}) as site:
        quiet = run_checks(site.url, checks, chromium_path=chromium, check_timeout=15)
        patient = run_checks(site.url, checks[:1], chromium_path=chromium, check_timeout=4,
                             options=VisitOptions(quiet_seconds=0))
    never, late = quiet.results
    assert late.passed is True, "a change due from a pending timer is waited for"
    assert never.passed is False and never.quiet is True, "the quiet page ended the false check early"
    assert late.quiet is False
    assert patient.results[0].passed is False and patient.results[0].quiet is False, "quiet_seconds=0 polls it out"


ROUND1_BRIEF = "Publish about.md with exactly three words and ashravan.txt with a short story, and an index page."
STORY = "Ashravan ruled the empire until the assassins came.\n"
ROUND1_FILES = f"""index.html
```html
{PAGE}
```

about.md
````markdown
Small static pages
````

ashravan.txt
```text
{STORY}```
"""
UNCHANGED_CHECK = "ashravan.txt is unchanged from round 1"


def round_request(round_number: int, brief: str, checks: list) -> dict:
    return {"email": "s@example.com", "secret": SECRET, "task": "llm-rounds", "round": round_number,
            "nonce": f"rounds-{round_number}-{len(brief)}", "brief": brief, "checks": checks}


def written(check: str, js: str) -> str:
    return json.dumps({"checks": [{"check": check, "kind": "js", "js": js}]})


def test_round_two_reuses_round_one_written_checks_and_writes_new_ones_with_its_files(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180")
    words = "(async () => (await (await fetch('./about.md')).text()).trim().split(/\\s+/).length === 3)()"
    same = f"(async () => (await (await fetch('./ashravan.txt')).text()) === {json.dumps(STORY)})()"
    writer = model.lane(CHECK_WRITING)
    writer.enqueue(written(ABOUT_CHECK, words), written(UNCHANGED_CHECK, same))
    model.enqueue(ROUND1_FILES, "README.md\n````markdown\n# Rounds\n\nRound 2 adds a footer.\n````\n")
    first = service.post(round_request(1, ROUND1_BRIEF, [ABOUT_CHECK])).json()
    assert first["status"] == "success" and first["written_checks"][0]["check"] == ABOUT_CHECK

    second = service.post(round_request(2, "Add a footer line to the README.", [UNCHANGED_CHECK])).json()

    assert second["status"] == "success", second
    assert len(writer.history) == 2, "round 2 asked only for its new check"
    prompt = writer.history[1].json["messages"][-1]["content"]
    assert UNCHANGED_CHECK in prompt and ABOUT_CHECK not in prompt and STORY.strip() in prompt
    rows = {row["check"]: row for row in second["self_check"]["checks"]}
    assert rows["(previous round) " + ABOUT_CHECK]["after"] is True, "round 1's written check verified again"
    assert rows[UNCHANGED_CHECK]["after"] is True


def test_an_earlier_written_check_the_new_brief_contradicts_yields(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180")
    words = "(async () => (await (await fetch('./about.md')).text()).trim().split(/\\s+/).length === 3)()"
    model.lane(CHECK_WRITING).enqueue(written(ABOUT_CHECK, words))
    five = "about.md\n````markdown\nSmall static pages for everyone\n````\n"
    model.enqueue(ROUND1_FILES, five)
    service.post(round_request(1, ROUND1_BRIEF, [ABOUT_CHECK]))

    second = service.post(round_request(2, "about.md must now contain exactly five words.", [])).json()

    assert second["status"] == "success" and second["unmet_checks"] == [], second
    assert second["self_check"]["waived"] == [ABOUT_CHECK]
    assert len(model.history) == 2, "no repair demanded the impossible"


def test_a_repair_reply_that_changes_nothing_ends_the_loop(start_service, model):
    chromium = chromium_or_skip()
    service = start_service(SELF_CHECK="auto", CHROMIUM_PATH=chromium, DEADLINE_SECONDS="180",
                            SELF_CHECK_REPAIRS="3")
    unchanged = "about.md\n````markdown\nSmall static pages here\n````\n"
    model.enqueue(FIRST_REPLY, unchanged, unchanged, unchanged)
    body = service.post(pages_request("pages-same", ["document.title === 'Other'"])).json()
    assert body["status"] == "success"
    assert body["self_check"]["stop_reason"] == "repair changed nothing" and body["self_check"]["repairs"] == 1
    assert len(model.history) == 2
