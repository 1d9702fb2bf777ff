"""Build the chat messages that ask the model for an app (round 1) or its revision.

The wording lives in readable templates under ``utils/model/prompts/`` (``string.Template``
placeholders such as ``$brief``); this module fills them from the request, the
decoded attachments, the repository target and, for revisions, the previous
round's files. It must never put a secret in a prompt: it reads only the brief,
the checks, attachment names/previews and public URLs (never the shared secret,
tokens, the requester's email, the nonce or the evaluation URL).

Revisions show the current files in full, never cut mid-file, while their
rendered blocks fit ``MAX_CONTEXT_BYTES``. Beyond it, files are taken in priority
order (those the brief or checks name, then ``index.html``, then other code, then
``README.md``, then the rest) and the text files that no longer fit are listed by
name and size only (the prompt asks for whole replacements of those, not edits). Binary
files are always listed by name and size, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from string import Template

from utils.models import Attachment, Attachments, Check, LinkedAttachment, PreviousRound, RepoTarget, TaskRequest

PROMPTS_DIR = Path(__file__).parent / "prompts"
MAX_PREVIEW_CHARS = 2000
# Bytes of current files shown to the model in a revision (~75-85k tokens of code): with a 16k-token
# reply and the rest of the prompt this still fits a 128k-token context window.
MAX_CONTEXT_BYTES = 300_000

SELF_CHECK = (
    "- Every check above holds on page load with no user action; every id and selector in the contract exists.",
    "- Every URL is relative (`./...`); every library URL pins an exact version; no server code, no build step.",
    "- Attachments are read from exactly the paths listed, relative to index.html.",
    "- README.md has a title, summary, the live link, setup, usage, how the code works and `## License` (MIT).",
    "- Every file is complete (no placeholders), each is a path line plus a fenced block, Markdown uses ````.",
)

_LANGS = {"html": "html", "htm": "html", "css": "css", "js": "javascript", "mjs": "javascript",
          "json": "json", "md": "markdown", "csv": "csv", "svg": "xml", "xml": "xml", "txt": "text",
          "py": "python", "tsv": "text", "yml": "yaml", "yaml": "yaml"}


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    """A prompt template from ``utils/model/prompts/``."""
    return Template((PROMPTS_DIR / name).read_text(encoding="utf-8"))


def _render(name: str, **values: str) -> str:
    """Fill a template; every placeholder must be given."""
    return _template(name).substitute(values).strip() + "\n"


# ---------------------------------------------------------------- public API

def build_messages(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                   previous: PreviousRound | None = None, *,
                   max_context_bytes: int = MAX_CONTEXT_BYTES) -> list[dict]:
    """The OpenAI chat messages (system + user) asking for the app or its revision."""
    system = {"role": "system", "content": _render("system.md")}
    if previous is None:
        user = _round1_prompt(request, attachments, target)
    else:
        user = _revision_prompt(request, attachments, target, previous, max_context_bytes)
    return [system, {"role": "user", "content": user}]


def reask_message(problems: Sequence[str]) -> dict:
    """A user message listing exactly what was wrong and asking for the complete reply again."""
    listed = "\n".join(_bullet(problem) for problem in problems) or "- the reply could not be parsed"
    return {"role": "user", "content": _render("reask.md", problems=listed)}


def check_contract(checks: Sequence[Check]) -> list[str]:
    """Element ids, selectors, document.title conditions and window globals the checks reference."""
    found: list[str] = []
    for check in checks:
        sources = dict.fromkeys(s for s in (check.js, check.text) if s)
        items = [item for source in sources for item in _js_contract(source)]
        if not items and check.js is None:
            items = _prose_contract(check.text)
        found.extend(items)
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- prompts

def _common_values(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                   checks: Sequence[Check]) -> dict[str, str]:
    """Placeholders shared by the round-1 and revision templates."""
    return {
        "task": request.task,
        "round": str(request.round),
        "brief": request.brief.strip() or "(no brief given)",
        "pages_url": target.pages_url,
        "repo_url": target.repo_url,
        "checks": _numbered_checks(request.checks),
        "contract": _contract_list(check_contract(checks)),
        "attachments": _attachment_list(attachments),
        "self_check": "\n".join(SELF_CHECK),
    }


def _round1_prompt(request: TaskRequest, attachments: Attachments, target: RepoTarget) -> str:
    """The user message for a first build."""
    return _render("round1.md", **_common_values(request, attachments, target, request.checks))


def _revision_prompt(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                     previous: PreviousRound, max_context_bytes: int) -> str:
    """The user message for a revision of the previous round's files."""
    values = _common_values(request, attachments, target, (*request.checks, *previous.checks))
    mention_text = " ".join([request.brief, *(c.text for c in request.checks), *(c.text for c in previous.checks)])
    files, omitted = _file_context(previous.files, mention_text, max_context_bytes)
    values.update(
        previous_round=str(max(1, request.round - 1)),
        previous_commit=previous.commit_sha or "unknown",
        previous_checks=_numbered_checks(previous.checks),
        files=files,
        omitted=_omitted_note(omitted),
    )
    return _render("revision.md", **values)


def _bullet(text: str) -> str:
    """A Markdown bullet whose continuation lines are indented under it."""
    return "- " + text.strip().replace("\n", "\n  ")


def _fence_for(text: str, minimum: int = 3) -> str:
    """A backtick fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def _fenced(text: str, lang: str = "", minimum: int = 3) -> str:
    """``text`` in a fenced block that its own backticks cannot close."""
    fence = _fence_for(text, minimum)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{lang}\n{body}{fence}"


def _inline_code(text: str) -> str:
    """``text`` as inline code, with a delimiter its own backticks cannot end."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _numbered_checks(checks: Sequence[Check]) -> str:
    """Each check verbatim, numbered; JavaScript checks marked as such."""
    if not checks:
        return "(none given: follow the brief)"
    return "\n".join(_render_check(number, check) for number, check in enumerate(checks, 1))


def _render_check(number: int, check: Check) -> str:
    """One numbered check, quoted verbatim (fenced when it spans lines or holds backticks)."""
    note = " (JavaScript; must be truthy on the loaded page)" if check.js else ""
    text = check.text
    if "\n" in text or "`" in text:
        return f"{number}.{note}\n{_fenced(text, 'js' if check.js else '')}"
    return f"{number}. {text}{note}"


def _contract_list(items: Sequence[str]) -> str:
    """The contract as bullets, or a note that the checks reference nothing specific."""
    if not items:
        return "(the checks reference no specific ids, selectors, titles or globals)"
    return "\n".join(f"- {_inline_code(item)}" for item in items)


def _attachment_list(attachments: Attachments) -> str:
    """Every attachment with its exact path, type, size and preview, then the links."""
    entries = [_attachment_entry(a) for a in attachments.files]
    entries += [_link_entry(link) for link in attachments.links]
    return "\n\n".join(entries) if entries else "None."


def _attachment_entry(attachment: Attachment) -> str:
    """One committed attachment: where it lives and what it looks like."""
    head = (f"- {_inline_code(attachment.path)} ({attachment.media_type}, {len(attachment.data):,} bytes; "
            f"sent as {_inline_code(attachment.name)}). Committed next to index.html: "
            f"load it with fetch({_inline_code('./' + attachment.path)}).")
    preview = attachment.preview.strip()
    if not preview:
        return head
    if len(preview) > MAX_PREVIEW_CHARS:
        preview = preview[:MAX_PREVIEW_CHARS] + "\n[preview cut]"
    return head + "\n  Preview:\n  " + _fenced(preview).replace("\n", "\n  ")


def _link_entry(link: LinkedAttachment) -> str:
    """One http(s) attachment, given as a link (the service never downloads it)."""
    return (f"- {_inline_code(link.name)}: <{link.url}> (a link, not committed: use this URL directly "
            "if the app needs it, or follow the brief)")


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


def _extension(path: str) -> str:
    """The lower-case extension of a path, without the dot."""
    base = path.rsplit("/", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


def _mentioned(path: str, text: str) -> bool:
    """Whether the brief or checks name this file (by path or by a distinctive base name)."""
    base = path.rsplit("/", 1)[-1]
    return path in text or (len(base) >= 5 and base in text)


def _priority(path: str, mention_text: str) -> tuple:
    """Sort key: files the brief/checks mention, then index.html, then code, then the rest."""
    code = _extension(path) in ("html", "htm", "js", "mjs", "css")
    return (not _mentioned(path, mention_text), path != "index.html", not code, path != "README.md", path)


def _file_block(path: str, data: bytes) -> str:
    """One current file as the model should reply: path line, then a fenced block."""
    if path == "LICENSE":
        return f"- `LICENSE` ({len(data):,} bytes; MIT, maintained by the service: leave it out)"
    if not _is_text(data):
        return f"- {_inline_code(path)} (binary, {len(data):,} bytes; kept as is)"
    lang = _LANGS.get(_extension(path), "")
    minimum = 4 if lang == "markdown" else 3
    return f"{path}\n{_fenced(data.decode('utf-8'), lang, minimum)}"


def _file_context(files: dict[str, bytes], mention_text: str, budget: int) -> tuple[str, list[tuple[str, int]]]:
    """The current files in full within ``budget`` bytes (priority order), and the omitted ones."""
    shown: list[str] = []
    omitted: list[tuple[str, int]] = []
    used = 0
    for path in sorted(files, key=lambda p: _priority(p, mention_text)):
        block = _file_block(path, files[path])
        size = len(block.encode("utf-8"))
        if used + size > budget and _is_text(files[path]) and path != "LICENSE":
            omitted.append((path, len(files[path])))
            continue
        shown.append(block)
        used += size
    return "\n\n".join(shown) or "(no files)", omitted


def _omitted_note(omitted: Iterable[tuple[str, int]]) -> str:
    """Which files were left out for length, and how to change them anyway."""
    lines = [f"- {_inline_code(path)} ({size:,} bytes)" for path, size in omitted]
    if not lines:
        return "All current files are shown above."
    return ("These files exist but were omitted for length; they stay unchanged unless you send a "
            "complete replacement (do not send SEARCH/REPLACE edits for them):\n" + "\n".join(lines))


# ---------------------------------------------------------------- the contract

_STRING = r"""(?:"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)"""
_REGEX_LITERAL = r"/(?:\\.|[^/\\\n])+/[a-z]*"
_SELECTOR_CALL = re.compile(r"\b(?:querySelector(?:All)?|closest|matches)\s*\(\s*(" + _STRING + r")\s*\)")
_JQUERY_CALL = re.compile(r"(?<![\w$])\$\s*\(\s*(" + _STRING + r")\s*\)")
_ID_CALL = re.compile(r"\bgetElementById\s*\(\s*(" + _STRING + r")\s*\)")
_CLASS_CALL = re.compile(r"\bgetElementsByClassName\s*\(\s*(" + _STRING + r")\s*\)")
_TAG_CALL = re.compile(r"\bgetElementsByTagName\s*\(\s*(" + _STRING + r")\s*\)")
_TITLE_FORWARD = re.compile(r"\bdocument\.title(?:\s*\.\s*\w+\s*\(\s*\))*\s*(?:===?|!==?)\s*" + _STRING)
_TITLE_BACKWARD = re.compile(_STRING + r"\s*(?:===?|!==?)\s*document\.title\b")
_TITLE_METHOD = re.compile(r"\bdocument\.title(?:\s*\.\s*\w+\s*\(\s*\))*\s*\.\s*"
                           r"(?:includes|startsWith|endsWith|indexOf|match|search|test)\s*\(\s*(?:"
                           + _STRING + "|" + _REGEX_LITERAL + r")\s*\)")
_TITLE_TEST = re.compile(_REGEX_LITERAL + r"\s*\.\s*test\s*\(\s*document\.title\s*\)")
_WINDOW_DOT = re.compile(r"\bwindow\s*\.\s*([A-Za-z_$][\w$]*)")
_WINDOW_INDEX = re.compile(r"\bwindow\s*\[\s*(" + _STRING + r")\s*\]")
_TYPEOF = re.compile(r"\btypeof\s+([A-Za-z_$][\w$]*)")
_PROSE_HASH_ID = re.compile(r"(?<![\w&#/.:-])#([A-Za-z][\w-]*)")
_PROSE_ID_WORD = re.compile(r"""\bid\s*=\s*["'`]?([A-Za-z][\w-]*)|\bid\s+["'`]([A-Za-z][\w-]*)["'`]"""
                            r"""|\bwith\s+(?:the\s+|an\s+)?id\s+([A-Za-z][\w-]*)""", re.IGNORECASE)
_HEX_COLOR = re.compile(r"^(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")

_BROWSER_GLOBALS = frozenset("""
window self top parent frames document location navigator history screen performance console
localStorage sessionStorage indexedDB caches crypto origin name length event opener closed
innerWidth innerHeight outerWidth outerHeight scrollX scrollY pageXOffset pageYOffset devicePixelRatio
visualViewport isSecureContext customElements getComputedStyle getSelection matchMedia fetch
setTimeout setInterval clearTimeout clearInterval requestAnimationFrame cancelAnimationFrame
queueMicrotask structuredClone atob btoa alert confirm prompt open close print scroll scrollTo scrollBy
addEventListener removeEventListener dispatchEvent postMessage onload onerror
undefined Object Array String Number Boolean Symbol BigInt Math JSON Date RegExp Promise Map Set
WeakMap WeakSet Intl URL URLSearchParams Blob File FileReader Image Event CustomEvent Node Element
HTMLElement MutationObserver ResizeObserver IntersectionObserver Error Function Reflect Proxy
""".split())


def _unquote(literal: str) -> str:
    """The value of a JavaScript string literal (simple escapes only)."""
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _js_contract(source: str) -> list[str]:
    """Contract items found in a JavaScript expression, in order of appearance."""
    hits: list[tuple[int, str]] = []
    for pattern in (_SELECTOR_CALL, _JQUERY_CALL):
        hits += [(m.start(), _unquote(m.group(1)).strip()) for m in pattern.finditer(source)]
    hits += [(m.start(), "#" + _unquote(m.group(1)).strip()) for m in _ID_CALL.finditer(source)]
    hits += [(m.start(), "." + ".".join(_unquote(m.group(1)).split())) for m in _CLASS_CALL.finditer(source)]
    hits += [(m.start(), _unquote(m.group(1)).strip()) for m in _TAG_CALL.finditer(source)]
    for pattern in (_TITLE_FORWARD, _TITLE_BACKWARD, _TITLE_METHOD, _TITLE_TEST):
        hits += [(m.start(), " ".join(m.group(0).split())) for m in pattern.finditer(source)]
    hits += [(m.start(), "window." + m.group(1)) for m in _WINDOW_DOT.finditer(source)
             if m.group(1) not in _BROWSER_GLOBALS]
    hits += [(m.start(), "window." + _unquote(m.group(1))) for m in _WINDOW_INDEX.finditer(source)]
    hits += [(m.start(), "window." + m.group(1)) for m in _TYPEOF.finditer(source)
             if m.group(1) not in _BROWSER_GLOBALS]
    return [item for _position, item in sorted(hits) if item and item not in ("#", ".", "window.")]


def _prose_contract(text: str) -> list[str]:
    """Element ids named in a plain-language check (``#total``, ``id="total"``, ``with id total``)."""
    hits = [(m.start(), m.group(1)) for m in _PROSE_HASH_ID.finditer(text) if not _HEX_COLOR.match(m.group(1))]
    hits += [(m.start(), next(g for g in m.groups() if g)) for m in _PROSE_ID_WORD.finditer(text)]
    return ["#" + name for _position, name in sorted(hits)]
