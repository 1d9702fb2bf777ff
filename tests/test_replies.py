"""Tests for utils.model.replies: every tolerated reply variant, problems, and applying edits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.model.edits import apply_edits
from utils.model.replies import Edit, ParsedReply, parse_reply

F = "```"
HTML = "<!doctype html>\n<title>T</title>\n<p>hi</p>\n"
JS = "console.log('hi');\n"


def block(head: str, body: str, info: str = "", fence: str = F) -> str:
    """A path/decoration line, then a fenced block."""
    prefix = f"{head}\n" if head else ""
    return f"{prefix}{fence}{info}\n{body}{fence}\n"


# ---------------------------------------------------------------- path lines

@pytest.mark.parametrize("head", [
    "index.html",
    "### index.html",
    "## `index.html`",
    "**index.html**",
    "`index.html`",
    "File: index.html",
    "file: `index.html`",
    "Filename: index.html",
    "index.html:",
    "**index.html:**",
    "1. index.html",
    "1) `index.html`",
    "- index.html",
    "* **index.html**",
    "### File: `index.html`",
    "**File: `index.html`**",
    "./index.html",
    "index.html (new file)",
    "  index.html  ",
])
def test_path_line_decorations(head: str) -> None:
    reply = parse_reply(block(head, HTML, "html"))
    assert reply.files == {"index.html": HTML}
    assert reply.problems == []
    assert not reply.truncated


@pytest.mark.parametrize("info", [
    "html index.html",
    "index.html",
    'html title="index.html"',
    "html title='index.html'",
    "html file=index.html",
    "html:index.html",
    " html  index.html ",
    'title="index.html"',
])
def test_path_in_info_string(info: str) -> None:
    reply = parse_reply("Here is the app.\n\n" + block("", HTML, info))
    assert reply.files == {"index.html": HTML}
    assert reply.problems == []


def test_info_path_wins_over_path_line() -> None:
    reply = parse_reply(block("index.html", JS, "js app.js"))
    assert reply.files == {"app.js": JS}


@pytest.mark.parametrize("fence", ["~~~", "````", "~~~~~"])
def test_other_fence_kinds(fence: str) -> None:
    reply = parse_reply(block("index.html", HTML, "html", fence=fence))
    assert reply.files == {"index.html": HTML}


def test_sub_paths_and_several_files_with_prose() -> None:
    text = ("Sure! Here is the app.\n\n"
            + block("### index.html", HTML, "html")
            + "\nThe script handles the data.\n\n"
            + block("**js/app.js**", JS, "javascript")
            + "\nAnd some styles:\n"
            + block("`css/style.css`", "body { margin: 0; }\n", "css")
            + "\nThat's all. Enjoy!\n")
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML, "js/app.js": JS, "css/style.css": "body { margin: 0; }\n"}
    assert reply.problems == []


def test_path_line_then_short_prose_then_fence() -> None:
    reply = parse_reply("app.js\nHere is the updated script:\n" + block("", JS, "js"))
    assert reply.files == {"app.js": JS}


def test_listed_path_does_not_claim_a_fence_of_another_language() -> None:
    text = ("Files:\n- index.html\n- style.css\n\nHere is the page:\n" + block("", HTML, "html")
            + block("index.html", HTML, "html"))
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == ["a fenced block (line 6) had no file path before it or in its info string"]


def test_path_line_is_consumed_by_one_fence() -> None:
    text = block("index.html", HTML, "html") + "Run it with:\n" + block("", "python -m http.server\n", "bash")
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == []


def test_later_whole_file_replaces_earlier() -> None:
    reply = parse_reply(block("app.js", "old\n", "js") + block("app.js", JS, "js"))
    assert reply.files == {"app.js": JS}


def test_crlf_reply_is_normalized() -> None:
    reply = parse_reply(block("index.html", HTML, "html").replace("\n", "\r\n"))
    assert reply.files == {"index.html": HTML}


def test_empty_file_and_blank_lines_kept() -> None:
    reply = parse_reply(block(".nojekyll", "", "") + block("a.txt", "\n\nx\n\n", "text"))
    assert reply.files == {".nojekyll": "", "a.txt": "\n\nx\n\n"}


def test_indented_fence_in_list_item_is_dedented() -> None:
    text = "1. `index.html`\n\n   ```html\n   <p>a</p>\n     <b>b</b>\n   ```\n"
    assert parse_reply(text).files == {"index.html": "<p>a</p>\n  <b>b</b>\n"}


def test_longer_fence_holds_shorter_fences() -> None:
    body = "Some text\n```js\nx()\n```\n```\nbare\n```\n"
    reply = parse_reply(block("notes.txt", body, "text", fence="````"))
    assert reply.files == {"notes.txt": body}


def test_fence_closes_only_with_same_char_and_enough_length() -> None:
    body = "~~~\n```\n"
    reply = parse_reply(block("a.txt", body, "", fence="````"))
    assert reply.files == {"a.txt": body}


@pytest.mark.parametrize("first_line", ["<!-- index.html -->", "<!-- file: index.html -->"])
def test_path_in_first_line_comment(first_line: str) -> None:
    body = f"{first_line}\n{HTML}"
    reply = parse_reply("Here:\n" + block("", body, "html") + block("README.md", "# R\n", "md"))
    assert reply.files == {"index.html": body, "README.md": "# R\n"}


def test_js_comment_path() -> None:
    body = "// app.js\nrun();\n"
    assert parse_reply(block("", body, "javascript")).files == {"app.js": body}


# ---------------------------------------------------------------- Markdown nesting

README_BODY = ("# Sales\n\nInstall:\n\n```bash\npython -m http.server\n```\n\nUse it:\n\n"
               "```js\nfetch('./data.csv')\n```\n\n## License\n\nMIT\n")


@pytest.mark.parametrize("head,info,fence", [
    ("README.md", "markdown", F),
    ("README.md", "md", F),
    ("README.md", "", F),
    ("### README.md", "markdown", "````"),
    ("", "markdown README.md", F),
    ("docs/guide.md", "", F),
    ("docs/notes", "markdown", F),
])
def test_readme_with_inner_fences_survives(head: str, info: str, fence: str) -> None:
    text = block(head, README_BODY, info, fence) + "\n" + block("index.html", HTML, "html")
    reply = parse_reply(text)
    path = head.replace("### ", "") or "README.md"
    assert reply.files == {path: README_BODY, "index.html": HTML}
    assert reply.problems == []


def test_markdown_nesting_falls_back_when_inner_fence_unclosed() -> None:
    body = "# T\n\n```bash\nnpm start\n"
    reply = parse_reply(block("README.md", body, "markdown") + block("index.html", HTML, "html"))
    assert reply.files == {"README.md": body, "index.html": HTML}
    assert not reply.truncated


def test_non_markdown_file_does_not_nest() -> None:
    body = "const s = `\n"
    text = "app.js\n```js\nconst s = `\n```\n```\n"
    reply = parse_reply(text)
    assert reply.files == {"app.js": body}


# ---------------------------------------------------------------- JSON

FILES_LIST = {"files": [{"path": "index.html", "content": HTML}, {"path": "app.js", "content": JS}]}


@pytest.mark.parametrize("text", [
    json.dumps(FILES_LIST),
    json.dumps(FILES_LIST, indent=2),
    "  \n" + json.dumps(FILES_LIST) + "\n\nHope this helps!",
    "Here you go:\n```json\n" + json.dumps(FILES_LIST, indent=2) + "\n```\n",
    "```\n" + json.dumps(FILES_LIST) + "\n```\n",
    json.dumps({"files": {"index.html": HTML, "app.js": JS}}),
    json.dumps({"files": [{"name": "index.html", "contents": HTML}, {"filename": "app.js", "code": JS}]}),
])
def test_json_files_object(text: str) -> None:
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML, "app.js": JS}
    assert reply.problems == []


def test_json_entries_with_problems() -> None:
    text = json.dumps({"files": [{"path": "index.html", "content": HTML}, {"content": "x"},
                                 {"path": "a.js"}, {"path": "../evil.js", "content": "x"}]})
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == [
        "JSON file entry 2 has no string 'path'",
        "JSON file entry 3 ('a.js') has no string 'content'",
        "file path '../evil.js' was rejected: name contains a '..' segment",
    ]


def test_truncated_json_reply() -> None:
    text = json.dumps(FILES_LIST)[:60]
    reply = parse_reply(text)
    assert reply.truncated
    assert reply.files == {}
    assert len(reply.problems) == 1
    assert reply.problems[0].startswith("the reply's JSON files object is not valid JSON (")
    assert reply.problems[0].endswith("(truncated)")


def test_json_block_that_is_data_is_not_files() -> None:
    text = block("data.json", '{"a": 1}\n', "json") + block("index.html", HTML, "html")
    assert parse_reply(text).files == {"data.json": '{"a": 1}\n', "index.html": HTML}


def test_invalid_json_files_block_is_reported() -> None:
    reply = parse_reply('```json\n{"files": [ oops ]}\n```\n')
    assert len(reply.problems) == 1
    assert reply.problems[0].startswith("the JSON block at line 1 is not valid JSON")


def test_json_data_that_is_not_a_files_object_falls_back() -> None:
    reply = parse_reply('{"hello": 1}')
    assert reply.problems == ["the reply contained no files"]


# ---------------------------------------------------------------- problems

def test_pathless_code_block_is_reported() -> None:
    text = block("index.html", HTML, "html") + "\n" + block("", JS, "javascript")
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == ["a fenced block (line 8) had no file path before it or in its info string"]
    assert reply.pathless_lines == [8]


@pytest.mark.parametrize("info", ["bash", "sh", "console", "text", "", "powershell"])
def test_illustrative_pathless_block_is_ignored_when_reply_has_files(info: str) -> None:
    text = block("index.html", HTML, "html") + "Run:\n" + block("", "python -m http.server\n", info)
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == [] and reply.pathless_lines == []


def test_illustrative_block_alone_is_reported() -> None:
    reply = parse_reply("Run this:\n" + block("", "ls\n", "bash"))
    assert reply.problems == ["a fenced block (line 2) had no file path before it or in its info string"]


def test_single_pathless_html_page_becomes_index() -> None:
    reply = parse_reply("Here is your page:\n" + block("", HTML, "html") + "Serve with:\n"
                        + block("", "python -m http.server\n", "bash"))
    assert reply.files == {"index.html": HTML}
    assert reply.problems == []


def test_pathless_page_with_pathless_script_is_not_guessed() -> None:
    reply = parse_reply(block("", HTML, "html") + block("", JS, "js"))
    assert reply.files == {}
    assert reply.problems == [
        "a fenced block (line 1) had no file path before it or in its info string",
        "a fenced block (line 6) had no file path before it or in its info string",
    ]


@pytest.mark.parametrize("text", ["", "   ", "Sorry, I cannot help with that.", "index.html\n"])
def test_no_files(text: str) -> None:
    reply = parse_reply(text)
    assert reply == ParsedReply(problems=["the reply contained no files"])


@pytest.mark.parametrize("head,info,expected", [
    ("app.js", "js", "the reply ends inside an unclosed code fence for 'app.js' (truncated)"),
    ("", "js app.js", "the reply ends inside an unclosed code fence for 'app.js' (truncated)"),
    ("", "js", "the reply ends inside an unclosed code fence that opened at line 7 (truncated)"),
])
def test_truncated_reply(head: str, info: str, expected: str) -> None:
    prefix = f"{head}\n" if head else ""
    text = block("index.html", HTML, "html") + f"{prefix}```{info}\nfunction start() {{\n  let x ="
    reply = parse_reply(text)
    assert reply.truncated
    assert reply.files == {"index.html": HTML}
    assert reply.problems == [expected]


def test_truncated_inside_inner_readme_fence() -> None:
    reply = parse_reply("README.md\n```markdown\n# T\n\n```bash\nnpm i")
    assert reply.truncated
    assert reply.problems == ["the reply ends inside an unclosed code fence for 'README.md' (truncated)"]


def test_truncated_readme_with_inner_fence() -> None:
    text = "README.md\n```markdown\n# T\n\n```bash\nnpm i\n```\n\nMore"
    reply = parse_reply(text)
    assert reply.truncated
    assert reply.problems == ["the reply ends inside an unclosed code fence for 'README.md' (truncated)"]


@pytest.mark.parametrize("path,reason", [
    ("../x", "name contains a '..' segment"),
    ("../../etc/passwd", "name contains a '..' segment"),
    ("/etc/passwd", "name is an absolute path"),
    ("C:\\Windows\\evil.js", "name is an absolute path"),
    (".git/config", "name reaches .git/ or .github/"),
    (".github/CODEOWNERS", "name reaches .git/ or .github/"),  # issue 14: workflow files are accepted now
    (".gitmodules", "name is .gitmodules (submodules are never published)"),
    ("assets/../../x.js", "name contains a '..' segment"),
])
def test_hostile_paths_are_dropped(path: str, reason: str) -> None:
    text = block("index.html", HTML, "html") + block(path, "pwned\n", "")
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.problems == [f"file path '{path}' was rejected: {reason}"]


def test_workflow_files_from_the_model_are_kept() -> None:
    text = block("index.html", HTML, "html") + block(".github/workflows/ci.yml", "on: push\n", "yaml")
    reply = parse_reply(text)
    assert reply.files[".github/workflows/ci.yml"] == "on: push\n" and not reply.problems


def test_hostile_path_in_info_string() -> None:
    reply = parse_reply(block("", "x\n", "js ../evil.js"))
    assert reply.problems == ["file path '../evil.js' was rejected: name contains a '..' segment"]


def test_unusual_path_is_normalized() -> None:
    reply = parse_reply(block("data/my-file.csv", "a,b\n", "csv") + block("./img//logo.svg", "<svg/>\n", "svg"))
    assert set(reply.files) == {"data/my-file.csv", "img/logo.svg"}


# ---------------------------------------------------------------- edit blocks

def edit_text(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_fenced_edit_blocks_several_per_file() -> None:
    body = edit_text("let a = 1;\n", "let a = 2;\n") + edit_text("run();\n", "run(a);\n")
    reply = parse_reply("app.js\n" + block("", body, "js"))
    assert reply.edits == [Edit("app.js", "let a = 1;\n", "let a = 2;\n"), Edit("app.js", "run();\n", "run(a);\n")]
    assert reply.files == {}
    assert reply.problems == []


def test_bare_edit_blocks_after_path_line() -> None:
    text = ("I changed two files.\n\napp.js\n" + edit_text("a\n", "b\n") + "\n" + edit_text("c\n", "d\n")
            + "\n**style.css**\n" + edit_text("", "body{}\n"))
    reply = parse_reply(text)
    assert reply.edits == [Edit("app.js", "a\n", "b\n"), Edit("app.js", "c\n", "d\n"),
                           Edit("style.css", "", "body{}\n")]
    assert reply.problems == []


def test_edit_path_inside_fence_first_line() -> None:
    reply = parse_reply("```\napp.js\n" + edit_text("a\n", "b\n") + "```\n")
    assert reply.edits == [Edit("app.js", "a\n", "b\n")]


def test_edit_path_in_info_string() -> None:
    reply = parse_reply(block("", edit_text("a\n", "b\n"), "js app.js"))
    assert reply.edits == [Edit("app.js", "a\n", "b\n")]


def test_edits_and_whole_files_mixed() -> None:
    text = block("index.html", HTML, "html") + "README.md\n" + block("", edit_text("old\n", "new\n"), "markdown")
    reply = parse_reply(text)
    assert reply.files == {"index.html": HTML}
    assert reply.edits == [Edit("README.md", "old\n", "new\n")]


def test_markdown_edit_with_inner_fence_in_four_backticks() -> None:
    body = edit_text("## Usage\n", "## Usage\n\n```bash\nnpm start\n```\n")
    reply = parse_reply("README.md\n" + block("", body, "markdown", fence="````"))
    assert reply.edits == [Edit("README.md", "## Usage\n", "## Usage\n\n```bash\nnpm start\n```\n")]


def test_edit_without_separator() -> None:
    body = "<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n" + edit_text("c\n", "d\n")
    reply = parse_reply("app.js\n" + block("", body, "js"))
    assert reply.problems == ["an edit block for 'app.js' has no '=======' separator"]
    assert reply.edits == [Edit("app.js", "c\n", "d\n")]


def test_edit_without_separator_before_next_search() -> None:
    body = "<<<<<<< SEARCH\na\n" + edit_text("c\n", "d\n")
    reply = parse_reply("app.js\n" + block("", body, "js"))
    assert reply.problems == ["an edit block for 'app.js' has no '=======' separator"]
    assert reply.edits == [Edit("app.js", "c\n", "d\n")]


def test_edit_without_end_marker_inside_fence() -> None:
    reply = parse_reply("app.js\n" + block("", "<<<<<<< SEARCH\na\n=======\nb\n", "js"))
    assert reply.problems == ["an edit block for 'app.js' has no '>>>>>>> REPLACE' end marker"]
    assert not reply.truncated


def test_reply_ending_inside_bare_edit_is_truncated() -> None:
    reply = parse_reply("app.js\n<<<<<<< SEARCH\na\n=======\nb")
    assert reply.truncated
    assert reply.problems[0] == "the reply ends inside an edit block for 'app.js' (truncated)"


def test_edit_without_path() -> None:
    reply = parse_reply("Change this:\n\n" + edit_text("a\n", "b\n"))
    assert reply.problems[0] == "an edit block (line 3) had no file path before it"


def test_edit_with_hostile_path() -> None:
    reply = parse_reply("../app.js\n" + edit_text("a\n", "b\n"))
    assert reply.edits == []
    assert reply.problems[0] == "file path '../app.js' was rejected: name contains a '..' segment"


# ---------------------------------------------------------------- apply_edits

BASE = {
    "index.html": b"<!doctype html>\n<html>\n  <body>\n    <h1>Old</h1>\n  </body>\n</html>\n",
    "app.js": b"function total(rows) {\n\tlet sum = 0;\n\tfor (const r of rows) sum += r;\n\treturn sum;\n}\n",
    "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
}


def test_exact_edit_first_occurrence_only() -> None:
    files = {"a.txt": b"x = 1\nx = 1\n"}
    new, failures = apply_edits(files, [Edit("a.txt", "x = 1\n", "x = 2\n")])
    assert failures == []
    assert new["a.txt"] == b"x = 2\nx = 1\n"
    assert files["a.txt"] == b"x = 1\nx = 1\n"


def test_untouched_files_are_byte_identical() -> None:
    new, failures = apply_edits(BASE, [Edit("index.html", "    <h1>Old</h1>\n", "    <h1>New</h1>\n")])
    assert failures == []
    assert new["app.js"] is BASE["app.js"]
    assert new["logo.png"] is BASE["logo.png"]
    assert new["index.html"] == BASE["index.html"].replace(b"Old", b"New")


def test_whitespace_tolerant_edit_keeps_file_indentation() -> None:
    search = "<body>\n  <h1>Old</h1>\n</body>\n"
    replace = "<body>\n  <h1>New</h1>\n  <p id=\"total\">0</p>\n</body>\n"
    new, failures = apply_edits(BASE, [Edit("index.html", search, replace)])
    assert failures == []
    assert new["index.html"] == (b"<!doctype html>\n<html>\n  <body>\n    <h1>New</h1>\n"
                                 b"    <p id=\"total\">0</p>\n  </body>\n</html>\n")


def test_whitespace_tolerant_edit_with_tabs_in_file() -> None:
    search = "    let sum = 0;\n    for (const r of rows) sum += r;\n"
    replace = "    let sum = 0;\n    for (const r of rows) sum += Number(r);\n"
    new, failures = apply_edits(BASE, [Edit("app.js", search, replace)])
    assert failures == []
    assert new["app.js"] == (b"function total(rows) {\n\tlet sum = 0;\n\tfor (const r of rows) sum += Number(r);\n"
                             b"\treturn sum;\n}\n")


def test_tolerant_edit_trailing_whitespace_and_no_final_newline() -> None:
    files = {"a.js": b"a();   \nb();"}
    new, failures = apply_edits(files, [Edit("a.js", "a();\nb();\n", "a();\nc();\n")])
    assert failures == []
    assert new["a.js"] == b"a();\nc();"


def test_crlf_file_edit_keeps_crlf() -> None:
    files = {"a.txt": b"one\r\ntwo\r\nthree\r\n"}
    new, failures = apply_edits(files, [Edit("a.txt", "two\n", "2\n")])
    assert failures == []
    assert new["a.txt"] == b"one\r\n2\r\nthree\r\n"


def test_failed_edit_quotes_closest_lines_with_numbers() -> None:
    search = "function total(rows) {\n  let sum = 1;\n  for (const row of rows) sum += row;\n"
    new, failures = apply_edits(BASE, [Edit("app.js", search, "x\n")])
    assert new["app.js"] is BASE["app.js"]
    assert len(failures) == 1
    message = failures[0]
    assert message.startswith("an edit for 'app.js' failed: its SEARCH text matches nothing in the file.")
    assert "    let sum = 1;" in message
    assert "The closest lines in 'app.js' (lines 1-3) are:" in message
    assert "        1 | function total(rows) {" in message
    assert "        2 | \tlet sum = 0;" in message
    assert "        3 | \tfor (const r of rows) sum += r;" in message


def test_failed_edit_finds_window_deep_in_a_large_file() -> None:
    lines = [f"line {i} = compute({i});" for i in range(6000)]
    files = {"big.js": ("\n".join(lines) + "\n").encode()}
    _new, failures = apply_edits(files, [Edit("big.js", "line 4321 = compute(4321)\nline 4322 = compte(4322);\n", "")])
    assert "(lines 4322-4323)" in failures[0]
    assert " 4322 | line 4321 = compute(4321);" in failures[0]


def test_empty_search_creates_missing_file() -> None:
    new, failures = apply_edits(BASE, [Edit("js/new.js", "", "export const x = 1;\n")])
    assert failures == []
    assert new["js/new.js"] == b"export const x = 1;\n"


def test_empty_search_on_existing_file_appends() -> None:
    new, failures = apply_edits({"a.txt": b"a"}, [Edit("a.txt", "", "b\n")])
    assert failures == []
    assert new["a.txt"] == b"a\nb\n"


def test_edit_of_missing_file_fails() -> None:
    new, failures = apply_edits(BASE, [Edit("nope.js", "a\n", "b\n")])
    assert "nope.js" not in new
    assert failures[0].startswith("an edit for 'nope.js' failed: there is no file 'nope.js' (existing files: app.js,")


def test_edit_of_binary_file_fails() -> None:
    _new, failures = apply_edits(BASE, [Edit("logo.png", "PNG\n", "x\n")])
    assert failures == ["an edit for 'logo.png' failed: 'logo.png' is a binary file; send it whole instead"]


def test_edits_apply_in_sequence_and_failures_do_not_block_others() -> None:
    edits = [Edit("a.txt", "1\n", "2\n"), Edit("a.txt", "zzz\n", "q\n"), Edit("a.txt", "2\n", "3\n")]
    new, failures = apply_edits({"a.txt": b"1\n"}, edits)
    assert new["a.txt"] == b"3\n"
    assert len(failures) == 1


def test_edit_with_hostile_path_is_refused() -> None:
    new, failures = apply_edits({}, [Edit("../x", "", "x")])
    assert new == {}
    assert failures == ["an edit for '../x' was rejected: name contains a '..' segment"]


def test_parse_then_apply_round_trip() -> None:
    reply = parse_reply("index.html\n```html\n" + edit_text("<h1>Old</h1>\n", "<h1>New</h1>\n") + "```\n")
    new, failures = apply_edits(BASE, reply.edits)
    assert failures == []
    assert b"    <h1>New</h1>\n" in new["index.html"]


# ---------------------------------------------------------------- properties

_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_content = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=_LINE_BREAKS), max_size=200)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_parse_reply_never_raises(text: str) -> None:
    reply = parse_reply(text)
    assert isinstance(reply, ParsedReply)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.(js|css|html|txt)", fullmatch=True),
                          _content.filter(lambda s: "`" not in s and "<<<<<" not in s)),
                min_size=1, max_size=4, unique_by=lambda t: t[0]))
def test_whole_file_round_trip(files: list[tuple[str, str]]) -> None:
    text = "".join(f"{path}\n````\n{body}{'' if body.endswith(chr(10)) or not body else chr(10)}````\n\n"
                   for path, body in files)
    reply = parse_reply(text)
    expected = {path: body if body.endswith("\n") or not body else body + "\n" for path, body in files}
    assert reply.files == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), min_size=1, max_size=20),
       st.data())
def test_exact_edit_changes_only_the_matched_lines(lines: list[str], data: st.DataObject) -> None:
    text = "".join(line + "\n" for line in lines)
    start = data.draw(st.integers(0, len(lines) - 1))
    search = "".join(line + "\n" for line in lines[start:start + 2])
    if not search.strip():
        return
    new, failures = apply_edits({"f.txt": text.encode(), "g.txt": b"same"}, [Edit("f.txt", search, "NEW\n")])
    assert failures == []
    position = text.find(search)
    assert new["f.txt"].decode() == text[:position] + "NEW\n" + text[position + len(search):]
    assert new["g.txt"] == b"same"
