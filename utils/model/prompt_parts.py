"""The shared pieces of every prompt: templates, Markdown quoting, and the current files as context.

Templates live under ``utils/model/prompts/`` (``string.Template`` placeholders
such as ``$brief``; every placeholder must be given). Quoting picks fences and
backtick runs that the quoted text cannot close. The file context shows files in
full, never cut mid-file, while their blocks fit a byte budget; files are taken in
priority order (those the brief or checks name, then ``index.html``, then other
code, then ``README.md``, then the rest) and the text files that no longer fit are
listed by name and size only. Binary files are always listed, never shown.

Used by generation (``prompt``) and the self-check's repairs. Formats only what
it is given: never reads anything but its own templates, never adds a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from string import Template

from utils.paths import extension_of

PROMPTS_DIR = Path(__file__).parent / "prompts"

_LANGS = {"html": "html", "htm": "html", "css": "css", "js": "javascript", "mjs": "javascript",
          "json": "json", "md": "markdown", "csv": "csv", "svg": "xml", "xml": "xml", "txt": "text",
          "py": "python", "tsv": "text", "yml": "yaml", "yaml": "yaml"}


@cache
def _template(name: str) -> Template:
    """A prompt template from ``utils/model/prompts/``."""
    return Template((PROMPTS_DIR / name).read_text(encoding="utf-8"))


def render(name: str, **values: str) -> str:
    """Fill a template; every placeholder must be given."""
    return _template(name).substitute(values).strip() + "\n"


def _fence_for(text: str, minimum: int = 3) -> str:
    """A backtick fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def fenced(text: str, lang: str = "", minimum: int = 3) -> str:
    """``text`` in a fenced block that its own backticks cannot close."""
    fence = _fence_for(text, minimum)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{lang}\n{body}{fence}"


def inline_code(text: str) -> str:
    """``text`` as inline code, with a delimiter its own backticks cannot end."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


# ---------------------------------------------------------------- revision context

def _is_text(data: bytes) -> bool:
    """Whether bytes are UTF-8 text (and not binary with a NUL)."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mentioned(path: str, text: str) -> bool:
    """Whether the brief or checks name this file (by path or by a distinctive base name)."""
    base = path.rsplit("/", 1)[-1]
    return path in text or (len(base) >= 5 and base in text)


def _priority(path: str, mention_text: str) -> tuple[bool, bool, bool, bool, str]:
    """Sort key: files the brief/checks mention, then index.html, then code, then the rest."""
    code = extension_of(path) in ("html", "htm", "js", "mjs", "css")
    return (not _mentioned(path, mention_text), path != "index.html", not code, path != "README.md", path)


def _file_block(path: str, data: bytes, license_text: bool = False) -> str:
    """One current file as the model should reply: path line, then a fenced block (LICENSE by name only,
    unless ``license_text``)."""
    if path == "LICENSE" and not license_text:
        return f"- `LICENSE` ({len(data):,} bytes; MIT, maintained by the service: leave it out)"
    if path == ".nojekyll" and not data.strip():
        return "- `.nojekyll` (empty; written by the service so Pages serves every file as it is: leave it out)"
    if not _is_text(data):
        return f"- {inline_code(path)} (binary, {len(data):,} bytes; kept as is)"
    lang = _LANGS.get(extension_of(path), "")
    minimum = 4 if lang == "markdown" else 3
    return f"{path}\n{fenced(data.decode('utf-8'), lang, minimum)}"


def file_context(files: dict[str, bytes], mention_text: str, budget: int, *,
                 license_text: bool = False) -> tuple[str, list[tuple[str, int]]]:
    """The current files in full within ``budget`` bytes (priority order), and the omitted ones
    (``license_text``: show LICENSE like any file, for a reader judging it)."""
    shown: list[str] = []
    omitted: list[tuple[str, int]] = []
    used = 0
    for path in sorted(files, key=lambda p: _priority(p, mention_text)):
        block = _file_block(path, files[path], license_text)
        size = len(block.encode("utf-8"))
        if used + size > budget and _is_text(files[path]) and (license_text or path != "LICENSE"):
            omitted.append((path, len(files[path])))
            continue
        shown.append(block)
        used += size
    return "\n\n".join(shown) or "(no files)", omitted


def omitted_note(omitted: Iterable[tuple[str, int]]) -> str:
    """Which files were left out for length, and how to change them anyway."""
    lines = [f"- {inline_code(path)} ({size:,} bytes)" for path, size in omitted]
    if not lines:
        return "All current files are shown above."
    return ("These files exist but were omitted for length; they stay unchanged unless you send a "
            "complete replacement (do not send SEARCH/REPLACE edits for them):\n" + "\n".join(lines))
