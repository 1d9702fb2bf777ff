"""Plan the self-check: which checks are judged, on which page URLs, and for how long.

- every JavaScript check of this round, and the previous round's ones (the
  regression guard) unless the new brief explicitly changes that behaviour:
  a previous check is waived when one sentence of the brief both names
  something the check looks at (an id, a class, a global, the title; see
  ``utils.intake.check_contract``) and uses a change word (change, replace, rename,
  remove, instead, no longer, ...); waived checks are listed, not judged;
- natural-language checks the check writer made executable (``written``)
  are judged too: as JavaScript (kind "written JS"), by the judging call
  (kind "judged"), on the repository's files (kind "files") or on the
  finished workflow run (kind "run"; after publishing), the last three never
  loaded in a page; the rest are listed as ``unjudged``.
  Round N-1's written checks reused for its plain-English checks are judged
  as previous-round checks, unless the new brief contradicts one: a sentence
  naming what it looks at (a file such as ``about.md``, an id, a global) with
  a change word or with other numbers than the check's ("exactly five words"
  against "exactly three") waives it;
- when a check or the brief mentions ``?param=``, the page is also loaded with
  a query string: the value given when it is concrete, else a sample (the URL
  of a served data file for url-like names, ``3`` for count-like names, else
  ``sample``). Checks that mention a parameter are judged on that URL; when
  only the brief does, every check is judged on both URLs and must pass on
  both.

Each check is polled for the time its text implies ("within 5 seconds"),
else ``check_timeout`` (15 s, as graders do), at most 60 s. The self-check and
the wait for the check writer stop where ``publish_reserve`` begins: the part
of the deadline kept for publishing, Pages and the notification.

Pure planning from text: never loads a page, never calls a model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from utils.deadline import Deadline
from utils.intake.check_contract import check_contract
from utils.records import Check, WrittenCheck

MAX_CHECK_SECONDS = 60.0
RESERVE_FRACTION = 0.25
RESERVE_SECONDS = 60.0
MAX_PARAMS = 4
PREVIOUS = "(previous round) "
GIVEN_JS, WRITTEN_JS, JUDGED = "given JS", "written JS", "judged"
FILES, RUN = "files", "run"  # written checks run on the repository's files, and on the finished workflow run

_QUERY_PARAM = re.compile(r"[?&]([A-Za-z_][\w.-]{0,40})=([^\s&#'\"`<>)\]]*)")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?)\b", re.IGNORECASE)
_CHANGE_WORDS = re.compile(r"\b(?:chang\w*|replac\w*|renam\w*|remov\w*|delet\w*|drop\w*|instead|no longer|updat\w*|"
                           r"rather than|swap\w*|switch\w*|modif\w*|(?:should|must|will) now)\b", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_URL_NAMES = {"url", "src", "source", "image", "img", "file", "data", "csv", "json", "link", "href", "path",
              "dataset", "feed", "api", "uri", "photo", "picture", "audio", "video", "doc", "document"}
_NUMBER_NAMES = {"n", "count", "num", "number", "id", "page", "limit", "size", "max", "min", "year", "month",
                 "day", "days", "seed", "level", "index", "qty", "amount", "rows", "cols", "width", "height",
                 "step", "steps", "k", "x", "y", "zoom", "delay", "speed", "rate", "price", "total", "length"}
_PLACEHOLDER = re.compile(r"[<>{}\[\]*…]|\.\.\.|^(?:value|val|x+|foo|bar|something|your\w*)$", re.IGNORECASE)
_PAGE_FILES = {"html", "htm", "js", "mjs", "css", "md", "map"}
_FILE_NAMES = re.compile(r"[\w./-]*\w\.[A-Za-z][\w]{0,7}\b")
_NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                 "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]


@dataclass(frozen=True)
class Visit:
    """One page load: the query string to add and the indices of the checks judged there."""

    query: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class CheckPlan:
    """What to judge and where: labelled checks, page loads, and what is only listed."""

    checks: list[Check]
    labels: list[str]
    visits: list[Visit]
    check_timeout: float
    unjudged: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # per check: given JS | written JS | judged | files | run
    rubrics: dict[int, str] = field(default_factory=dict)  # index of a judged check -> its rubric
    scripts: dict[int, str] = field(default_factory=dict)  # index of a files or run check -> its expression

    def kind(self, index: int) -> str:
        """The kind of check ``index`` (given JS when the plan was made without kinds)."""
        return self.kinds[index] if index < len(self.kinds) else GIVEN_JS


def plan_checks(checks: Sequence[Check], previous_checks: Sequence[Check], brief: str,
                files: Mapping[str, bytes], *, check_timeout: float = 15.0,
                base_url: str = "", written: Sequence[WrittenCheck] = ()) -> CheckPlan:
    """The checks to judge (current, surviving previous ones, then written ones) and the page loads."""
    current_js = {c.js for c in checks if c.js}
    judged = [(c, c.text) for c in checks if c.js]
    waived: list[str] = []
    for check in previous_checks:
        if not check.js or check.js in current_js:
            continue
        if waived_by_brief(check, brief):
            waived.append(check.text)
        else:
            judged.append((check, PREVIOUS + check.text))
    kinds = [GIVEN_JS] * len(judged)
    rubrics: dict[int, str] = {}
    scripts: dict[int, str] = {}
    for item in written:
        if item.previous and contradicted_by_brief(Check(item.check, item.js), brief):
            waived.append(item.check)
            continue
        if item.kind == "judge":
            rubrics[len(judged)] = item.rubric
        elif item.kind in (FILES, RUN):
            scripts[len(judged)] = item.js or ""
        judged.append((Check(item.check, item.js if item.kind == "js" else None),
                       PREVIOUS + item.check if item.previous else item.check))
        kinds.append({"js": WRITTEN_JS, "judge": JUDGED}.get(item.kind, item.kind))
    made = {item.check for item in written}
    unjudged = [c.text for c in (*checks, *previous_checks) if not c.js and c.text not in made]
    visits = _visits([c for c, _ in judged], brief, files, base_url)
    return CheckPlan(checks=[c for c, _ in judged], labels=[label for _, label in judged], visits=visits,
                     check_timeout=_check_seconds([c for c, _ in judged if c.js], check_timeout),
                     unjudged=list(dict.fromkeys(unjudged)), waived=waived, kinds=kinds, rubrics=rubrics,
                     scripts=scripts)


def waived_by_brief(check: Check, brief: str) -> bool:
    """True when one sentence of ``brief`` names what ``check`` looks at and says it changes."""
    names = _contract_names(check)
    for sentence in _SENTENCES.split(brief):
        if _CHANGE_WORDS.search(sentence) and any(_names_in(name, sentence) for name in names):
            return True
    return False


def contradicted_by_brief(check: Check, brief: str) -> bool:
    """True when a sentence of ``brief`` names a file or name ``check`` looks at and changes it: a change word,
    or numbers other than the check's (round 1 "exactly three words", round 2 "exactly five")."""
    names = _contract_names(check) | set(_FILE_NAMES.findall(check.text))
    numbers = _numbers(check.text)
    for sentence in _SENTENCES.split(brief):
        if not any(_names_in(name, sentence) for name in names):
            continue
        if _CHANGE_WORDS.search(sentence) or (numbers and _numbers(sentence) and _numbers(sentence) != numbers):
            return True
    return False


def _numbers(text: str) -> set[str]:
    """The numbers a text states, digits or words (one to twenty), as digits."""
    found = set(re.findall(r"\b\d+(?:\.\d+)?\b", text))
    return found | {str(_NUMBER_WORDS.index(w.lower()) + 1) for w in re.findall(r"[A-Za-z]+", text)
                    if w.lower() in _NUMBER_WORDS}


def _contract_names(check: Check) -> set[str]:
    """Ids, classes, globals and 'title' that a check refers to."""
    names: set[str] = set()
    for item in check_contract([check]):
        if item.startswith("document.title"):
            names.add("title")
        elif item.startswith("window."):
            names.add(item.removeprefix("window."))
        else:
            names.update(re.findall(r"[#.]([A-Za-z][\w-]*)", item))
    return {name for name in names if len(name) >= 3}


def _names_in(name: str, sentence: str) -> bool:
    """Whether ``name`` appears in ``sentence`` as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", sentence, re.IGNORECASE) is not None


def query_parameters(checks: Sequence[Check], brief: str) -> dict[str, str]:
    """``?param=value`` mentions in the checks and the brief: name -> value as written ('' if none)."""
    found: dict[str, str] = {}
    for text in [*(t for c in checks for t in (c.js or "", c.text)), brief]:
        for name, value in _QUERY_PARAM.findall(text):
            if len(found) < MAX_PARAMS or name in found:
                found[name] = found.get(name) or value.rstrip(".,;:!?")  # not the sentence's punctuation
    return found


def sample_value(name: str, written: str, files: Mapping[str, bytes], base_url: str) -> str:
    """The value to load the page with: the written one if concrete, else a sample suited to the name."""
    if written and not _PLACEHOLDER.search(written):
        return written
    lowered = name.lower()
    if lowered in _URL_NAMES or lowered.endswith(("url", "src", "file")):
        data = sorted(p for p in files if p.rsplit(".", 1)[-1].lower() not in _PAGE_FILES and "." in p)
        return base_url + data[0] if data else "sample"
    return "3" if lowered in _NUMBER_NAMES else "sample"


def _visits(checks: list[Check], brief: str, files: Mapping[str, bytes], base_url: str) -> list[Visit]:
    """The base load, plus one with every mentioned parameter when there are any (JavaScript checks only)."""
    everything = tuple(i for i, c in enumerate(checks) if c.js)
    params = query_parameters(checks, brief)
    if not params:
        return [Visit("", everything)]
    query = "?" + urlencode([(n, sample_value(n, v, files, base_url)) for n, v in params.items()], safe=":/")
    with_params = tuple(i for i in everything if query_parameters([checks[i]], ""))
    if not with_params:
        return [Visit("", everything), Visit(query, everything)]
    return [Visit("", tuple(i for i in everything if i not in with_params)), Visit(query, with_params)]


def _check_seconds(checks: Sequence[Check], default: float) -> float:
    """How long to poll: the longest time any check's text implies, else ``default``; at most 60 s."""
    times = [implied_seconds(c.text) or default for c in checks] or [default]
    return min(max(times), MAX_CHECK_SECONDS)


def implied_seconds(text: str) -> float | None:
    """The largest duration a check's text names ("within 5 seconds", "2000 ms"), if any."""
    values = [float(n) / (1000 if unit.lower().startswith("m") else 1) for n, unit in _SECONDS.findall(text)]
    return max(values) if values else None


def publish_reserve(deadline: Deadline) -> float:
    """Seconds of the deadline kept for publishing, Pages and notifying: 25 %, at least 60 s (half if short)."""
    return max(RESERVE_FRACTION * deadline.seconds, min(RESERVE_SECONDS, deadline.seconds / 2))
