"""The self-check stage: run the graders' checks on the generated app in headless Chromium, and repair.

    files -> serve on loopback under /<repo>/ -> run_checks (each URL) -> repair (<= N) -> best files

What is judged (``plan_checks``):

- every JavaScript check of this round, and the previous round's ones (the
  regression guard) unless the new brief explicitly changes that behaviour:
  a previous check is waived when one sentence of the brief both names
  something the check looks at (an id, a class, a global, the title) and uses
  a change word (change, replace, rename, remove, instead, no longer, ...);
  waived checks are listed, not judged;
- natural-language checks are listed as ``unjudged``;
- when a check or the brief mentions ``?param=``, the page is also loaded with
  a query string: the value given when it is concrete, else a sample (the URL
  of a served data file for url-like names, ``3`` for count-like names, else
  ``sample``). Checks that mention a parameter are judged on that URL; when
  only the brief does, every check is judged on both URLs and must pass on
  both. Errors of every URL count.

Each check is polled for the time its text implies ("within 5 seconds"),
else ``check_timeout`` (15 s, as graders do), at most 60 s.

Repairs: while a check fails or the page reports errors, the model gets the
failing checks with what they returned, the errors, a bounded DOM excerpt and
the current files (``prompts/repair.md``) and replies with SEARCH/REPLACE edits
or whole files (``utils.model.replies``). At most ``repairs`` rounds, each starting
from the best version so far. Time: a quarter of the request's deadline (at
least 60 s, or half of a deadline shorter than 120 s) is kept for publishing,
Pages and the notification (``publish_reserve``); a repair starts only when,
beyond that reserve, there is room for a model call (10 s) plus another
browser pass as long as the last one. The best version is returned: most
checks passing, then fewest errors, the earliest on a tie, so never a worse
one than the first.

``check_live`` re-runs the checks against the published ``pages_url`` (after
deploy) and never raises.

Never rules:
- never publishes, commits or writes files: it only returns files;
- never logs page contents, check values, file contents or secrets: the log
  line carries counts, the reason and seconds only;
- never lets the browser reach anything but the files it is given (served
  from memory; no filesystem path is ever mapped) and, with ``route_cdn``
  (tests), the local CDN copies: every other host is then cut off;
- never spends the reserve kept for publishing, and never raises for a broken
  app or a failed repair call; only ``SELF_CHECK=required`` without a usable
  browser raises (``NotConfigured``, 503).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit

from utils.checks.browser import CheckResult, PageReport, VisitOptions, find_chromium, run_checks
from utils.deadline import Deadline
from utils.errors import GenerationFailed, NotConfigured
from utils.model.llm import ModelClient
from utils.models import Check
from utils.model.prompt import _fenced, _file_context, _inline_code, _omitted_note, _render, check_contract
from utils.model.replies import apply_edits, parse_reply

log = logging.getLogger(__name__)

MODES = ("auto", "off", "required")
RESERVE_FRACTION = 0.25
RESERVE_SECONDS = 60.0
MIN_VISIT_SECONDS = 5.0
MIN_MODEL_SECONDS = 10.0
MAX_CHECK_SECONDS = 60.0
LOAD_SECONDS = 30.0
SETTLE_SECONDS = 1.0
SNAPSHOT_CHARS = 12_000
REPAIR_CONTEXT_BYTES = 150_000
REPORT_LIMIT = 20
MAX_PARAMS = 4
NO_BROWSER = "no Chromium found: install Chromium or set CHROMIUM_PATH to its executable"
PREVIOUS = "(previous round) "

_REPAIR_KINDS = ("page error", "failed request", "page did not load")

# Keeps every visit open a moment after the checks so late errors (a failed fetch) are seen.
_SETTLE = Check("(settle)", f"new Promise(resolve => setTimeout(() => resolve(true), {int(SETTLE_SECONDS * 1000)}))")

_QUERY_PARAM = re.compile(r"[?&]([A-Za-z_][\w.-]{0,40})=([^\s&#'\"`<>)\]]*)")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?)\b", re.IGNORECASE)
_CHANGE_WORDS = re.compile(r"\b(?:chang\w*|replac\w*|renam\w*|remov\w*|delet\w*|drop\w*|instead|no longer|"
                           r"rather than|swap\w*|switch\w*|modif\w*|(?:should|must|will) now)\b", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_URL_NAMES = {"url", "src", "source", "image", "img", "file", "data", "csv", "json", "link", "href", "path",
              "dataset", "feed", "api", "uri", "photo", "picture", "audio", "video", "doc", "document"}
_NUMBER_NAMES = {"n", "count", "num", "number", "id", "page", "limit", "size", "max", "min", "year", "month",
                 "day", "days", "seed", "level", "index", "qty", "amount", "rows", "cols", "width", "height",
                 "step", "steps", "k", "x", "y", "zoom", "delay", "speed", "rate", "price", "total", "length"}
_PLACEHOLDER = re.compile(r"[<>{}\[\]*…]|\.\.\.|^(?:value|val|x+|foo|bar|something|your\w*)$", re.IGNORECASE)
_PAGE_FILES = {"html", "htm", "js", "mjs", "css", "md", "map"}

# The DOM excerpt: each selector the checks use (with its first match) and typeof of each global,
# then the title and the body with inline scripts and styles elided. Evaluated in the page.
_SNAPSHOT_JS = """(() => {
  const selectors = %s, globals = %s, limit = %d;
  const clean = (el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('script, style').forEach(s => { if (s.textContent.trim()) s.textContent = '/* elided */'; });
    return copy.outerHTML;
  };
  const parts = [];
  for (const sel of selectors) {
    let found = [];
    try { found = Array.from(document.querySelectorAll(sel)); } catch (e) { parts.push(sel + ': not a valid selector'); continue; }
    parts.push(sel + ': ' + found.length + ' match(es)' + (found.length ? '\\n' + clean(found[0]).slice(0, 1500) : ''));
  }
  for (const name of globals) parts.push('window.' + name + ': typeof ' + typeof window[name]);
  parts.push('document.title: ' + JSON.stringify(document.title));
  parts.push(document.body ? clean(document.body) : '(no <body>)');
  return parts.join('\\n\\n').slice(0, limit);
})()"""


# ---------------------------------------------------------------- the report

@dataclass(frozen=True)
class SelfCheckReport:
    """What the stage did, for the response body and the log (``to_dict`` is JSON-serialisable)."""

    ran: bool
    skipped_reason: str | None
    before: tuple[int, int]  # (passed, failed) of the generated app
    after: tuple[int, int]  # (passed, failed) of the returned app
    repairs: int  # repair rounds attempted
    failing: list[str]  # checks still failing in the returned app
    errors: list[str]  # page/console/request errors of the returned app (bounded)
    seconds: float
    mode: str = "auto"
    stop_reason: str = ""  # passed | repairs exhausted | no time left | model failed | no repairs allowed
    errors_before: int = 0
    unjudged: list[str] = field(default_factory=list)  # natural-language checks (listed, not judged)
    waived: list[str] = field(default_factory=list)  # previous-round checks the new brief changes
    urls: list[str] = field(default_factory=list)  # the page URLs loaded, relative ("./", "./?name=sample")
    versions: list[dict] = field(default_factory=list)  # per version seen: passed, failed, errors, seconds
    chosen: int = 0  # which version is returned (0: as generated)
    model: dict = field(default_factory=dict)  # repair calls and tokens

    def to_dict(self) -> dict:
        """The report as plain JSON types."""
        data = asdict(self)
        data["before"], data["after"] = list(self.before), list(self.after)
        return data

    @property
    def changed(self) -> bool:
        """True when the returned files differ from the ones given (a repair was kept)."""
        return self.chosen > 0


def _skipped(reason: str, mode: str, started: float) -> SelfCheckReport:
    """The report of a stage that did not run."""
    return SelfCheckReport(ran=False, skipped_reason=reason, before=(0, 0), after=(0, 0), repairs=0, failing=[],
                           errors=[], seconds=round(time.monotonic() - started, 3), mode=mode)


# ---------------------------------------------------------------- planning

@dataclass(frozen=True)
class _Visit:
    """One page load: the query string to add and the indices of the checks judged there."""

    query: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class CheckPlan:
    """What to judge and where: labelled checks, page loads, and what is only listed."""

    checks: list[Check]
    labels: list[str]
    visits: list[_Visit]
    check_timeout: float
    unjudged: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)


def plan_checks(checks: Sequence[Check], previous_checks: Sequence[Check], brief: str,
                files: Mapping[str, bytes], *, check_timeout: float = 15.0,
                base_url: str = "") -> CheckPlan:
    """The JavaScript checks to judge (current, then surviving previous ones) and the page loads."""
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
    unjudged = [c.text for c in (*checks, *previous_checks) if not c.js]
    visits = _visits([c for c, _ in judged], brief, files, base_url)
    return CheckPlan(checks=[c for c, _ in judged], labels=[label for _, label in judged], visits=visits,
                     check_timeout=_check_seconds([c for c, _ in judged], check_timeout),
                     unjudged=list(dict.fromkeys(unjudged)), waived=waived)


def waived_by_brief(check: Check, brief: str) -> bool:
    """True when one sentence of ``brief`` names what ``check`` looks at and says it changes."""
    names = _contract_names(check)
    for sentence in _SENTENCES.split(brief):
        if _CHANGE_WORDS.search(sentence) and any(_names_in(name, sentence) for name in names):
            return True
    return False


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


def _visits(checks: list[Check], brief: str, files: Mapping[str, bytes], base_url: str) -> list[_Visit]:
    """The base load, plus one with every mentioned parameter when there are any."""
    everything = tuple(range(len(checks)))
    params = query_parameters(checks, brief)
    if not params:
        return [_Visit("", everything)]
    query = "?" + urlencode([(n, sample_value(n, v, files, base_url)) for n, v in params.items()], safe=":/")
    with_params = tuple(i for i, c in enumerate(checks) if query_parameters([c], ""))
    if not with_params:
        return [_Visit("", everything), _Visit(query, everything)]
    return [_Visit("", tuple(i for i in everything if i not in with_params)), _Visit(query, with_params)]


def _check_seconds(checks: Sequence[Check], default: float) -> float:
    """How long to poll: the longest time any check's text implies, else ``default``; at most 60 s."""
    times = [_implied_seconds(c.text) or default for c in checks] or [default]
    return min(max(times), MAX_CHECK_SECONDS)


def _implied_seconds(text: str) -> float | None:
    """The largest duration a check's text names ("within 5 seconds", "2000 ms"), if any."""
    values = [float(n) / (1000 if unit.lower().startswith("m") else 1) for n, unit in _SECONDS.findall(text)]
    return max(values) if values else None


# ---------------------------------------------------------------- serving from memory

class StaticSite:
    """The files, served from memory on 127.0.0.1 under ``/<repo>/`` like Pages; a context manager.

    Only keys of ``files`` are ever served; nothing is read from disk.
    """

    def __init__(self, repo_name: str, files: Mapping[str, bytes] | None = None):
        self.prefix = "/" + quote(repo_name) + "/"
        self.files: Mapping[str, bytes] = dict(files or {})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> StaticSite:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()

    def resolve(self, raw_path: str) -> tuple[int, str]:
        """(200, file path) | (301, location) | (404, '') for a request path."""
        path = unquote(urlsplit(raw_path).path)
        if path == self.prefix.rstrip("/"):
            return 301, self.prefix
        if not path.startswith(self.prefix):
            return 404, ""
        name = path[len(self.prefix):]
        if name == "" or name.endswith("/"):
            name += "index.html"
        if name in self.files:
            return 200, name
        if name + "/index.html" in self.files:
            return 301, path + "/"
        return 404, ""


def _handler_for(site: StaticSite) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``site``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            """Send the file (or redirect, or 404)."""
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            """Send the headers only."""
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            """Answer like a static host: the file with its type, a folder redirect, or 404(.html)."""
            from utils.publishers.local_web import content_type_for

            status, target = site.resolve(self.path)
            files = site.files
            if status == 404 and "404.html" in files:
                target = "404.html"
            body = files.get(target, b"404 Not Found\n") if status != 301 else b""
            self.send_response(status)
            if status == 301:
                self.send_header("Location", target)
            self.send_header("Content-Type", content_type_for(target) if target else "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: request lines are not logged."""

    return Handler


# ---------------------------------------------------------------- examining a version

@dataclass(frozen=True)
class _Examination:
    """One version of the files as the browser saw it."""

    files: dict[str, bytes]
    results: list[CheckResult]
    errors: list[str]
    snapshot: str | None
    seconds: float
    browser_failure: str | None = None

    @property
    def passed(self) -> int:
        """JavaScript checks that passed."""
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        """JavaScript checks that failed."""
        return sum(1 for r in self.results if not r.passed)

    @property
    def clean(self) -> bool:
        """Nothing to repair: every check passes, no uncaught error, no failed request, it loaded.

        Console errors alone count against a version's score but do not start a repair.
        """
        return self.failed == 0 and not any(e.startswith(_REPAIR_KINDS) for e in self.errors)

    @property
    def score(self) -> tuple[int, int]:
        """Most checks passing, then fewest errors."""
        return self.passed, -len(self.errors)

    def summary(self) -> dict:
        """Counts for the report."""
        return {"passed": self.passed, "failed": self.failed, "errors": len(self.errors), "seconds": self.seconds}


@dataclass
class _Examiner:
    """Runs a plan's page loads against whatever ``site`` (or a live URL) currently serves."""

    base_url: str
    plan: CheckPlan
    chromium_path: str
    deadline: Deadline
    reserve: float
    options: VisitOptions
    site: StaticSite | None = None

    def examine(self, files: dict[str, bytes]) -> _Examination:
        """Load every URL of the plan and merge what the visits found."""
        started = time.monotonic()
        if self.site is not None:
            self.site.files = files
        found: dict[int, list[CheckResult]] = {}
        errors: list[str] = []
        snapshot, failure = None, None
        for visit in self.plan.visits:
            report = self._visit(visit)
            for index, result in zip(visit.indices, report.results):
                found.setdefault(index, []).append(result)
            errors.extend(self._errors(report, visit.query))
            snapshot = snapshot or report.snapshot
            failure = failure or _browser_failure(report)
        results = [_merged(found.get(i, [])) for i in range(len(self.plan.checks))]
        return _Examination(files, results, list(dict.fromkeys(errors)), snapshot,
                            round(time.monotonic() - started, 3), failure)

    def _visit(self, visit: _Visit) -> PageReport:
        """One page load with its checks (and the settle probe, dropped from the results)."""
        checks = [self.plan.checks[i] for i in visit.indices] + [_SETTLE]
        left = self.deadline.remaining() - self.reserve
        total = max(1.0, min(left, self.plan.check_timeout + LOAD_SECONDS + 15))
        report = run_checks(self.base_url + visit.query, checks, chromium_path=self.chromium_path,
                            check_timeout=self.plan.check_timeout, total_timeout=total,
                            load_timeout=min(LOAD_SECONDS, total), options=self.options)
        return PageReport(**{**report.__dict__, "results": report.results[:-1]})

    def _errors(self, report: PageReport, query: str) -> list[str]:
        """The visit's errors as short lines, with the page's own URLs made relative."""
        where = f" (with {query})" if query else ""
        lines = [f"page error{where}: {e}" for e in report.page_errors]
        lines += [f"console error{where}: {e}" for e in report.console_errors]
        lines += [f"failed request{where}: {e}" for e in report.failed_requests]
        if report.load_error:
            lines.append(f"page did not load{where}: {report.load_error}")
        return [self.relative(line) for line in lines]

    def relative(self, text: str) -> str:
        """``text`` with the served base URL (and its origin) written relative."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base_url))
        return text.replace(self.base_url, "./").replace(origin, "")


def _merged(results: list[CheckResult]) -> CheckResult:
    """A check judged on several URLs passes only if it passed on each; the first failure is kept."""
    if not results:
        return CheckResult(check="", js=None, passed=False, value="", error="not evaluated", seconds=0.0)
    return next((r for r in results if not r.passed), results[0])


def _browser_failure(report: PageReport) -> str | None:
    """The reason when the browser itself could not run (launch failure), else None."""
    error = report.load_error or ""
    return error if error.startswith("browser:") and not any(r.passed for r in report.results) else None


def _snapshot_js(checks: Sequence[Check]) -> str:
    """The DOM-excerpt expression for the selectors and globals the checks use."""
    items = check_contract(checks)
    globals_ = [i.removeprefix("window.") for i in items if i.startswith("window.")]
    selectors = [i for i in items if not i.startswith(("window.", "document.title"))]
    return _SNAPSHOT_JS % (json.dumps(selectors[:20]), json.dumps(globals_[:20]), SNAPSHOT_CHARS)


# ---------------------------------------------------------------- repairing

@dataclass
class _Tally:
    """Model use by the repair loop."""

    attempts: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: list[str] = field(default_factory=list)  # what earlier attempts did, for the next prompt


def repair_messages(exam: _Examination, plan: CheckPlan, brief: str, protected: Collection[str],
                    notes: Sequence[str] = ()) -> list[dict]:
    """The chat messages asking the model to fix ``exam``'s failures with edits."""
    failing = [_failing_entry(n, label, r) for n, (label, r) in enumerate(_labelled(exam, plan, False), 1)]
    passing = [f"- {_inline_code(r.js or label)}" for label, r in _labelled(exam, plan, True)]
    mention = " ".join([brief, *(c.text for c in plan.checks)])
    files, omitted = _file_context(exam.files, mention, REPAIR_CONTEXT_BYTES)
    user = _render(
        "repair.md", brief=brief.strip() or "(no brief given)",
        failing="\n".join(failing) or "None: every check passes; fix the errors below.",
        errors="\n".join(f"- {e}" for e in exam.errors[:REPORT_LIMIT]) or "None.",
        passing="\n".join(passing) or "None.",
        attempts=_attempts_section(notes),
        dom=_fenced(exam.snapshot or "(no DOM excerpt: the page did not load)", "html"),
        files=files, omitted=_omitted_note(omitted),
        protected=", ".join(_inline_code(p) for p in sorted(protected)) or "(none)",
    )
    return [{"role": "system", "content": _render("system.md")}, {"role": "user", "content": user}]


def _labelled(exam: _Examination, plan: CheckPlan, passed: bool) -> list[tuple[str, CheckResult]]:
    """(label, result) of the checks that passed (or failed)."""
    return [(label, r) for label, r in zip(plan.labels, exam.results) if bool(r.passed) == passed]


def _failing_entry(number: int, label: str, result: CheckResult) -> str:
    """One failing check: its expression, origin, last value and error."""
    origin = " (from the previous round: it must keep passing)" if label.startswith(PREVIOUS) else ""
    lines = [f"{number}. {_inline_code(result.js or label)}{origin}",
             f"   returned: {_inline_code(result.value or 'nothing')} after polling {result.seconds:.1f} s"]
    if result.error:
        lines.append(f"   error: {result.error}")
    if result.js and label.removeprefix(PREVIOUS) != result.js:
        lines.append(f"   described as: {label.removeprefix(PREVIOUS)}")
    return "\n".join(lines)


def _attempts_section(notes: Sequence[str]) -> str:
    """What earlier repair attempts did (empty for the first)."""
    if not notes:
        return ""
    listed = "\n".join(f"- {note}" for note in notes)
    return f"## Earlier repair attempts (they did not work; try a different fix)\n\n{listed}\n\n"


def _apply_reply(text: str, base: dict[str, bytes], protected: Collection[str]) -> tuple[dict[str, bytes], list[str]]:
    """The base files with a reply's whole files and edits applied; protected files kept; problems."""
    parsed = parse_reply(text)
    files = dict(base)
    files.update({path: content.encode("utf-8") for path, content in parsed.files.items()})
    files, problems = apply_edits(files, parsed.edits)
    if parsed.truncated or (not parsed.files and not parsed.edits):
        problems = [*problems, *(parsed.problems or ["the reply contained no files or edits"])]
    for path in protected:
        if path in base:
            files[path] = base[path]
    if "index.html" not in files:
        problems.append("the app has no index.html")
    return files, problems


def _ask_for_repair(exam: _Examination, plan: CheckPlan, brief: str, model: ModelClient, budget: Deadline,
                    protected: Collection[str], tally: _Tally) -> tuple[dict[str, bytes] | None, str | None]:
    """Ask once for a fix; (new files, None), (None, a note on why not), or (None, None) if the model failed."""
    try:
        completion = model.complete(repair_messages(exam, plan, brief, protected, tally.notes), budget)
    except GenerationFailed as failure:
        log.warning("self-check repair call failed", extra={"stage": "self_check", "error": failure.message})
        return None, None
    tally.calls += 1
    tally.prompt_tokens += completion.prompt_tokens
    tally.completion_tokens += completion.completion_tokens
    files, problems = _apply_reply(completion.text, exam.files, protected)
    if problems:
        return None, "the reply could not be applied: " + "; ".join(problems[:5])
    if files == exam.files:
        return None, "the reply changed nothing"
    return files, None


def _attempt_note(exam: _Examination, plan: CheckPlan) -> str:
    """How a repaired version fared, for the next prompt."""
    failing = [r.js or label for label, r in _labelled(exam, plan, False)]
    note = f"an attempt left {exam.failed} check(s) failing and {len(exam.errors)} error(s)"
    if failing:
        note += ": " + ", ".join(_inline_code(f) for f in failing[:5])
    if exam.errors:
        note += "; errors: " + " | ".join(exam.errors[:3])
    return note


# ---------------------------------------------------------------- the stage

def publish_reserve(deadline: Deadline) -> float:
    """Seconds of the deadline kept for publishing, Pages and notifying: 25 %, at least 60 s (half if short)."""
    return max(RESERVE_FRACTION * deadline.seconds, min(RESERVE_SECONDS, deadline.seconds / 2))


def self_check(files: dict[str, bytes], *, repo_name: str, checks: Sequence[Check],
               previous_checks: Sequence[Check], brief: str, model: ModelClient, deadline: Deadline,
               mode: str, chromium_path: str | None, repairs: int = 2,
               route_cdn: Mapping[str, Path] | None = None, check_timeout: float = 15.0,
               protected: Collection[str] = ()) -> tuple[dict[str, bytes], SelfCheckReport]:
    """Judge the app in Chromium, repair up to ``repairs`` times, and return the best files with a report.

    ``chromium_path`` None means no browser. ``route_cdn`` (tests) maps CDN URL
    prefixes to local folders and cuts the page off from every other host.
    ``protected`` files (attachments, LICENSE) are never changed by a repair.
    Raises ``NotConfigured`` only for ``mode="required"`` without a usable browser.
    """
    started = time.monotonic()
    mode = mode if mode in MODES else "auto"
    report = _early_exit(mode, chromium_path, deadline, started)
    if report is not None:
        _log(report)
        return files, report
    browser = find_chromium(chromium_path) or ""
    with StaticSite(repo_name, files) as site:
        plan = plan_checks(checks, previous_checks, brief, files, check_timeout=check_timeout, base_url=site.url)
        options = VisitOptions(routes=dict(route_cdn or {}), offline=route_cdn is not None,
                               snapshot_js=_snapshot_js(plan.checks))
        examiner = _Examiner(site.url, plan, browser, deadline, publish_reserve(deadline), options, site)
        history, stop, tally = _repair_loop(examiner, plan, files, brief, model, repairs, protected)
        urls = [examiner.relative(site.url + v.query) for v in plan.visits]
    if history[0].browser_failure:
        return files, _browser_unusable(history[0].browser_failure, mode, started)
    report = _report(history, plan, urls, mode, stop, tally, started)
    _log(report)
    best = history[report.chosen]
    return best.files, report


def _early_exit(mode: str, chromium_path: str | None, deadline: Deadline, started: float) -> SelfCheckReport | None:
    """The report when the stage cannot or should not run (raises when a browser is required)."""
    if mode == "off":
        return _skipped("SELF_CHECK=off", mode, started)
    if not (chromium_path and find_chromium(chromium_path)):
        if mode == "required":
            raise NotConfigured("SELF_CHECK=required but " + NO_BROWSER, stage="self_check")
        return _skipped(NO_BROWSER, mode, started)
    if deadline.remaining() - publish_reserve(deadline) < MIN_VISIT_SECONDS:
        return _skipped("not enough time left before the deadline", mode, started)
    return None


def _browser_unusable(reason: str, mode: str, started: float) -> SelfCheckReport:
    """The report (or, when required, the error) for a browser that could not start."""
    if mode == "required":
        raise NotConfigured(f"SELF_CHECK=required but Chromium could not start ({reason}); check CHROMIUM_PATH",
                            stage="self_check")
    report = _skipped(f"Chromium could not start: {reason}", mode, started)
    _log(report)
    return report


def _repair_loop(examiner: _Examiner, plan: CheckPlan, files: dict[str, bytes], brief: str, model: ModelClient,
                 repairs: int, protected: Collection[str]) -> tuple[list[_Examination], str, _Tally]:
    """Examine the first version, then repair from the best one while allowed; (versions, stop reason, tally)."""
    history = [examiner.examine(files)]
    best, tally = history[0], _Tally()
    if best.browser_failure:
        return history, "browser failed", tally
    while not best.clean:
        stop = _why_stop(tally.attempts, repairs, examiner, history[-1])
        if stop:
            return history, stop, tally
        tally.attempts += 1
        budget = Deadline(examiner.deadline.remaining() - examiner.reserve - history[-1].seconds)
        candidate, note = _ask_for_repair(best, plan, brief, model, budget, protected, tally)
        if candidate is None and note is None:
            return history, "model failed", tally
        if candidate is None:
            tally.notes.append(note or "")
            continue
        history.append(examiner.examine(candidate))
        if history[-1].score > best.score:
            best = history[-1]
        elif not history[-1].clean:
            tally.notes.append(_attempt_note(history[-1], plan))
    return history, "passed", tally


def _why_stop(attempts: int, repairs: int, examiner: _Examiner, last: _Examination) -> str | None:
    """Why no further repair may start, or None."""
    if repairs <= 0:
        return "no repairs allowed"
    if attempts >= repairs:
        return "repairs exhausted"
    left = examiner.deadline.remaining() - examiner.reserve
    if left < last.seconds + MIN_MODEL_SECONDS:
        return "no time left"
    return None


def _report(history: list[_Examination], plan: CheckPlan, urls: list[str], mode: str, stop: str,
            tally: _Tally, started: float) -> SelfCheckReport:
    """The stage report for the best version of ``history``."""
    first = history[0]
    chosen = max(range(len(history)), key=lambda i: (history[i].score, -i))
    best = history[chosen]
    return SelfCheckReport(
        ran=True, skipped_reason=None, before=(first.passed, first.failed), after=(best.passed, best.failed),
        repairs=tally.attempts,
        failing=[label for label, _ in _labelled(best, plan, False)], errors=best.errors[:REPORT_LIMIT],
        seconds=round(time.monotonic() - started, 3), mode=mode, stop_reason=stop, errors_before=len(first.errors),
        unjudged=plan.unjudged, waived=plan.waived, urls=urls,
        versions=[e.summary() for e in history], chosen=chosen,
        model={"calls": tally.calls, "prompt_tokens": tally.prompt_tokens,
               "completion_tokens": tally.completion_tokens},
    )


def _log(report: SelfCheckReport, stage: str = "self_check") -> None:
    """One JSON log line: counts, reason and seconds only (never page contents)."""
    level = logging.WARNING if report.skipped_reason and report.mode != "off" else logging.INFO
    log.log(level, "self-check finished" if report.ran else "self-check skipped", extra={
        "stage": stage, "ran": report.ran, "skipped_reason": report.skipped_reason, "mode": report.mode,
        "before_passed": report.before[0], "before_failed": report.before[1],
        "after_passed": report.after[0], "after_failed": report.after[1],
        "errors_before": report.errors_before, "errors_after": len(report.errors),
        "repairs": report.repairs, "stop_reason": report.stop_reason, "seconds": report.seconds,
    })


# ---------------------------------------------------------------- after deploy

def check_live(pages_url: str, checks: Sequence[Check], *, chromium_path: str | None, deadline: Deadline,
               previous_checks: Sequence[Check] = (), brief: str = "", check_timeout: float = 15.0,
               reserve: float = 5.0) -> SelfCheckReport:
    """Judge the published page at ``pages_url`` (no repairs); never raises, skips without a browser."""
    started = time.monotonic()
    browser = find_chromium(chromium_path) if chromium_path else None
    if browser is None:
        report = _skipped(NO_BROWSER, "auto", started)
    elif deadline.remaining() - reserve < MIN_VISIT_SECONDS:
        report = _skipped("not enough time left before the deadline", "auto", started)
    else:
        report = _live_report(pages_url, checks, previous_checks, brief, browser, deadline, check_timeout,
                              reserve, started)
    _log(report, stage="live_check")
    return report


def _live_report(pages_url: str, checks: Sequence[Check], previous_checks: Sequence[Check], brief: str,
                 browser: str, deadline: Deadline, check_timeout: float, reserve: float,
                 started: float) -> SelfCheckReport:
    """One examination of the live page, as a report (errors become a skipped report)."""
    base = pages_url if pages_url.endswith("/") else pages_url + "/"
    try:
        plan = plan_checks(checks, previous_checks, brief, {}, check_timeout=check_timeout, base_url=base)
        examiner = _Examiner(base, plan, browser, deadline, reserve, VisitOptions())
        exam = examiner.examine({})
        urls = [examiner.relative(base + v.query) for v in plan.visits]
    except Exception as exc:  # a report, never an exception: notification must not depend on this
        log.warning("live check failed", extra={"stage": "live_check", "error": type(exc).__name__})
        return _skipped(f"live check failed: {type(exc).__name__}", "auto", started)
    if exam.browser_failure:
        return _skipped(f"Chromium could not start: {exam.browser_failure}", "auto", started)
    return _report([exam], plan, urls, "auto", "live", _Tally(), started)
