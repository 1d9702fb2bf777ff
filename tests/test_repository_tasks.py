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
