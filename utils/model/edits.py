"""Apply a model reply to the current files: whole files first, then SEARCH/REPLACE edits in order.

``apply_reply`` is the one place a reply becomes files (generation and the
self-check's repairs both use it); it also says what blocks using the result: an
edit that matches nowhere, a cut-off or empty reply, or (when a page is required)
no ``index.html``.
Edits: exact match first (first occurrence), then a line match ignoring
leading/trailing whitespace, re-indented to the file; an empty SEARCH creates a
missing file or appends to an existing one. A miss is explained by quoting the
file's closest lines, so a re-ask can be precise.

Never touches the filesystem, never executes reply content, never raises on a
bad edit, and never lets a hostile path into the files (each edit's path is
checked again with ``utils.paths.safe_relative_path``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from utils.model.replies import Edit, ParsedReply, parse_reply
from utils.paths import UnsafePath, safe_relative_path

NO_INDEX = "the app has no index.html at its root"


@dataclass(frozen=True)
class AppliedReply:
    """The files after a reply, what the reply held, and the problems that block using the files."""

    files: dict[str, bytes]
    parsed: ParsedReply
    blocking: list[str]


def apply_reply(text: str, base: Mapping[str, bytes], protected: Collection[str] = (), *,
                require_index: bool = False) -> AppliedReply:
    """Parse ``text`` and apply it over ``base``; ``protected`` files keep their ``base`` content.

    ``require_index``: the brief asks for a page (or a check inspects one), so no ``index.html`` blocks."""
    parsed = parse_reply(text)
    files = {**base, **{path: content.encode("utf-8") for path, content in parsed.files.items()}}
    files, edit_failures = apply_edits(files, parsed.edits)
    files.update({path: base[path] for path in protected if path in base})
    blocking = [*edit_failures, *_blocking_parse_problems(parsed)]
    if require_index and "index.html" not in files:
        blocking.append(NO_INDEX)
    return AppliedReply(files, parsed, blocking)


def _blocking_parse_problems(parsed: ParsedReply) -> list[str]:
    """Parse problems that make a reply unusable on their own: cut off, or nothing in it."""
    problems = [p for p in parsed.problems if "truncated" in p] if parsed.truncated else []
    if not parsed.files and not parsed.edits and not parsed.derived:
        problems.extend(parsed.problems or ["the reply contained no files"])
    return problems


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
        path = safe_relative_path(edit.path, allow_workflows=True)
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
