"""Issue 21: repository tasks, not just pages: one published tree, attachments per the brief, no index.html demanded.

The Analyze-shaped task runs end to end against the fake GitHub (an Actions run and Pages from Actions); the
tree and prompt tests call the pure functions with the records the pipeline passes them.
"""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import requests

from tests.conftest import SECRET, data_uri, task_request
from tests.fakes.github_server import FakeGitHub
from tests.sample_documents import workbook_bytes
from utils.intake.brief import read_brief
from utils.jobs.published_tree import TreeInputs, build_tree
from utils.model.prompt import build_messages
from utils.records import Attachment, Attachments, Check, RepoTarget, TaskRequest

ANALYZE_BRIEF = ("Fix the error in the attached execute.py and commit it. Convert data.xlsx to data.csv and commit "
                 "it. Add a GitHub Actions workflow at .github/workflows/ci.yml that runs ruff and execute.py and "
                 "publishes result.json with GitHub Pages. Do not commit result.json; CI generates it.")
# 70 lines with the typo on the last one: a prompt showing "the first 20 lines" would hide it.
EXECUTE_LINES = ["import json", "import csv", ""] + [f"STEP_{n} = {n}" for n in range(64)] + [
    "", "rows = list(csv.DictReader(open('data.csv')))", "print(json.dumps({'rows': len(rowz)}))"]
EXECUTE_PY = ("\n".join(EXECUTE_LINES) + "\n").encode()
FIXED_PY = EXECUTE_PY.replace(b"len(rowz)", b"len(rows)")
XLSX = workbook_bytes({"Sheet1": [["region", "sales"], ["North", 120], ["South", 75.5]]})
WORKFLOW = """name: ci
on:
  push:
    branches: [main]
  workflow_dispatch:
permissions: {contents: read, pages: write, id-token: write}
concurrency: {group: pages, cancel-in-progress: false}
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: '3.12'}
      - run: pip install ruff && ruff check .
      - run: mkdir -p site && python execute.py > site/result.json
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
ANALYZE_REPLY = f"""execute.py
```python
{FIXED_PY.decode()}```

data.csv
```derive
from: data.xlsx
```

.github/workflows/ci.yml
```yaml
{WORKFLOW}```

README.md
````markdown
# Analyze

Fixes execute.py, converts data.xlsx to data.csv, and runs both in CI.
````
"""
TARGET = RepoTarget("analyze-round-1", "http://github.test/me/analyze-round-1", "http://pages.test/analyze-round-1/")


def analyze_request(**fields) -> dict:
    body = {"email": "s@example.com", "secret": SECRET, "task": "analyze", "round": 1, "nonce": "analyze-1",
            "brief": ANALYZE_BRIEF, "checks": [],
            "attachments": [{"name": "execute.py", "url": data_uri(EXECUTE_PY, "text/x-python")},
                            {"name": "data.xlsx", "url": data_uri(XLSX, "application/vnd.openxmlformats-"
                                                                        "officedocument.spreadsheetml.sheet")}]}
    body.update(fields)
    return body


def github_service(start_service, github: FakeGitHub, **overrides: str):
    return start_service(GITHUB_TOKEN=github.token, GITHUB_API_URL=github.api_url, GITHUB_WRITE_INTERVAL="0",
                         GITHUB_POLL_INTERVAL="0.05", **overrides)


def test_analyze_task_publishes_the_fixed_script_the_exact_csv_and_the_workflow(start_service, model, github):
    github.actions.produced = {"result.json": b'{"rows": 2}'}
    service = github_service(start_service, github)
    model.enqueue(ANALYZE_REPLY)
    body = service.post(analyze_request()).json()

    assert body["status"] == "success", body  # no "the app has no index.html": the brief asks for no page
    assert body["pages_live"] is True, "live once result.json answers, though the site's root is a 404"
    assert len(model.history) == 1, "no re-ask"
    files = github.repo("analyze-round-1").files(body["commit_sha"])
    assert files["execute.py"] == FIXED_PY, "the brief asks to fix execute.py: the model's version is published"
    assert not [p for p in files if p.startswith("execute") and p != "execute.py"], "no renamed duplicate"
    rows = list(csv.reader(io.StringIO(files["data.csv"].decode())))
    sheet = [[c.value for c in row] for row in openpyxl.load_workbook(io.BytesIO(XLSX))["Sheet1"].iter_rows()]
    assert rows[0] == sheet[0] and [[r[0], float(r[1])] for r in rows[1:]] == [[s[0], s[1]] for s in sheet[1:]]
    assert files[".github/workflows/ci.yml"] == WORKFLOW.encode()
    assert "result.json" not in files and "index.html" not in files and "LICENSE" in files
    assert body["workflow_run"]["conclusion"] == "success"
    assert json.loads(requests.get(body["pages_url"] + "result.json", timeout=5).content) == {"rows": 2}
    assert body["brief_reading"]["attachments_to_change"] == ["execute.py"]
    assert body["brief_reading"]["workflow"] is True and body["brief_reading"]["page"] is False
    prompt = model.history[0].json["messages"][-1]["content"]
    assert "len(rowz)" in prompt, "the whole execute.py is shown, its last line included"
    assert "The brief asks you to change this file" in prompt
    assert not github.violations


def test_a_retyped_attachment_is_ignored_with_a_warning_and_a_file_index_is_written(start_service, model):
    uid = b"uid-7f3a\n"
    service = start_service()
    model.enqueue("uid.txt\n```text\nuid-7f3a retyped\n```\n\nnotes.md\n````markdown\n# Notes\n\nThree short "
                  "words.\n````\n")
    body = service.post(task_request(
        brief="Commit the attached uid.txt as-is and write notes.md with a short note.", checks=[],
        attachments=[{"name": "uid.txt", "url": data_uri(uid, "text/plain")}])).json()

    assert body["status"] == "success", body
    assert any("copy of attachment 'uid.txt' was ignored" in w for w in body["warnings"]), body["warnings"]
    assert requests.get(body["pages_url"] + "uid.txt", timeout=5).content == uid
    index = requests.get(body["pages_url"], timeout=5)
    assert index.status_code == 200 and 'href="./notes.md"' in index.text and 'href="./uid.txt"' in index.text
    assert requests.get(body["pages_url"] + "LICENSE", timeout=5).text.startswith("MIT License")
    assert body["brief_reading"]["attachments_to_change"] == []


def test_a_page_brief_without_index_html_is_still_re_asked(start_service, model):
    service = start_service()
    page = "index.html\n```html\n<!doctype html><title>t</title><p id=\"total-sales\">42</p>\n```\n"
    model.enqueue("app.js\n```js\nconsole.log(1)\n```\n", page)
    body = service.post(task_request()).json()
    assert body["status"] == "success" and len(model.history) == 2
    assert "the app has no index.html at its root" in model.history[1].json["messages"][-1]["content"]


# ---------------------------------------------------------------- the tree itself

def attachment(path: str, data: bytes) -> Attachment:
    return Attachment(name=path, path=path, data=data, media_type="text/plain", preview=data.decode()[:100])


def inputs(brief: str, *attached: Attachment, derived: tuple[str, ...] = ()) -> TreeInputs:
    request = TaskRequest(email="s@example.com", task="t", round=1, nonce="n", brief=brief)
    attachments = Attachments(files=attached)
    return TreeInputs(request, attachments, read_brief(brief, [a.path for a in attached]), TARGET, "Holder",
                      derived=derived, year=2026)


def test_the_tree_holds_license_readme_nojekyll_and_attachments_by_the_brief():
    given = inputs("Fix the bug in execute.py. Keep uid.txt as-is.", attachment("execute.py", b"bug\n"),
                   attachment("uid.txt", b"u-1\n"))
    tree = build_tree({"execute.py": b"fixed\n", "uid.txt": b"retyped\n", "README.md": b"# Mine\n"}, given)
    files = tree.files
    assert files["execute.py"] == b"fixed\n" and files["uid.txt"] == b"u-1\n"
    assert files["LICENSE"].startswith(b"MIT License\n\nCopyright (c) 2026 Holder")
    assert b"## License" in files["README.md"] and files[".nojekyll"] == b""
    assert b'href="./execute.py"' in files["index.html"]  # no page and no workflow: an index of the files
    assert tree.warnings == ("the model's copy of attachment 'uid.txt' was ignored: the brief does not ask to "
                             "change it, so it is published as attached",)
    assert given.protected == ("uid.txt", "LICENSE"), "execute.py may be repaired; uid.txt and LICENSE never"


def test_the_tree_is_the_same_when_built_again_from_itself():
    given = inputs("Write notes.md.", attachment("uid.txt", b"u-1\n"))
    tree = build_tree({"notes.md": b"# n\n"}, given)
    assert build_tree(tree.model_files(tree.files), given).files == tree.files
    repaired = {**tree.files, "extra.txt": b"x\n"}
    again = build_tree(tree.model_files(repaired), given).files
    assert b'href="./extra.txt"' in again["index.html"], "the index lists what a repair added"


def test_an_unchanged_changeable_attachment_and_a_model_index_stay():
    given = inputs("Update data.json with a new field and show it on a web page.", attachment("data.json", b"{}"))
    tree = build_tree({"index.html": b"<!doctype html><title>Mine</title>"}, given)
    assert tree.files["data.json"] == b"{}" and tree.files["index.html"] == b"<!doctype html><title>Mine</title>"
    assert tree.warnings == () and "index.html" not in tree.made


def test_unasked_workflows_are_dropped_with_a_warning():
    tree = build_tree({"index.html": b"<p>", ".github/workflows/x.yml": b"on: push\n"},
                      inputs("Make a page that shows hello."))
    assert ".github/workflows/x.yml" not in tree.files
    assert tree.warnings == ("the brief asks for no workflow; not published: .github/workflows/x.yml",)


# ---------------------------------------------------------------- the prompts say the same

def test_generation_prompt_shows_changeable_attachments_whole_and_marks_the_others():
    request = TaskRequest(email="s@example.com", task="t", round=1, nonce="n", brief=ANALYZE_BRIEF)
    attached = Attachments(files=(attachment("execute.py", EXECUTE_PY), attachment("uid.txt", b"u\n")))
    prompt = build_messages(request, attached, TARGET)[1]["content"]
    assert EXECUTE_PY.decode() in prompt
    assert "- `uid.txt` (text/plain, 2 bytes; sent as `uid.txt`). Committed at this path exactly as attached" in prompt
    assert "no `index.html` is needed" in prompt
    page_prompt = build_messages(TaskRequest(email="s@example.com", task="t", round=1, nonce="n",
                                             brief="x", checks=(Check("t", "document.title === 'x'"),)),
                                 Attachments(), TARGET)[1]["content"]
    assert "`index.html`, any scripts, styles" in page_prompt


def test_the_system_prompt_teaches_bare_values_and_never_forbids_a_changeable_attachment():
    request = TaskRequest(email="s@example.com", task="t", round=1, nonce="n", brief=ANALYZE_BRIEF)
    system = " ".join(build_messages(request, Attachments(), TARGET)[0]["content"].split())
    assert "`25000000`, not `25,000,000`" in system
    assert "do not rewrite the attachments" not in system
    assert "Send an attachment only when the task lists it as one the brief asks you to change" in system


# ---------------------------------------------------------------- checks across rounds

def test_a_new_brief_contradicting_an_earlier_check_waives_it_and_others_stay():
    from utils.checks.plan import contradicted_by_brief

    three = Check("about.md contains exactly three words", "(async () => true)()")
    assert contradicted_by_brief(three, "Round 2: about.md must contain exactly five words.")
    assert contradicted_by_brief(three, "Update about.md with a new sentence.")
    assert not contradicted_by_brief(three, "Add a footer to index.html with 3 links.")
    assert not contradicted_by_brief(three, "Keep about.md with exactly three words; add notes.txt.")


def test_stored_written_checks_are_reused_for_repeated_and_earlier_checks_only():
    from utils.checks.writer import reuse_written

    stored = [{"check": "About has three words", "kind": "js", "js": "true"},
              {"check": "Story is good", "kind": "judge", "rubric": "a good story"},
              {"check": "Gone check", "kind": "js", "js": "true"},
              {"check": "Broken", "kind": "js", "js": "this is not javascript ("}]
    reused = reuse_written(stored, [Check("about has THREE words")], [Check("Story is good"), Check("Broken")])
    assert [(w.check, w.kind, w.previous) for w in reused] == [("about has THREE words", "js", False),
                                                               ("Story is good", "judge", True)]


def test_the_check_writer_is_taught_to_check_shown_values_by_equality():
    from utils.checks.writer import write_messages

    prompt = " ".join(write_messages(["#max shows the largest value"], "b", Attachments())[1]["content"].split())
    assert "checked by equality with the bare value" in prompt and "=== '25000000'" in prompt


# ---------------------------------------------------------------- files and run checks (the sandbox)

NOT_COMMITTED = "result.json is NOT committed"
NO_TYPO = "execute.py does not contain the typo"
CSV_EQUALS = "data.csv equals data.xlsx"
CI_LOGS = "GitHub Actions ran for this commit and the logs show ruff and execute.py"
ANALYZE_WRITTEN = {"checks": [
    {"check": NOT_COMMITTED, "kind": "files", "js": "!('result.json' in files)"},
    {"check": NO_TYPO, "kind": "files", "js": "!files['execute.py'].includes('rowz')"},
    {"check": CSV_EQUALS, "kind": "files",
     "js": "(() => { const rows = sources['data.xlsx']; const lines = files['data.csv'].trim().split(/\\r?\\n/)"
           ".slice(1).map(l => l.split(',')); return lines.length === rows.length && rows.every((r, i) => "
           "r.region === lines[i][0] && r.sales === Number(lines[i][1])); })()"},
    {"check": CI_LOGS, "kind": "run",
     "js": "run.conclusion === 'success' && /ruff/.test(run.log) && /execute\\.py/.test(run.log)"},
]}
SUCCESS_LOG = "2026-01-01T00:00:00Z Run pip install ruff && ruff check .\nAll checks passed!\n" \
              "2026-01-01T00:00:02Z Run python execute.py > site/result.json\n"


def test_analyze_files_checks_run_before_publishing_and_run_checks_on_the_run(start_service, model, github):
    from tests.browser_support import chromium_or_skip
    from tests.check_lanes import CHECK_WRITING

    chromium = chromium_or_skip()
    github.actions.produced = {"result.json": b'{"rows": 2}'}
    github.actions.success_log = SUCCESS_LOG
    service = github_service(start_service, github, SELF_CHECK="auto", CHROMIUM_PATH=chromium,
                             DEADLINE_SECONDS="180")
    model.lane(CHECK_WRITING).enqueue(json.dumps(ANALYZE_WRITTEN))
    broken = ANALYZE_REPLY.replace(FIXED_PY.decode(), EXECUTE_PY.decode())  # the typo left in: one repair
    fix = ("execute.py\n```python\n<<<<<<< SEARCH\n" + EXECUTE_LINES[-1] + "\n=======\n"
           + EXECUTE_LINES[-1].replace("rowz", "rows") + "\n>>>>>>> REPLACE\n```\n")
    model.enqueue(broken, fix)
    body = service.post(analyze_request(nonce="analyze-checks", checks=[NOT_COMMITTED, NO_TYPO, CSV_EQUALS,
                                                                         CI_LOGS])).json()

    assert body["status"] == "success", body
    rows = {row["check"]: row for row in body["self_check"]["checks"]}
    assert rows[NO_TYPO]["kind"] == "files" and rows[NO_TYPO]["before"] is False and rows[NO_TYPO]["after"] is True
    assert rows[NOT_COMMITTED]["after"] is True and rows[CSV_EQUALS]["after"] is True, rows
    assert rows[CI_LOGS]["after"] is None and body["self_check"]["unverified"] == [CI_LOGS]
    assert body["self_check"]["repairs"] == 1 and body["unmet_checks"] == []
    files = github.repo("analyze-round-1").files(body["commit_sha"])
    assert files["execute.py"] == FIXED_PY
    run_checks = body["workflow_run"]["checks"]
    assert run_checks == [{"check": CI_LOGS, "kind": "run", "passed": True, "value": "true", "error": None}]
    live = {row["check"]: row for row in body["live_check"]["checks"]}
    assert live[CI_LOGS]["after"] is True and live[NOT_COMMITTED]["after"] is True and live[CSV_EQUALS]["after"]
    session = requests.Session()
    session.post(f"{service.url}/sign-in", data={"secret": SECRET}, timeout=10)
    page = session.get(f"{service.url}/builds/analyze-checks", timeout=10).text
    assert 'id="live-checks"' in page and page.count('class="live-check" data-kind="run" data-after="True"') == 1
    assert not github.violations


def test_a_run_check_that_fails_on_the_run_feeds_the_one_workflow_repair(start_service, model, github):
    from tests.browser_support import chromium_or_skip
    from tests.check_lanes import CHECK_WRITING

    chromium = chromium_or_skip()
    github.actions.produced = {"result.json": b'{"rows": 2}'}
    service = github_service(start_service, github, SELF_CHECK="auto", CHROMIUM_PATH=chromium,
                             DEADLINE_SECONDS="180")
    model.lane(CHECK_WRITING).enqueue(json.dumps({"checks": [ANALYZE_WRITTEN["checks"][3]]}))
    without_ruff = ANALYZE_REPLY.replace("      - run: pip install ruff && ruff check .\n", "")
    step = "      - run: mkdir -p site && python execute.py > site/result.json\n"
    fix = (".github/workflows/ci.yml\n```yaml\n<<<<<<< SEARCH\n" + step + "=======\n"
           "      - run: pip install ruff && ruff check .\n" + step + ">>>>>>> REPLACE\n```\n")
    model.enqueue(without_ruff, fix)
    body = service.post(analyze_request(nonce="analyze-run", checks=[CI_LOGS])).json()

    assert body["status"] == "success", body
    assert len(model.history) == 2, "one workflow repair, asked because a run check failed"
    repair_prompt = model.history[1].json["messages"][-1]["content"]
    assert CI_LOGS in repair_prompt and "Conclusion: success" in repair_prompt
    assert body["workflow_run"]["repaired"] is True and body["workflow_run"]["checks"][0]["passed"] is True
    assert body["unmet_checks"] == []


def test_the_writer_accepts_files_and_run_kinds_and_teaches_them():
    from utils.checks.writer import parse_written, write_messages

    written, problems = parse_written({"checks": [
        {"check": NOT_COMMITTED, "kind": "files", "js": "!('result.json' in files)"},
        {"check": CI_LOGS, "kind": "run", "js": "run.conclusion === 'success'"},
        {"check": NO_TYPO, "kind": "files", "js": "not javascript ("}]}, [NOT_COMMITTED, CI_LOGS, NO_TYPO])
    assert [(w.check, w.kind) for w in written] == [(NOT_COMMITTED, "files"), (CI_LOGS, "run")]
    assert any("is not an expression" in p for p in problems)
    prompt = " ".join(write_messages([NOT_COMMITTED], ANALYZE_BRIEF, Attachments())[1]["content"].split())
    assert "`files`: for what is true of the repository rather than the site" in prompt
    assert "`run`: for what the GitHub Actions run of the published commit must show" in prompt


def test_without_a_sandbox_files_and_run_checks_are_unverified_not_failed():
    from utils.checks.repo_checks import RepoChecks

    checks = RepoChecks(None, {})
    assert checks.files_result(NOT_COMMITTED, "true", {"a": b"x"}).passed is None
    assert checks.run_result(CI_LOGS, "true", "success", "log").passed is None


def test_the_judge_sees_the_files_the_checks_or_brief_name_and_the_rest_by_size():
    from utils.checks.judge import JudgeItem, judge_messages

    files = {"index.html": b"<p>page</p>", ".github/workflows/ci.yml": WORKFLOW.encode(),
             "LICENSE": b"MIT License\n\nCopyright (c) 2026 Holder\n", "notes.md": b"# Notes\n"}
    items = [JudgeItem("The CI YAML runs ruff sensibly", "The workflow runs ruff before execute.py."),
             JudgeItem("The LICENSE names its holder", "LICENSE has a copyright line.")]
    prompt = judge_messages(items, files, "Add a CI workflow.")[1]["content"]
    assert WORKFLOW.strip().splitlines()[-1] in prompt, "the workflow is shown whole"
    assert "Copyright (c) 2026 Holder" in prompt, "LICENSE is shown to the judge"
    others = prompt.split("Other files of the repository")[1]
    assert "- `index.html` (11 bytes)" in others and "- `notes.md` (8 bytes)" in others
