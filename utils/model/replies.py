"""Parse a model's reply into files and SEARCH/REPLACE edits (``utils.model.edits`` applies them).

The format is DESIGN.md's "LLM reply format". Tolerated variants:

* whole files: a line holding the relative path, decorated or not (``index.html``,
  ``### index.html``, ``**index.html**``, ```` `index.html` ````, ``File: index.html``,
  ``index.html:``, ``1. index.html``), then a fenced block (backticks or tildes);
* the path in the fence's info string (```` ```html index.html ````, ```` ```index.html ````,
  ```` ```html title="index.html" ````, ```` ```html:index.html ````), or alone in a
  comment on the block's first line (``<!-- index.html -->``, ``// app.js``);
* a JSON object ``{"files": [{"path", "content"}]}`` or ``{"files": {path: content}}``,
  bare or inside a ```` ```json ```` fence;
* SEARCH/REPLACE blocks after a path line, bare or inside a fence (several per file).

A fence opened with N backticks (or tildes) closes only on a bare line of at
least N of the same character. Inside a Markdown file, a fence line with an info
string (```` ```bash ````) opens a nested block whose bare closing line does not end
the file, so a README with code samples survives a 3-backtick outer fence. If
that reading never closes, the block is re-read flat when more fences follow (an
unclosed inner block) and reported as truncated otherwise. Inner blocks without
an info string cannot be told apart from the outer close: that is why the
prompt asks for 4-backtick fences around Markdown.

Fences without a path: when the reply produced files or edits, pathless blocks
that are bare or in an illustrative language (shell, console, text, tree
listings) are prose and ignored; any other pathless block is reported, because
the model most likely forgot a path. When the reply produced nothing else, a
single pathless HTML document is taken as ``index.html``. "the reply contained
no files" is reported only when no other problem already explains an empty
reply. A later whole file for the same path replaces an earlier one. The line
recognizers live in ``utils.model.reply_syntax``.

Everything the model names is untrusted: each path goes through
``utils.paths.safe_relative_path`` and hostile ones are dropped with a problem.
This module never touches the filesystem, never executes reply content, and
never raises on malformed replies: it reports precise problems for a re-ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from utils.model.reply_syntax import (
    COMMENT_PATH,
    DERIVE_LANGS,
    ILLUSTRATIVE_LANGS,
    SEARCH_MARKER,
    SHELL_LANGS,
    Fence,
    RawEdit,
    collect_fence,
    contradicts,
    edit_problem,
    info_path_and_lang,
    is_markdown,
    join_lines,
    looks_like_path,
    open_fence,
    path_from_line,
    read_edit,
)
from utils.paths import UnsafePath, safe_relative_path


@dataclass(frozen=True)
class Edit:
    """One SEARCH/REPLACE edit of one file (path already sanitized)."""

    path: str
    search: str
    replace: str


@dataclass
class ParsedReply:
    """What a reply held: whole files, edits, problems to re-ask about, and whether it was cut off."""

    files: dict[str, str] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    truncated: bool = False
    pathless_lines: list[int] = field(default_factory=list)  # code blocks reported as having no path
    derived: list[tuple[str, str]] = field(default_factory=list)  # (path, body) of each derive block


# ---------------------------------------------------------------- JSON files

def _json_files(value: object) -> tuple[list[tuple[str, str]], list[str]] | None:
    """(path, content) pairs and problems from a ``{"files": ...}`` object; None if it is not one."""
    if not isinstance(value, dict) or "files" not in value:
        return None
    files = value["files"]
    if isinstance(files, dict):
        pairs = [(str(k), v) for k, v in files.items() if isinstance(v, str)]
        bad = [f"JSON file '{k}' has no string content" for k, v in files.items() if not isinstance(v, str)]
        return pairs, bad
    if not isinstance(files, list):
        return [], ["the JSON 'files' value is neither a list nor an object"]
    pairs, problems = [], []
    for number, entry in enumerate(files, 1):
        entry = entry if isinstance(entry, dict) else {}
        path = next((entry[k] for k in ("path", "name", "filename") if isinstance(entry.get(k), str)), None)
        content = next((entry[k] for k in ("content", "contents", "code") if isinstance(entry.get(k), str)), None)
        if path is None:
            problems.append(f"JSON file entry {number} has no string 'path'")
        elif content is None:
            problems.append(f"JSON file entry {number} ('{path}') has no string 'content'")
        else:
            pairs.append((path, content))
    return pairs, problems


def _json_error(error: json.JSONDecodeError, text: str) -> tuple[str, bool]:
    """A problem text for invalid JSON and whether it looks cut off."""
    cut = error.pos >= len(text.rstrip()) - 1 or error.msg.startswith("Unterminated")
    where = f"{error.msg} at line {error.lineno} column {error.colno}"
    suffix = " (truncated)" if cut else ""
    return f"the reply's JSON files object is not valid JSON ({where}){suffix}", cut


# ---------------------------------------------------------------- the scanner

class _Scanner:
    """Walks the reply's lines once, collecting files, edits and problems."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.index = 0
        self.result = ParsedReply()
        self.pending: str | None = None
        self.gap = 0
        self.pathless: list[tuple[int, str, str]] = []

    def run(self) -> ParsedReply:
        """Scan every line and return the parsed reply."""
        while self.index < len(self.lines):
            line = self.lines[self.index]
            fence = open_fence(line)
            if fence:
                self._read_fence(fence)
            elif SEARCH_MARKER.match(line):
                self._read_bare_edit()
            else:
                self._read_prose(line)
        self._finish()
        return self.result

    def _read_prose(self, line: str) -> None:
        """A line outside fences: remember it if it names a path."""
        path = path_from_line(line)
        if path:
            self.pending, self.gap = path, 0
        elif line.strip():
            self.gap += 1
        self.index += 1

    def _take_pending(self, lang: str) -> str | None:
        """The path line before a fence, if it plausibly belongs to it (always consumed)."""
        path, self.pending = self.pending, None
        if path is None or self.gap == 0:
            return path
        return path if self.gap <= 2 and not contradicts(path, lang) else None

    def _read_fence(self, fence: Fence) -> None:
        """A fenced block: find its path, read to its closing line, interpret it."""
        opened_at = self.index
        info_path, lang = info_path_and_lang(fence.info)
        pending = self._take_pending(lang)
        path = info_path or pending
        markdown = is_markdown(path, lang)
        body, end, closed = collect_fence(self.lines, opened_at + 1, fence, markdown)
        if not closed and markdown:
            body, end, closed = self._flat_if_more_follows(fence, opened_at, (body, end, closed))
        if not closed:
            self.index = len(self.lines)
            self._cut_off(path, opened_at + 1)
            return
        self.index = end + 1
        self._block(path, lang, body, opened_at + 1)

    def _flat_if_more_follows(self, fence: Fence, opened_at: int,
                              nested: tuple[list[str], int, bool]) -> tuple[list[str], int, bool]:
        """A Markdown block that never closed when nested: an unclosed inner ```lang block (more fences
        follow the first bare closing line, so read it flat) or a cut-off reply (keep the failure)."""
        flat = collect_fence(self.lines, opened_at + 1, fence, False)
        if flat[2] and any(open_fence(line) for line in self.lines[flat[1] + 1:]):
            return flat
        return nested

    def _cut_off(self, path: str | None, line_number: int) -> None:
        """Record that the reply ends inside an open fence."""
        self.result.truncated = True
        if path:
            self.result.problems.append(f"the reply ends inside an unclosed code fence for '{path}' (truncated)")
        else:
            self.result.problems.append(
                f"the reply ends inside an unclosed code fence that opened at line {line_number} (truncated)")

    def _block(self, path: str | None, lang: str, body: list[str], line_number: int) -> None:
        """Interpret a closed fence's body as a derive request, edits, a JSON files object or a whole file."""
        if path is not None and lang.lower() in DERIVE_LANGS:
            safe = self._safe(path)
            if safe is not None:
                self.result.derived.append((safe, join_lines(body)))
        elif any(SEARCH_MARKER.match(line) for line in body):
            self._fenced_edits(path, body, line_number)
        elif path is not None:
            self._add_file(path, join_lines(body))
        elif not self._json_block(lang, body, line_number):
            comment = COMMENT_PATH.match(body[0]) if body and lang not in SHELL_LANGS else None
            if comment and looks_like_path(comment["path"]) and "." in comment["path"]:
                self._add_file(comment["path"], join_lines(body))
            else:
                self.pathless.append((line_number, lang, join_lines(body)))

    def _json_block(self, lang: str, body: list[str], line_number: int) -> bool:
        """Take a pathless ```json block holding a files object; False if it is not one."""
        text = "\n".join(body).strip()
        if lang not in ("json", "") or not text.startswith("{"):
            return False
        try:
            parsed = _json_files(json.loads(text))
        except json.JSONDecodeError as error:
            if '"files"' not in text:
                return False
            self.result.problems.append(f"the JSON block at line {line_number} is not valid JSON "
                                        f"({error.msg} at line {error.lineno} column {error.colno})")
            return True
        if parsed is None:
            return False
        self._add_pairs(*parsed)
        return True

    def _add_pairs(self, pairs: list[tuple[str, str]], problems: list[str]) -> None:
        """Add files from a JSON files object, with its problems."""
        self.result.problems.extend(problems)
        for path, content in pairs:
            self._add_file(path, content)

    def _fenced_edits(self, path: str | None, body: list[str], line_number: int) -> None:
        """Edits inside a fence; the path may also be the body's first line."""
        first = next((i for i, line in enumerate(body) if line.strip()), 0)
        if not SEARCH_MARKER.match(body[first]):
            path = path or path_from_line(body[first])
        index = 0
        while index < len(body):
            if SEARCH_MARKER.match(body[index]):
                raw = read_edit(body, index)
                self._add_edit(path, raw, line_number + 1 + index, in_fence=True)
                index = raw.end
            index += 1

    def _read_bare_edit(self) -> None:
        """One edit block outside any fence, for the last path line seen."""
        raw = read_edit(self.lines, self.index)
        self._add_edit(self.pending, raw, self.index + 1, in_fence=False)
        self.gap = 0
        self.index = raw.end + 1

    def _add_edit(self, path: str | None, raw: RawEdit, line_number: int, *, in_fence: bool) -> None:
        """Keep a well-formed edit for a safe path, or record why not."""
        if path is None:
            self.result.problems.append(f"an edit block (line {line_number}) had no file path before it")
            return
        if raw.error:
            self.result.truncated |= raw.error == "unterminated" and not in_fence
            self.result.problems.append(edit_problem(raw, path, in_fence))
            return
        safe = self._safe(path)
        if safe is not None:
            self.result.edits.append(Edit(safe, join_lines(raw.search), join_lines(raw.replace)))

    def _safe(self, path: str) -> str | None:
        """The sanitized path, or None with a problem when it is hostile."""
        try:
            return safe_relative_path(path, allow_workflows=True)  # the pipeline drops unasked workflows
        except UnsafePath as error:
            self.result.problems.append(f"file path '{path}' was rejected: {error}")
            return None

    def _add_file(self, path: str, content: str) -> None:
        """Keep a whole file under its sanitized path."""
        safe = self._safe(path)
        if safe is not None:
            self.result.files[safe] = content

    def _finish(self) -> None:
        """Judge pathless blocks, then note an empty reply."""
        result = self.result
        rescued = self._rescue_single_page()
        produced = bool(result.files or result.edits)
        for line_number, lang, _content in self.pathless:
            if line_number == rescued or (produced and lang in ILLUSTRATIVE_LANGS):
                continue
            result.pathless_lines.append(line_number)
            result.problems.append(
                f"a fenced block (line {line_number}) had no file path before it or in its info string")
        if not result.files and not result.edits and not result.derived and not result.problems:
            result.problems.append("the reply contained no files")

    def _rescue_single_page(self) -> int | None:
        """Take a reply that is one pathless HTML page (plus illustrations) as index.html."""
        if self.result.files or self.result.edits:
            return None
        pages = [b for b in self.pathless if _is_html_document(b[1], b[2])]
        others = [b for b in self.pathless if b not in pages and b[1] not in ILLUSTRATIVE_LANGS]
        if len(pages) != 1 or others:
            return None
        self.result.files["index.html"] = pages[0][2]
        return pages[0][0]


def _is_html_document(lang: str, content: str) -> bool:
    """Whether a pathless block is a whole HTML page."""
    head = content.lstrip()[:200].lower()
    return lang in ("html", "htm", "") and (head.startswith("<!doctype html") or head.startswith("<html"))


def parse_reply(text: str) -> ParsedReply:
    """Parse a model reply into files, edits and problems (never raises)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    stripped = text.strip()
    if stripped.startswith("{"):
        parsed = _parse_bare_json(stripped)
        if parsed is not None:
            return parsed
    return _Scanner(text.split("\n")).run()


def _parse_bare_json(text: str) -> ParsedReply | None:
    """A reply that is a bare JSON files object; None when it is something else."""
    try:
        value, _end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as error:
        if '"files"' not in text[:200] or "\n```" in text:
            return None
        problem, cut = _json_error(error, text)
        return ParsedReply(problems=[problem], truncated=cut)
    found = _json_files(value)
    if found is None:
        return None
    scanner = _Scanner([])
    scanner._add_pairs(*found)
    if not scanner.result.files and not scanner.result.problems:
        scanner.result.problems.append("the reply contained no files")
    return scanner.result
