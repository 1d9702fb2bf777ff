"""The generation stage (utils/model/generate.py) through ModelClient against scripted model servers over real HTTP.

Covers continuation of cut-off replies, the one precise re-ask, the tolerated
reply variants end to end, hostile paths, revisions with edit blocks, what the
prompt carries, and the usage accounting and its log line.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import BACKUP_KEY, PRIMARY_KEY, SECRET
from tests.fakes.faults import Fail
from tests.fakes.openai_server import ScriptedModel, Truncated, count_tokens, prompt_tokens
from tests.sample_task import (
    ROUND1_INDEX,
    ROUND1_README,
    ROUND1_REPLY,
    ROUND1_SCRIPT,
    ROUND2_REPLY,
    SALES_CSV,
    request_body,
)
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.errors import GenerationFailed, ProvidersFailed
from utils.intake.attachments import decode_attachments
from utils.intake.check_contract import check_contract
from utils.intake.validation import validate_request
from utils.model.edits import NO_INDEX
from utils.model.generate import CONTINUE_PROMPT, MAX_CONTINUATIONS, generate_app
from utils.model.llm import ModelClient
from utils.records import AttachmentRef, Attachments, GeneratedApp, PreviousRound, RepoTarget, TaskRequest

TARGET = RepoTarget("sales-summary-7341-r1", "http://127.0.0.1:9/git/sales-summary-7341-r1",
                    "http://127.0.0.1:9/pages/sales-summary-7341-r1/")
ROUND1 = validate_request(request_body(1, None), SECRET)
ROUND2 = validate_request(request_body(2, None), SECRET)
ATTACHMENTS = decode_attachments(ROUND1.attachments)
ROUND1_FILES = {"index.html": ROUND1_INDEX.encode(), "app.js": ROUND1_SCRIPT.encode(),
                "README.md": ROUND1_README.encode()}
LOGO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00binary"
STYLES_CRLF = b"body {\r\n  margin: 0;\r\n}\r\n"
PREVIOUS = PreviousRound("sales-summary-7341-r1", "0123abcd", {
    **ROUND1_FILES, "data.csv": SALES_CSV, "img/logo.png": LOGO, "styles.css": STYLES_CRLF,
    "LICENSE": b"MIT License\n\nCopyright (c) 2025 student\n",
}, ROUND1.checks)


# ---------------------------------------------------------------- fixtures and helpers



def client(primary: ScriptedModel, backup: ScriptedModel | None = None, **options) -> ModelClient:
    """A ModelClient over the primary (then the backup) with test-sized limits."""
    specs = [ProviderSpec("openai", primary.base_url, PRIMARY_KEY, "primary-model", "OPENAI_API_KEY")]
    if backup is not None:
        specs.append(ProviderSpec("aipipe", backup.base_url, BACKUP_KEY, "backup-model", "AIPIPE_TOKEN"))
    return ModelClient(specs, **{"timeout": 5.0, "max_tokens": 256, **options})


def generate(model: ModelClient, request: TaskRequest = ROUND1, attachments: Attachments = ATTACHMENTS,
             previous: PreviousRound | None = None) -> GeneratedApp:
    """Run the generation stage with a 30 s deadline."""
    return generate_app(request, attachments, TARGET, previous, model, Deadline(30))


def messages(server: ScriptedModel, number: int) -> list[dict]:
    """The messages of the server's ``number``-th recorded request."""
    return server.history[number].json["messages"]


def prompt_of(server: ScriptedModel, number: int = 0) -> str:
    """Every message of one recorded request, joined."""
    return "\n".join(m["content"] for m in messages(server, number))


def reask_of(server: ScriptedModel, number: int = 1) -> str:
    """The re-ask (last user message) of a recorded request."""
    last = messages(server, number)[-1]
    assert last["role"] == "user"
    return last["content"]


def whole_file_reply(files: dict[str, str]) -> str:
    """A whole-file reply (four-backtick fences, so Markdown survives)."""
    return "\n".join(f"{path}\n````\n{content}````\n" for path, content in files.items())


# ---------------------------------------------------------------- tolerated variants, end to end

INFO_STRING_REPLY = (f"```html index.html\n{ROUND1_INDEX}```\n\n```javascript title=\"app.js\"\n{ROUND1_SCRIPT}```\n\n"
                     f"````markdown README.md\n{ROUND1_README}````\n")
JSON_REPLY = json.dumps({"files": [{"path": p, "content": c.decode()} for p, c in ROUND1_FILES.items()]})


@pytest.mark.parametrize("reply", [ROUND1_REPLY, INFO_STRING_REPLY, JSON_REPLY, f"```json\n{JSON_REPLY}\n```\n"],
                         ids=["whole-file", "info-string-path", "json", "json-fenced"])
def test_each_reply_variant_gives_the_same_app(primary, reply):
    primary.enqueue(reply)
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    assert len(primary.history) == 1


# ---------------------------------------------------------------- continuation

@pytest.mark.parametrize("stream", [False, True])
def test_truncated_reply_is_completed_by_continuation(primary, stream):
    cut = ROUND1_REPLY.index("loadSales();")
    primary.enqueue(Truncated(ROUND1_REPLY[:cut]), ROUND1_REPLY[cut:])
    app = generate(client(primary, stream=stream))
    assert app.files == ROUND1_FILES
    assert len(primary.history) == 2
    follow_up = messages(primary, 1)
    assert follow_up[:2] == messages(primary, 0)
    assert follow_up[2:] == [{"role": "assistant", "content": ROUND1_REPLY[:cut]},
                             {"role": "user", "content": CONTINUE_PROMPT}]


def test_continuations_are_bounded_then_the_cut_off_reply_is_reasked(primary):
    pieces = [ROUND1_REPLY[:200], ROUND1_REPLY[200:400], ROUND1_REPLY[400:600]]
    primary.enqueue(*(Truncated(piece) for piece in pieces), ROUND1_REPLY)
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    assert len(primary.history) == MAX_CONTINUATIONS + 2
    reask = reask_of(primary, MAX_CONTINUATIONS + 1)
    assert "(truncated)" in reask and "unclosed code fence" in reask
    assert messages(primary, 3)[-2] == {"role": "assistant", "content": "".join(pieces)}


# ---------------------------------------------------------------- the one re-ask

PATHLESS_REPLY = (f"Here is the page:\n\n```html\n{ROUND1_INDEX}```\n\n"
                  f"And the script:\n\n```javascript\n{ROUND1_SCRIPT}```\n")
PATHLESS_PROBLEM = "a fenced block (line 3) had no file path before it or in its info string"


def test_malformed_reply_is_fixed_by_one_reask_that_says_what_was_wrong(primary):
    primary.enqueue(PATHLESS_REPLY, ROUND1_REPLY)
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    assert len(primary.history) == 2
    assert messages(primary, 1)[-2] == {"role": "assistant", "content": PATHLESS_REPLY}
    reask = reask_of(primary)
    assert f"- {PATHLESS_PROBLEM}\n" in reask
    assert "- a fenced block (line 22) had no file path before it or in its info string\n" in reask
    assert "Send the complete reply again" in reask


def test_still_malformed_after_the_reask_fails_with_the_problems(primary):
    primary.enqueue(PATHLESS_REPLY, PATHLESS_REPLY, ROUND1_REPLY)
    with pytest.raises(GenerationFailed) as raised:
        generate(client(primary))
    error = raised.value
    assert (error.status, error.stage) == (502, "generation")
    assert "still unusable after one re-ask" in error.message and PATHLESS_PROBLEM in error.message
    assert len(primary.history) == 2
    assert PRIMARY_KEY not in error.message


def test_round_one_without_index_html_is_reasked(primary):
    primary.enqueue(whole_file_reply({"app.js": ROUND1_SCRIPT, "README.md": ROUND1_README}), ROUND1_REPLY)
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    assert f"- {NO_INDEX}\n" in reask_of(primary)


def test_an_empty_reply_names_its_problem(primary):
    primary.enqueue("I cannot help with that.", ROUND1_REPLY)
    assert generate(client(primary)).files == ROUND1_FILES
    assert "- the reply contained no files\n" in reask_of(primary)


# ---------------------------------------------------------------- hostile paths

# issue 14: .github/workflows/*.yml passes here now; the pipeline drops the workflows a brief did not ask for
@pytest.mark.parametrize("path", ["../outside.js", "../../etc/passwd", ".git/config", ".github/CODEOWNERS",
                                  ".gitmodules", "/etc/cron.d/job", "C:/Windows/evil.js", "assets/../../up.js",
                                  "a/.git/hooks/pre"])
def test_hostile_paths_in_a_reply_never_reach_the_files(primary, path):
    primary.enqueue(ROUND1_REPLY + f"\n{path}\n```\nmalicious();\n```\n")
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    assert all("malicious" not in content.decode() for content in app.files.values())
    assert len(primary.history) == 1


def test_a_hostile_index_html_is_rejected_and_the_reask_says_why(primary):
    primary.enqueue(whole_file_reply({"/index.html": ROUND1_INDEX, "app.js": ROUND1_SCRIPT}), ROUND1_REPLY)
    app = generate(client(primary))
    assert app.files == ROUND1_FILES
    reask = reask_of(primary)
    assert "- file path '/index.html' was rejected: name is an absolute path\n" in reask
    assert f"- {NO_INDEX}\n" in reask


def test_a_hostile_edit_path_is_rejected(primary):
    edit = "../index.html\n```\n<<<<<<< SEARCH\n<h1>Sales Summary</h1>\n=======\n<h1>Owned</h1>\n>>>>>>> REPLACE\n```\n"
    primary.enqueue(ROUND2_REPLY + "\n" + edit)
    app = generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    assert set(app.files) == set(PREVIOUS.files)
    assert b"Owned" not in app.files["index.html"]


# ---------------------------------------------------------------- a pathless block plus a missing local file

SPLIT_INDEX = ROUND1_INDEX.replace("</head>", '  <link rel="stylesheet" href="./css/style.css?v=2">\n</head>')
STYLE = "body { font-family: system-ui; }\n"


def test_pathless_block_and_a_missing_referenced_file_is_reasked(primary):
    reply = whole_file_reply({"index.html": SPLIT_INDEX, "app.js": ROUND1_SCRIPT}) + f"\n```css\n{STYLE}```\n"
    fixed = whole_file_reply({"index.html": SPLIT_INDEX, "app.js": ROUND1_SCRIPT, "css/style.css": STYLE})
    primary.enqueue(reply, fixed)
    app = generate(client(primary))
    assert app.files["css/style.css"] == STYLE.encode()
    reask = reask_of(primary)
    assert "- 'index.html' references './css/style.css?v=2', but the app has no file 'css/style.css'" in reask
    assert "had no file path before it or in its info string" in reask


def test_pathless_block_alone_is_tolerated_when_every_local_reference_resolves(primary):
    index = SPLIT_INDEX.replace("<h1>", '<img src="logo.png" alt=""><a href="https://example.org/x.js">x</a><h1>')
    reply = whole_file_reply({"index.html": index, "app.js": ROUND1_SCRIPT, "css/style.css": STYLE})
    primary.enqueue(reply + "\nTo tweak the colours, add:\n\n```css\nbody { color: navy; }\n```\n")
    app = generate(client(primary))
    assert set(app.files) == {"index.html", "app.js", "css/style.css"}
    assert len(primary.history) == 1  # data.csv is an attachment, logo.png is not a guessable file


def test_missing_reference_without_a_pathless_block_is_not_reasked(primary):
    primary.enqueue(whole_file_reply({"index.html": SPLIT_INDEX, "app.js": ROUND1_SCRIPT}))
    assert set(generate(client(primary)).files) == {"index.html", "app.js"}
    assert len(primary.history) == 1


# ---------------------------------------------------------------- revisions

def test_revision_applies_edit_blocks_and_keeps_untouched_files_byte_identical(primary):
    primary.enqueue(ROUND2_REPLY)
    app = generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    assert len(primary.history) == 1
    index = app.files["index.html"].decode()
    assert '<table id="product-sales" class="table">' in index
    assert index.count("Computed from the sales column of data.csv.") == 1
    script = app.files["app.js"].decode()
    assert script.count("const byProduct = {};") == 1 and script.endswith("loadSales();\n")
    assert app.files["README.md"].decode().startswith("# Sales Summary\n\nShows the total")
    assert "since round 2" in app.files["README.md"].decode()
    for path in ("data.csv", "img/logo.png", "styles.css", "LICENSE"):
        assert app.files[path] == PREVIOUS.files[path]
    assert app.files["img/logo.png"] == LOGO and app.files["styles.css"] == STYLES_CRLF


def test_revision_edit_matches_despite_whitespace_differences(primary):
    edit = ("index.html\n```html\n<<<<<<< SEARCH\n<p>Total sales: <strong id=\"total-sales\">…</strong></p>   \n"
            "\t<p class=\"text-muted\">Computed from the sales column of data.csv.</p>\n=======\n"
            "<p>Grand total: <strong id=\"total-sales\">…</strong></p>\n>>>>>>> REPLACE\n```\n")
    primary.enqueue(edit)
    app = generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    index = app.files["index.html"].decode()
    assert '\n  <p>Grand total: <strong id="total-sales">…</strong></p>\n  <script src="app.js">' in index
    assert "Computed from" not in index
    assert {p: c for p, c in app.files.items() if p != "index.html"} == \
        {p: c for p, c in PREVIOUS.files.items() if p != "index.html"}


def test_revision_edit_that_matches_nowhere_is_reasked_quoting_the_closest_lines(primary):
    wrong = ROUND2_REPLY.replace("  <p class=\"text-muted\">Computed from the sales column of data.csv.</p>\n=======",
                                 "  <p class=\"muted\">Computed from the sales of data.csv</p>\n=======", 1)
    assert wrong != ROUND2_REPLY
    primary.enqueue(wrong, ROUND2_REPLY)
    app = generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    reask = reask_of(primary)
    assert "an edit for 'index.html' failed: its SEARCH text matches nothing in the file" in reask
    assert "The closest lines in 'index.html' (lines 11-11) are:" in reask
    assert '   11 |   <p class="text-muted">Computed from the sales column of data.csv.</p>' in reask
    # The corrected reply is applied to round 1's files, not on top of the failed reply's edits.
    assert app.files["app.js"].decode().count("const byProduct = {};") == 1
    assert app.files["index.html"].decode().count('id="product-sales"') == 1


def test_revision_can_replace_a_file_whole_and_add_one(primary):
    primary.enqueue(whole_file_reply({"app.js": "console.log('v2');\n", "chart.js": "// chart\n"}))
    app = generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    assert app.files["app.js"] == b"console.log('v2');\n" and app.files["chart.js"] == b"// chart\n"
    assert app.files["index.html"] == PREVIOUS.files["index.html"]


# ---------------------------------------------------------------- the prompt

def test_prompt_holds_every_check_attachment_path_and_contract_item(primary):
    refs = (*ROUND1.attachments, AttachmentRef("data/regions.json", "data:application/json;base64,e30="))
    attachments = decode_attachments(refs)
    primary.enqueue(ROUND1_REPLY)
    generate(client(primary), ROUND1, attachments)
    prompt = prompt_of(primary)
    for check in ROUND1.checks:
        assert check.text in prompt
    for path in ("data.csv", "data/regions.json"):
        assert f"`{path}`" in prompt and f"the app reads it at `./{path}`" in prompt
    contract = check_contract(ROUND1.checks)
    assert {"#total-sales", "link[href*='bootstrap']", "document.title === 'Sales Summary 7341'"} <= set(contract)
    for item in contract:
        assert f"- `{item}`" in prompt
    assert SECRET not in prompt and ROUND1.nonce not in prompt and ROUND1.email not in prompt


def test_revision_prompt_holds_current_files_and_both_rounds_checks(primary):
    primary.enqueue(ROUND2_REPLY)
    generate(client(primary), ROUND2, Attachments(), PREVIOUS)
    prompt = prompt_of(primary)
    for check in (*ROUND2.checks, *PREVIOUS.checks):
        assert check.text in prompt
    assert {"#product-sales tbody tr", "#product-sales"} <= set(check_contract(ROUND2.checks))
    assert "- `#product-sales tbody tr`" in prompt and "- `#total-sales`" in prompt
    assert ROUND1_INDEX in prompt and ROUND1_SCRIPT in prompt
    assert "`img/logo.png` (binary" in prompt and "\x89PNG" not in prompt


# ---------------------------------------------------------------- accounting

def test_usage_sums_tokens_over_continuation_and_reask_and_counts_attempts(primary, backup, caplog):
    no_index = whole_file_reply({"app.js": ROUND1_SCRIPT})
    primary.enqueue(Fail(500))
    backup.enqueue(Truncated(no_index[:40]), no_index[40:], ROUND1_REPLY)
    with caplog.at_level(logging.INFO, logger="utils.model.generate"):
        app = generate(client(primary, backup))
    assert app.files == ROUND1_FILES
    assert len(primary.history) == 1 and len(backup.history) == 3  # the primary cools down after its 500
    replies = [no_index[:40], no_index[40:], ROUND1_REPLY]
    usage = app.usage
    assert (usage.provider, usage.model, usage.attempts) == ("aipipe", "backup-model", 4)
    assert usage.prompt_tokens == sum(prompt_tokens(r.json) for r in backup.history)
    assert usage.completion_tokens == sum(count_tokens(text) for text in replies)
    assert usage.seconds > 0
    records = [r for r in caplog.records if r.name == "utils.model.generate" and r.getMessage() == "model usage"]
    assert len(records) == 1
    logged = records[0]
    assert (logged.outcome, logged.provider, logged.model, logged.attempts) == ("ok", "aipipe", "backup-model", 4)
    assert (logged.prompt_tokens, logged.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert (logged.continuations, logged.reasks) == (1, 1)
    assert logged.seconds == pytest.approx(usage.seconds, abs=0.5)


def test_usage_is_logged_once_when_every_provider_fails(primary, backup, caplog):
    primary.enqueue(Fail(500))
    backup.enqueue(Fail(401))
    with caplog.at_level(logging.INFO, logger="utils.model.generate"), pytest.raises(ProvidersFailed) as raised:
        generate(client(primary, backup))
    assert (raised.value.status, raised.value.stage) == (502, "generation")
    records = [r for r in caplog.records if r.name == "utils.model.generate" and r.getMessage() == "model usage"]
    assert len(records) == 1 and (records[0].outcome, records[0].attempts) == ("failed", 2)


def test_our_logs_never_hold_prompts_replies_or_keys(primary, caplog):
    primary.enqueue(PATHLESS_REPLY, ROUND1_REPLY)
    with caplog.at_level(logging.DEBUG):
        generate(client(primary))
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.name.startswith("utils."))
    for secret_or_content in (PRIMARY_KEY, ROUND1.brief, "loadSales", "Sales Summary 7341"):
        assert secret_or_content not in text
