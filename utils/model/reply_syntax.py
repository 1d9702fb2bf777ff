"""The line-level syntax of a model reply: fences, path lines, fence info strings, SEARCH/REPLACE blocks.

``utils.model.replies`` walks a reply with these recognizers; the tolerated
variants they accept are listed in its docstring. A fence opened with N
backticks (or tildes) closes only on a bare line of at least N of the same
character; inside a Markdown block, a fence line with an info string opens a
nested block. Pure functions of the text: never touches the filesystem, never
executes reply content, never raises on malformed input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from utils.paths import extension_of

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
SEARCH_MARKER = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
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
COMMENT_PATH = re.compile(r"^\s*(?:<!--|/\*|//|#|--)\s*(?:file(?:name)?\s*:\s*)?(?P<path>\S+?)\s*(?:-->|\*/)?\s*$",
                           re.IGNORECASE)

_MARKDOWN_LANGS = {"md", "markdown", "gfm", "mdx"}
_MARKDOWN_EXTS = {"md", "markdown", "mdx"}
ILLUSTRATIVE_LANGS = {"", "bash", "sh", "shell", "zsh", "console", "shell-session", "powershell", "ps", "ps1",
                       "cmd", "bat", "text", "txt", "plaintext", "plain", "output", "tree", "none"}
SHELL_LANGS = ILLUSTRATIVE_LANGS - {""}
DERIVE_LANGS = frozenset({"derive", "derived"})  # a block asking the service to make the file (utils.model.derived)
_LANG_EXTS = {
    "html": {"html", "htm"}, "css": {"css"}, "js": {"js", "mjs", "cjs", "jsx"},
    "javascript": {"js", "mjs", "cjs", "jsx"}, "json": {"json", "webmanifest"},
    "markdown": _MARKDOWN_EXTS, "md": _MARKDOWN_EXTS, "python": {"py"}, "py": {"py"},
}


@dataclass(frozen=True)
class Fence:
    """An opening fence line: its character, length, indentation and info string."""

    char: str
    size: int
    indent: int
    info: str


def open_fence(line: str) -> Fence | None:
    """The fence a line opens, if it is a fence line."""
    match = _FENCE_OPEN.match(line)
    if not match:
        return None
    fence, info = match["fence"], match["info"].strip()
    if fence[0] == "`" and "`" in info:
        return None
    return Fence(fence[0], len(fence), len(match["indent"].expandtabs(4)), info)


def _closes(line: str, fence: Fence) -> bool:
    """Whether ``line`` is a bare fence line that closes ``fence``."""
    text = line.strip()
    return len(text) >= fence.size and set(text) == {fence.char}


def looks_like_path(token: str) -> bool:
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


def path_from_line(line: str) -> str | None:
    """The path a line names when it holds only a (decorated) path."""
    text = line.strip()
    if not text or len(text) > 300 or open_fence(line):
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
    return text if looks_like_path(text) else None


def info_path_and_lang(info: str) -> tuple[str | None, str]:
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
    if colon and looks_like_path(rest):
        return rest, lang.lower()
    if len(tokens) == 1:
        if looks_like_path(first) and first.lower() not in _LANG_EXTS:
            return first, extension_of(first)
        return None, first.lower()
    path = next((t for t in tokens[1:] if looks_like_path(t)), None)
    return path, first.lower()


def is_markdown(path: str | None, lang: str) -> bool:
    """Whether a block holds a Markdown file."""
    return lang in _MARKDOWN_LANGS or (path is not None and extension_of(path) in _MARKDOWN_EXTS)


def contradicts(path: str, lang: str) -> bool:
    """Whether a fence language clearly belongs to another kind of file than ``path``."""
    expected = _LANG_EXTS.get(lang)
    return expected is not None and extension_of(path) not in expected


# ---------------------------------------------------------------- fences and edits

def collect_fence(lines: list[str], start: int, fence: Fence, nested: bool) -> tuple[list[str], int, bool]:
    """Body lines of a fence from ``start``; returns (body, index of the closing line, closed)."""
    body: list[str] = []
    stack: list[Fence] = []
    for index in range(start, len(lines)):
        line = lines[index]
        if stack:
            if _closes(line, stack[-1]):
                stack.pop()
            elif (inner := open_fence(line)) and inner.info and inner.char == fence.char:
                stack.append(inner)
        elif _closes(line, fence):
            return body, index, True
        elif nested and (inner := open_fence(line)) and inner.info and _could_close(inner, fence):
            stack.append(inner)
        body.append(_dedent(line, fence.indent))
    return body, len(lines), False


def _could_close(inner: Fence, outer: Fence) -> bool:
    """Whether the bare line closing ``inner`` would also close ``outer``."""
    return inner.char == outer.char and inner.size >= outer.size


def _dedent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces (the fence's own indentation)."""
    removable = len(line) - len(line.lstrip(" "))
    return line[min(indent, removable):]


def join_lines(lines: list[str]) -> str:
    """Lines as file text ending with a newline (empty for no lines)."""
    return "".join(line + "\n" for line in lines)


@dataclass
class RawEdit:
    """One edit block as written: its lines, or the reason it is unusable."""

    search: list[str]
    replace: list[str]
    end: int
    error: str | None = None


def read_edit(lines: list[str], start: int) -> RawEdit:
    """Read one SEARCH/REPLACE block whose SEARCH marker is at ``start``."""
    search: list[str] = []
    index = start + 1
    while index < len(lines) and not _DIVIDER.match(lines[index]):
        if _REPLACE.match(lines[index]):
            return RawEdit(search, [], index, "separator")
        if SEARCH_MARKER.match(lines[index]):
            return RawEdit(search, [], index - 1, "separator")
        search.append(lines[index])
        index += 1
    if index >= len(lines):
        return RawEdit(search, [], len(lines), "unterminated")
    replace: list[str] = []
    index += 1
    while index < len(lines) and not _REPLACE.match(lines[index]):
        if SEARCH_MARKER.match(lines[index]):
            return RawEdit(search, replace, index - 1, "end")
        replace.append(lines[index])
        index += 1
    if index >= len(lines):
        return RawEdit(search, replace, len(lines), "unterminated")
    return RawEdit(search, replace, index)


def edit_problem(raw: RawEdit, path: str, in_fence: bool) -> str:
    """The problem text for an unusable edit block."""
    if raw.error == "separator":
        return f"an edit block for '{path}' has no '=======' separator"
    if raw.error == "unterminated" and not in_fence:
        return f"the reply ends inside an edit block for '{path}' (truncated)"
    return f"an edit block for '{path}' has no '>>>>>>> REPLACE' end marker"
