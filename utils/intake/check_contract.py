"""Which ids, selectors, document.title conditions and window globals the graders' checks reference.

The contract is read from each JavaScript check (``querySelector('#total')``,
``getElementById``, ``document.title === ...``, ``window.x``, ``typeof x``) and,
for plain-English checks, from the ids they name (``#total``, ``id="total"``).
Generation lists it in the prompt; the self-check uses it for the DOM excerpt and
to tell which previous checks a new brief changes. Reads text only: never
evaluates a check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from utils.records import Check

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
