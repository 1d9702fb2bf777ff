"""Tests for utils.model.prompt: what every prompt must state, the contract extraction, revisions, re-asks."""

from __future__ import annotations

import pytest

from utils.intake.check_contract import check_contract
from utils.model.prompt import MAX_CONTEXT_BYTES, build_messages, reask_message
from utils.model.prompt_parts import PROMPTS_DIR
from utils.model.replies import parse_reply
from utils.records import (
    Attachment,
    AttachmentRef,
    Attachments,
    Check,
    LinkedAttachment,
    PreviousRound,
    RepoTarget,
    TaskRequest,
)

TARGET = RepoTarget(name="sales-summary-r1", repo_url="https://github.com/alice/sales-summary-r1",
                    pages_url="https://alice.github.io/sales-summary-r1/")

BOOTSTRAP_JS = "!!document.querySelector(\"link[href*='bootstrap@5']\")"
CHECKS = (
    Check("Repo has MIT license"),
    Check("Page shows the total of the sales column in #total-sales"),
    Check('js: document.title === "Sales Summary 2024"', 'document.title === "Sales Summary 2024"'),
    Check(BOOTSTRAP_JS, BOOTSTRAP_JS),
    Check("Math.abs(parseFloat(document.getElementById('total-sales').textContent) - 1234.5) < 0.01",
          "Math.abs(parseFloat(document.getElementById('total-sales').textContent) - 1234.5) < 0.01"),
    Check("typeof window.salesData === 'object' && Array.isArray(window.salesData.rows)",
          "typeof window.salesData === 'object' && Array.isArray(window.salesData.rows)"),
    Check("const rows = document.querySelectorAll('#product-sales tbody tr');\nrows.length >= 3",
          "const rows = document.querySelectorAll('#product-sales tbody tr');\nrows.length >= 3"),
    Check("Uses `marked` to render: typeof marked.parse === 'function'",
          "typeof marked.parse === 'function'"),
)

REQUEST = TaskRequest(
    email="student@example.com", task="sales-summary-3f2a", round=1, nonce="nonce-7c1e-unique",
    brief="Publish a single-page site that fetches data.csv, sums its sales column and shows the total.",
    checks=CHECKS, evaluation_url="https://grader.example.com/notify?token=eval-token-XYZ",
    attachments=(AttachmentRef("data.csv", "data:text/csv;base64,cHJvZHVjdCxzYWxlcwo="),),
)

ATTACHMENTS = Attachments(
    files=(
        Attachment("data.csv", "data.csv", b"product,sales\nA,10\n", "text/csv", "product,sales\nA,10"),
        Attachment("Sales Report 2024.json", "data/Sales-Report-2024.json", b'{"x": 1}', "application/json",
                   '{"x": 1}'),
        Attachment("logo.png", "img/logo.png", b"\x89PNG....", "image/png", ""),
    ),
    links=(LinkedAttachment("photo", "https://example.org/photo.jpg"),),
)


def user_prompt(request: TaskRequest = REQUEST, attachments: Attachments = ATTACHMENTS,
                previous: PreviousRound | None = None, **kwargs) -> str:
    messages = build_messages(request, attachments, TARGET, previous, **kwargs)
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def whole_prompt(*args, **kwargs) -> str:
    return "\n".join(m["content"] for m in build_messages(REQUEST, ATTACHMENTS, TARGET, *args, **kwargs))


# ---------------------------------------------------------------- templates

@pytest.mark.parametrize("name", ["system.md", "round1.md", "revision.md", "reask.md"])
def test_templates_are_readable_files(name: str) -> None:
    assert (PROMPTS_DIR / name).read_text(encoding="utf-8").strip()


# ---------------------------------------------------------------- round 1

@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.text[:30])
def test_every_check_appears_verbatim(check: Check) -> None:
    assert check.text in user_prompt()


def test_checks_are_numbered_in_order() -> None:
    prompt = user_prompt()
    positions = [prompt.index(f"\n{n}.") for n in range(1, len(CHECKS) + 1)]
    assert positions == sorted(positions)


@pytest.mark.parametrize("path", ["data.csv", "data/Sales-Report-2024.json", "img/logo.png"])
def test_every_attachment_path_appears(path: str) -> None:
    prompt = user_prompt()
    assert f"`{path}`" in prompt
    assert f"`./{path}`" in prompt


def test_attachment_preview_and_link() -> None:
    prompt = user_prompt()
    assert "product,sales\nA,10" in prompt.replace("\n  ", "\n")
    assert "https://example.org/photo.jpg" in prompt
    assert "text/csv" in prompt


def test_no_attachments() -> None:
    assert "## Attachments\n\nNone." in user_prompt(attachments=Attachments())


@pytest.mark.parametrize("item", ["#total-sales", 'document.title === "Sales Summary 2024"',
                                  "link[href*='bootstrap@5']", "window.salesData", "#product-sales tbody tr",
                                  "window.marked"])
def test_contract_items_in_prompt(item: str) -> None:
    assert f"- `{item}`" in user_prompt()


def test_pages_url_and_platform_rules() -> None:
    prompt = whole_prompt()
    assert TARGET.pages_url in prompt
    for phrase in ["GitHub Pages", "sub-path", "./data.csv", "no build step", "jsDelivr".lower(), "exact version",
                   "no backend code"]:
        assert phrase in prompt.lower() or phrase in prompt, phrase


def test_reply_format_and_readme_requirements() -> None:
    system = build_messages(REQUEST, ATTACHMENTS, TARGET)[0]["content"]
    assert "four backticks" in system
    assert "README.md\n````markdown" in system
    for part in ["title", "summary", "live", "setup", "usage", "how the code works", "## License", "MIT"]:
        assert part in system, part


def test_ends_with_self_check() -> None:
    prompt = user_prompt()
    tail = prompt[prompt.rindex("## Before you reply, check"):]
    assert tail.count("\n- ") >= 4
    assert "\n## " not in tail


def test_brief_is_included() -> None:
    assert REQUEST.brief in user_prompt()


def test_no_secrets_or_private_request_fields_in_prompt() -> None:
    prompt = whole_prompt()
    for private in [REQUEST.email, REQUEST.nonce, "eval-token-XYZ", "grader.example.com", "base64"]:
        assert private not in prompt


def test_placeholder_like_text_in_brief_is_kept_literally() -> None:
    request = TaskRequest("e@x", "t", 1, "n", brief="Show $total and ${count} and $$", checks=())
    prompt = user_prompt(request, Attachments())
    assert "Show $total and ${count} and $$" in prompt
    assert "(none given: follow the brief)" in prompt
    assert "(the checks reference no specific ids" in prompt


def test_example_in_system_prompt_parses_as_a_reply() -> None:
    system = build_messages(REQUEST, ATTACHMENTS, TARGET)[0]["content"]
    example = system[system.index("index.html\n```html"):system.index("Rules:")]
    reply = parse_reply(example)
    assert set(reply.files) == {"index.html", "README.md"}
    assert reply.problems == []


# ---------------------------------------------------------------- check_contract

@pytest.mark.parametrize("js,expected", [
    ("document.querySelector('#total-sales').textContent", ["#total-sales"]),
    ('document.querySelectorAll("table.sales > tbody tr").length > 2', ["table.sales > tbody tr"]),
    ("document.getElementById(`github-created-at`)", ["#github-created-at"]),
    ("document.getElementsByClassName('card big').length", [".card.big"]),
    ("document.getElementsByTagName('canvas').length", ["canvas"]),
    ("$('#x').length", ["#x"]),
    ('document.title === "Sales"', ['document.title === "Sales"']),
    ("'Sales' == document.title", ["'Sales' == document.title"]),
    ("document.title.includes('Summary')", ["document.title.includes('Summary')"]),
    ("document.title.toLowerCase().includes('summary')", ["document.title.toLowerCase().includes('summary')"]),
    ("/sales/i.test(document.title)", ["/sales/i.test(document.title)"]),
    ("window.totalSales > 0", ["window.totalSales"]),
    ("window['app-state'] !== undefined", ["window.app-state"]),
    ("typeof Chart !== 'undefined'", ["window.Chart"]),
    ("window.innerWidth > 0 && window.getComputedStyle(document.body)", []),
    ("typeof document.querySelector === 'function'", []),
    ("document.querySelector('#a') && document.querySelector('#a').textContent", ["#a"]),
    ("document.querySelector(\"[data-x=\\\"y\\\"]\")", ['[data-x="y"]']),
    ("1 + 1 === 2", []),
])
def test_contract_from_javascript(js: str, expected: list[str]) -> None:
    assert check_contract([Check(js, js)]) == expected


@pytest.mark.parametrize("text,expected", [
    ("Page has an element #total-sales showing the sum", ["#total-sales"]),
    ('A div with id="result" shows the answer', ["#result"]),
    ("The output appears in the element with id `output`", ["#output"]),
    ("Shows the status with id status-line", ["#status-line"]),
    ("Background color is #fff and text is #333333", []),
    ("Repo has MIT license", []),
    ("README.md is professional", []),
])
def test_contract_from_prose(text: str, expected: list[str]) -> None:
    assert check_contract([Check(text)]) == expected


def test_contract_is_deduplicated_in_order() -> None:
    checks = [Check("document.querySelector('#b')", "document.querySelector('#b')"),
              Check("#a and #b exist"), Check("document.getElementById('b')", "document.getElementById('b')")]
    assert check_contract(checks) == ["#b", "#a"]


def test_contract_uses_text_and_js_of_a_check() -> None:
    assert check_contract([CHECKS[2]]) == ['document.title === "Sales Summary 2024"']


# ---------------------------------------------------------------- revisions

PREVIOUS = PreviousRound(
    repo_name="sales-summary-r1", commit_sha="abc1234",
    files={
        "index.html": b"<!doctype html>\n<h1 id=\"total-sales\">0</h1>\n<script src=\"./app.js\"></script>\n",
        "app.js": b"fetch('./data.csv').then(r => r.text());\n",
        "README.md": b"# Sales\n\n```bash\npython -m http.server\n```\n",
        "data.csv": b"product,sales\nA,10\n",
        "img/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
        "LICENSE": b"MIT License\n...",
    },
    checks=(Check("Old check: #total-sales shows the sum"),
            Check("document.querySelector('#old-widget')", "document.querySelector('#old-widget')")),
)

REVISION = TaskRequest(
    email="student@example.com", task="sales-summary-3f2a", round=2, nonce="nonce-2",
    brief="Add a bar chart of sales by product in app.js and a #product-sales table.",
    checks=(Check("document.querySelector('#product-sales')", "document.querySelector('#product-sales')"),),
)


def test_revision_includes_current_files_in_full() -> None:
    prompt = user_prompt(REVISION, Attachments(), PREVIOUS)
    for path in ["index.html", "app.js", "data.csv"]:
        assert f"{path}\n```" in prompt
        assert PREVIOUS.files[path].decode() in prompt
    assert "README.md\n````markdown\n# Sales\n\n```bash\npython -m http.server\n```\n````" in prompt
    assert "`img/logo.png` (binary, 11 bytes; kept as is)" in prompt
    assert "\x89PNG" not in prompt
    assert "All current files are shown above." in prompt


def test_revision_current_files_parse_back_as_a_reply() -> None:
    prompt = user_prompt(REVISION, Attachments(), PREVIOUS)
    section = prompt[prompt.index("## Current files"):prompt.index("## How to reply")]
    reply = parse_reply(section)
    assert reply.files == {p: PREVIOUS.files[p].decode() for p in ["index.html", "app.js", "README.md", "data.csv"]}


def test_revision_states_previous_checks_must_keep_passing() -> None:
    prompt = user_prompt(REVISION, Attachments(), PREVIOUS)
    assert "must keep passing" in prompt
    for check in (*PREVIOUS.checks, *REVISION.checks):
        assert check.text in prompt
    for item in ["#product-sales", "#total-sales", "#old-widget"]:
        assert f"- `{item}`" in prompt


def test_revision_asks_for_edits_and_readme_update() -> None:
    prompt = user_prompt(REVISION, Attachments(), PREVIOUS)
    assert "<<<<<<< SEARCH" in prompt and "=======" in prompt and ">>>>>>> REPLACE" in prompt
    assert "README.md" in prompt and "describes this round's change" in prompt
    assert "round 1 (commit `abc1234`)" in prompt


def test_revision_budget_keeps_mentioned_files_and_lists_omitted() -> None:
    big = {f"extra{i}.js": (f"// file {i}\n" + "x = 1;\n" * 200).encode() for i in range(5)}
    previous = PreviousRound("r1", "abc", {**PREVIOUS.files, **big}, ())
    prompt = user_prompt(REVISION, Attachments(), previous, max_context_bytes=1000)
    assert PREVIOUS.files["app.js"].decode() in prompt
    assert "omitted for length" in prompt
    for name in big:
        assert f"- `{name}` (1,410 bytes)" in prompt
        assert big[name].decode() not in prompt


def test_revision_default_budget_is_the_named_constant() -> None:
    chunk = b"// data\n" + b"x = 1;\n" * (MAX_CONTEXT_BYTES // 14)
    files = {"index.html": b"<!doctype html>\n", "a-large.js": chunk, "chart-data.js": chunk}
    request = TaskRequest(email="e@example.com", task="t", round=2, nonce="n", brief="Fix chart-data.js totals.")
    prompt = user_prompt(request, Attachments(), PreviousRound("r1", "abc", files, ()))
    assert chunk.decode() in prompt and "<!doctype html>" in prompt
    assert f"- `a-large.js` ({len(chunk):,} bytes)" in prompt
    assert prompt.count(chunk.decode()) == 1


def test_revision_with_room_for_everything_shows_everything() -> None:
    big = {"extra.js": b"x = 1;\n" * 100}
    previous = PreviousRound("r1", "abc", {**PREVIOUS.files, **big}, ())
    prompt = user_prompt(REVISION, Attachments(), previous)
    assert big["extra.js"].decode() in prompt


def test_revision_file_with_backticks_gets_a_longer_fence() -> None:
    previous = PreviousRound("r1", "abc", {"index.html": b"<script>const s = `a ```` b`;</script>\n"}, ())
    prompt = user_prompt(REVISION, Attachments(), previous)
    assert "index.html\n`````html\n" in prompt


# ---------------------------------------------------------------- re-ask

def test_reask_lists_every_problem_verbatim() -> None:
    problems = ["the reply ends inside an unclosed code fence for 'app.js' (truncated)",
                "an edit for 'app.js' failed: its SEARCH text matches nothing in the file. SEARCH was:\n    foo()"]
    message = reask_message(problems)
    assert message["role"] == "user"
    assert f"- {problems[0]}" in message["content"]
    assert "- an edit for 'app.js' failed" in message["content"]
    assert "\n      foo()" in message["content"]
    assert "same format" in message["content"]
    assert "complete" in message["content"]


def test_reask_without_problems_still_asks() -> None:
    assert "could not be parsed" in reask_message([])["content"]
