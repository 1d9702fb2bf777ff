"""Parse a model's reply into files and SEARCH/REPLACE edits, and apply those edits.

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
reply. A later whole file for the same path replaces an earlier one. The caller
applies ``files`` over the previous round's files first, then ``edits`` in order.
Edits: exact match first (first occurrence), then a line match ignoring
leading/trailing whitespace, re-indented to the file; an empty SEARCH creates a
missing file or appends to an existing one.

Everything the model names is untrusted: each path goes through
``utils.paths.safe_relative_path`` and hostile ones are dropped with a problem.
This module never touches the filesystem, never executes reply content, and
never raises on malformed replies: it reports precise problems for a re-ask.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

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


# ---------------------------------------------------------------- recognizers

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")

_HEADING = re.compile(r"^#{1,6}\s*")
_LIST_MARKER = re.compile(r"^(?:\d+[.)]|[-*+])\s+")
_LABEL = re.compile(r"^(?:file\s*name|file|path)(?:\s*:\s*|\s+[-\u2013\u2014]\s+|\s+)", re.IGNORECASE)
_TRAILING_NOTE = re.compile(r"\s+\([^()]*\)$")
_WRAPPERS = ("**", "__", "`", "*", "_", '"', "'")
_PATH_CHARS = re.compile(r"^[^\s<>\"'`*|?,;()\[\]{}=!$]+$")
_EXTENSION = re.compile(r"\.[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*$")
_EXTENSIONLESS = {"license", "readme", "makefile", "dockerfile", "cname", "procfile"}
_INFO_ATTRIBUTE = re.compile(r"""\b(?:title|file|filename|path|name)\s*=\s*(["']?)([^"'\s]+)\1""")
_COMMENT_PATH = re.compile(r"^\s*(?:<!--|/\*|//|#|--)\s*(?:file(?:name)?\s*:\s*)?(?P<path>\S+?)\s*(?:-->|\*/)?\s*$",
                           re.IGNORECASE)

_MARKDOWN_LANGS = {"md", "markdown", "gfm", "mdx"}
_MARKDOWN_EXTS = {"md", "markdown", "mdx"}
_ILLUSTRATIVE_LANGS = {"", "bash", "sh", "shell", "zsh", "console", "shell-session", "powershell", "ps", "ps1",
                       "cmd", "bat", "text", "txt", "plaintext", "plain", "output", "tree", "none"}
_SHELL_LANGS = _ILLUSTRATIVE_LANGS - {""}
_LANG_EXTS = {
    "html": {"html", "htm"}, "css": {"css"}, "js": {"js", "mjs", "cjs", "jsx"},
    "javascript": {"js", "mjs", "cjs", "jsx"}, "json": {"json", "webmanifest"},
    "markdown": _MARKDOWN_EXTS, "md": _MARKDOWN_EXTS, "python": {"py"}, "py": {"py"},
}


@dataclass(frozen=True)
class _Fence:
    """An opening fence line: its character, length, indentation and info string."""

    char: str
    size: int
    indent: int
    info: str


def _open_fence(line: str) -> _Fence | None:
    """The fence a line opens, if it is a fence line."""
    match = _FENCE_OPEN.match(line)
    if not match:
        return None
    fence, info = match["fence"], match["info"].strip()
    if fence[0] == "`" and "`" in info:
        return None
    return _Fence(fence[0], len(fence), len(match["indent"].expandtabs(4)), info)


def _closes(line: str, fence: _Fence) -> bool:
    """Whether ``line`` is a bare fence line that closes ``fence``."""
    text = line.strip()
    return len(text) >= fence.size and set(text) == {fence.char}


def _looks_like_path(token: str) -> bool:
    """Whether a bare token reads as a file path rather than a word or a URL."""
    if not token or len(token) > 300 or "://" in token or not _PATH_CHARS.match(token):
        return False
    last = token.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if "/" in token or "\\" in token:
        return True
    return bool(_EXTENSION.search(last)) or last.lower() in _EXTENSIONLESS


def _strip_wrapper(text: str) -> str:
    """Remove one pair of Markdown emphasis or quote characters around ``text``."""
    for wrapper in _WRAPPERS:
        if len(text) > 2 * len(wrapper) and text.startswith(wrapper) and text.endswith(wrapper):
            return text[len(wrapper):-len(wrapper)].strip()
    return text


def _path_from_line(line: str) -> str | None:
    """The path a line names when it holds only a (decorated) path."""
    text = line.strip()
    if not text or len(text) > 300 or _open_fence(line):
        return None
    for _ in range(8):
        before = text
        text = _HEADING.sub("", text)
        text = _LIST_MARKER.sub("", text)
        text = _LABEL.sub("", text)
        text = _TRAILING_NOTE.sub("", text).rstrip(":").strip()
        text = _strip_wrapper(text)
        if text == before:
            break
    return text if _looks_like_path(text) else None


def _info_path_and_lang(info: str) -> tuple[str | None, str]:
    """Split a fence info string into (path or None, language)."""
    tokens = info.split()
    if not tokens:
        return None, ""
    first = tokens[0]
    attribute = _INFO_ATTRIBUTE.search(info)
    if attribute:
        lang = "" if _INFO_ATTRIBUTE.match(first) else first
        return attribute.group(2), lang.lower()
    lang, colon, rest = first.partition(":")
    if colon and _looks_like_path(rest):
        return rest, lang.lower()
    if len(tokens) == 1:
        if _looks_like_path(first) and first.lower() not in _LANG_EXTS:
            return first, _extension(first)
        return None, first.lower()
    path = next((t for t in tokens[1:] if _looks_like_path(t)), None)
    return path, first.lower()


def _extension(path: str) -> str:
    """The lower-case extension of a path, without the dot."""
    base = path.rsplit("/", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


def _is_markdown(path: str | None, lang: str) -> bool:
    """Whether a block holds a Markdown file."""
    return lang in _MARKDOWN_LANGS or (path is not None and _extension(path) in _MARKDOWN_EXTS)


def _contradicts(path: str, lang: str) -> bool:
    """Whether a fence language clearly belongs to another kind of file than ``path``."""
    expected = _LANG_EXTS.get(lang)
    return expected is not None and _extension(path) not in expected


# ---------------------------------------------------------------- fences and edits

def _collect_fence(lines: list[str], start: int, fence: _Fence, nested: bool) -> tuple[list[str], int, bool]:
    """Body lines of a fence from ``start``; returns (body, index of the closing line, closed)."""
    body: list[str] = []
    stack: list[_Fence] = []
    for index in range(start, len(lines)):
        line = lines[index]
        if stack:
            if _closes(line, stack[-1]):
                stack.pop()
            elif (inner := _open_fence(line)) and inner.info and inner.char == fence.char:
                stack.append(inner)
        elif _closes(line, fence):
            return body, index, True
        elif nested and (inner := _open_fence(line)) and inner.info and _could_close(inner, fence):
            stack.append(inner)
        body.append(_dedent(line, fence.indent))
    return body, len(lines), False


def _could_close(inner: _Fence, outer: _Fence) -> bool:
    """Whether the bare line closing ``inner`` would also close ``outer``."""
    return inner.char == outer.char and inner.size >= outer.size


def _dedent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces (the fence's own indentation)."""
    removable = len(line) - len(line.lstrip(" "))
    return line[min(indent, removable):]


def _join(lines: list[str]) -> str:
    """Lines as file text ending with a newline (empty for no lines)."""
    return "".join(line + "\n" for line in lines)


@dataclass
class _RawEdit:
    """One edit block as written: its lines, or the reason it is unusable."""

    search: list[str]
    replace: list[str]
    end: int
    error: str | None = None


def _read_edit(lines: list[str], start: int) -> _RawEdit:
    """Read one SEARCH/REPLACE block whose SEARCH marker is at ``start``."""
    search: list[str] = []
    index = start + 1
    while index < len(lines) and not _DIVIDER.match(lines[index]):
        if _REPLACE.match(lines[index]):
            return _RawEdit(search, [], index, "separator")
        if _SEARCH.match(lines[index]):
            return _RawEdit(search, [], index - 1, "separator")
        search.append(lines[index])
        index += 1
    if index >= len(lines):
        return _RawEdit(search, [], len(lines), "unterminated")
    replace: list[str] = []
    index += 1
    while index < len(lines) and not _REPLACE.match(lines[index]):
        if _SEARCH.match(lines[index]):
            return _RawEdit(search, replace, index - 1, "end")
        replace.append(lines[index])
        index += 1
    if index >= len(lines):
        return _RawEdit(search, replace, len(lines), "unterminated")
    return _RawEdit(search, replace, index)


def _edit_problem(raw: _RawEdit, path: str, in_fence: bool) -> str:
    """The problem text for an unusable edit block."""
    if raw.error == "separator":
        return f"an edit block for '{path}' has no '=======' separator"
    if raw.error == "unterminated" and not in_fence:
        return f"the reply ends inside an edit block for '{path}' (truncated)"
    return f"an edit block for '{path}' has no '>>>>>>> REPLACE' end marker"


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
            fence = _open_fence(line)
            if fence:
                self._read_fence(fence)
            elif _SEARCH.match(line):
                self._read_bare_edit()
            else:
                self._read_prose(line)
        self._finish()
        return self.result

    def _read_prose(self, line: str) -> None:
        """A line outside fences: remember it if it names a path."""
        path = _path_from_line(line)
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
        return path if self.gap <= 2 and not _contradicts(path, lang) else None

    def _read_fence(self, fence: _Fence) -> None:
        """A fenced block: find its path, read to its closing line, interpret it."""
        opened_at = self.index
        info_path, lang = _info_path_and_lang(fence.info)
        pending = self._take_pending(lang)
        path = info_path or pending
        markdown = _is_markdown(path, lang)
        body, end, closed = _collect_fence(self.lines, opened_at + 1, fence, markdown)
        if not closed and markdown:
            body, end, closed = self._flat_if_more_follows(fence, opened_at, (body, end, closed))
        if not closed:
            self.index = len(self.lines)
            self._cut_off(path, opened_at + 1)
            return
        self.index = end + 1
        self._block(path, lang, body, opened_at + 1)

    def _flat_if_more_follows(self, fence: _Fence, opened_at: int,
                              nested: tuple[list[str], int, bool]) -> tuple[list[str], int, bool]:
        """A Markdown block that never closed when nested: an unclosed inner ```lang block (more fences
        follow the first bare closing line, so read it flat) or a cut-off reply (keep the failure)."""
        flat = _collect_fence(self.lines, opened_at + 1, fence, False)
        if flat[2] and any(_open_fence(line) for line in self.lines[flat[1] + 1:]):
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
        """Interpret a closed fence's body as edits, a JSON files object or a whole file."""
        if any(_SEARCH.match(line) for line in body):
            self._fenced_edits(path, body, line_number)
        elif path is not None:
            self._add_file(path, _join(body))
        elif not self._json_block(lang, body, line_number):
            comment = _COMMENT_PATH.match(body[0]) if body and lang not in _SHELL_LANGS else None
            if comment and _looks_like_path(comment["path"]) and "." in comment["path"]:
                self._add_file(comment["path"], _join(body))
            else:
                self.pathless.append((line_number, lang, _join(body)))

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
        if not _SEARCH.match(body[first]):
            path = path or _path_from_line(body[first])
        index = 0
        while index < len(body):
            if _SEARCH.match(body[index]):
                raw = _read_edit(body, index)
                self._add_edit(path, raw, line_number + 1 + index, in_fence=True)
                index = raw.end
            index += 1

    def _read_bare_edit(self) -> None:
        """One edit block outside any fence, for the last path line seen."""
        raw = _read_edit(self.lines, self.index)
        self._add_edit(self.pending, raw, self.index + 1, in_fence=False)
        self.gap = 0
        self.index = raw.end + 1

    def _add_edit(self, path: str | None, raw: _RawEdit, line_number: int, *, in_fence: bool) -> None:
        """Keep a well-formed edit for a safe path, or record why not."""
        if path is None:
            self.result.problems.append(f"an edit block (line {line_number}) had no file path before it")
            return
        if raw.error:
            self.result.truncated |= raw.error == "unterminated" and not in_fence
            self.result.problems.append(_edit_problem(raw, path, in_fence))
            return
        safe = self._safe(path)
        if safe is not None:
            self.result.edits.append(Edit(safe, _join(raw.search), _join(raw.replace)))

    def _safe(self, path: str) -> str | None:
        """The sanitized path, or None with a problem when it is hostile."""
        try:
            return safe_relative_path(path)
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
            if line_number == rescued or (produced and lang in _ILLUSTRATIVE_LANGS):
                continue
            result.pathless_lines.append(line_number)
            result.problems.append(
                f"a fenced block (line {line_number}) had no file path before it or in its info string")
        if not result.files and not result.edits and not result.problems:
            result.problems.append("the reply contained no files")

    def _rescue_single_page(self) -> int | None:
        """Take a reply that is one pathless HTML page (plus illustrations) as index.html."""
        if self.result.files or self.result.edits:
            return None
        pages = [b for b in self.pathless if _is_html_document(b[1], b[2])]
        others = [b for b in self.pathless if b not in pages and b[1] not in _ILLUSTRATIVE_LANGS]
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


# ---------------------------------------------------------------- applying edits

def apply_edits(files: dict[str, bytes], edits: Sequence[Edit]) -> tuple[dict[str, bytes], list[str]]:
    """Apply edits in order; return the new files and one failure message per edit that did not apply."""
    result = dict(files)
    failures: list[str] = []
    for edit in edits:
        failure = _apply_one(result, edit)
        if failure:
            failures.append(failure)
    return result, failures


def _apply_one(files: dict[str, bytes], edit: Edit) -> str | None:
    """Apply one edit to ``files`` in place; return a failure message or None."""
    try:
        path = safe_relative_path(edit.path)
    except UnsafePath as error:
        return f"an edit for '{edit.path}' was rejected: {error}"
    current = files.get(path)
    if current is None:
        if edit.search.strip():
            return _missing_file(path, files)
        files[path] = edit.replace.encode("utf-8")
        return None
    try:
        text = current.decode("utf-8")
    except UnicodeDecodeError:
        return f"an edit for '{path}' failed: '{path}' is a binary file; send it whole instead"
    updated = _edited_text(text, edit)
    if updated is None:
        return _describe_miss(path, text, edit.search)
    if updated != text:
        files[path] = updated.encode("utf-8")
    return None


def _missing_file(path: str, files: dict[str, bytes]) -> str:
    """Failure text for an edit of a file that does not exist."""
    names = ", ".join(sorted(files)[:20]) or "none"
    return (f"an edit for '{path}' failed: there is no file '{path}' (existing files: {names}); "
            "send a new file whole, or use an empty SEARCH section")


def _edited_text(text: str, edit: Edit) -> str | None:
    """The text with the edit applied (exact match first, then whitespace-tolerant); None if no match."""
    newline = "\r\n" if "\r\n" in text else "\n"
    search, replace = _with_newline(edit.search, newline), _with_newline(edit.replace, newline)
    if not search.strip():
        return _append(text, replace, newline)
    position = text.find(search)
    if position >= 0:
        return text[:position] + replace + text[position + len(search):]
    return _replace_tolerant(text, search, replace, newline)


def _with_newline(text: str, newline: str) -> str:
    """``text`` with its line ends converted to ``newline``."""
    normalized = text.replace("\r\n", "\n")
    return normalized.replace("\n", newline) if newline != "\n" else normalized


def _append(text: str, addition: str, newline: str) -> str:
    """An empty SEARCH on an existing file appends the REPLACE text."""
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + addition


def _trim_blank(lines: list[str]) -> list[str]:
    """Lines without leading and trailing blank lines."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _replace_tolerant(text: str, search: str, replace: str, newline: str) -> str | None:
    """Match SEARCH line by line ignoring leading/trailing whitespace; replace the matched lines."""
    lines = text.splitlines(keepends=True)
    wanted = _trim_blank(search.splitlines())
    if not wanted:
        return None
    keys = [line.strip() for line in lines]
    target = [line.strip() for line in wanted]
    size = len(target)
    for start in range(len(lines) - size + 1):
        if keys[start:start + size] == target:
            return _splice(lines, start, size, wanted, replace, newline)
    return None


def _indent_of(line: str) -> str:
    """The leading whitespace of a line."""
    return line[: len(line) - len(line.lstrip())]


def _splice(lines: list[str], start: int, size: int, wanted: list[str], replace: str, newline: str) -> str:
    """Replace ``lines[start:start+size]`` with REPLACE, re-indented to the file's indentation."""
    file_indent = _indent_of(lines[start])
    search_indent = _indent_of(wanted[0])
    new_lines = [_reindent(line, search_indent, file_indent) for line in _trim_blank(replace.splitlines())]
    block = "".join(line + newline for line in new_lines)
    if not lines[start + size - 1].endswith(("\n", "\r")):
        block = block[: -len(newline)] if block else block
    return "".join(lines[:start]) + block + "".join(lines[start + size:])


def _reindent(line: str, search_indent: str, file_indent: str) -> str:
    """Move a REPLACE line from the SEARCH's indentation to the file's."""
    if not line.strip():
        return ""
    if line.startswith(search_indent):
        return file_indent + line[len(search_indent):]
    return line


# ---------------------------------------------------------------- explaining a miss

_SHOWN_LINES = 15
_MAX_WINDOWS = 4000


def _describe_miss(path: str, text: str, search: str) -> str:
    """Failure text quoting the SEARCH and the file's closest lines, with line numbers."""
    wanted = _trim_blank(search.replace("\r\n", "\n").splitlines())
    lines = text.splitlines()
    quoted_search = "\n".join(f"    {line}" for line in wanted[:_SHOWN_LINES])
    message = f"an edit for '{path}' failed: its SEARCH text matches nothing in the file. SEARCH was:\n{quoted_search}"
    if not lines:
        return message + f"\n'{path}' is empty; send it whole instead."
    start, end = _closest_window(lines, wanted)
    shown = "\n".join(f"    {n:>5} | {lines[n - 1]}" for n in range(start + 1, min(end, start + _SHOWN_LINES) + 1))
    return (f"{message}\nThe closest lines in '{path}' (lines {start + 1}-{end}) are:\n{shown}\n"
            "Copy SEARCH lines exactly from the current file, or send the whole file.")


def _closest_window(lines: list[str], wanted: list[str]) -> tuple[int, int]:
    """(start, end) of the run of file lines most similar to ``wanted`` (0-based, end exclusive)."""
    size = max(1, min(len(wanted), len(lines)))
    stripped = [line.strip() for line in lines]
    wanted_set = {line.strip() for line in wanted}
    prefix = list(accumulate((line in wanted_set for line in stripped), initial=0))
    matcher = difflib.SequenceMatcher(None, b="\n".join(line.strip() for line in wanted), autojunk=False)

    def shared(start: int) -> int:
        return prefix[start + size] - prefix[start]

    def similarity(start: int, exact: bool) -> float:
        matcher.set_seq1("\n".join(stripped[start:start + size]))
        return matcher.ratio() if exact else matcher.quick_ratio()

    starts = _window_starts(len(lines) - size + 1, shared)
    shortlist = sorted(starts, key=lambda i: (shared(i), similarity(i, False), -i), reverse=True)[:12]
    best = max(shortlist, key=lambda i: (similarity(i, True), shared(i), -i), default=0)
    return best, best + size


def _window_starts(total: int, shared: Callable[[int], int]) -> list[int]:
    """Candidate window starts: all of them, or for huge files those sharing a line plus a sample."""
    if total <= _MAX_WINDOWS:
        return list(range(total))
    step = max(1, total // _MAX_WINDOWS)
    return sorted({i for i in range(total) if shared(i)} | set(range(0, total, step)))
