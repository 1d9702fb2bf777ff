"""Run graders' checks against a live page in headless Chromium, the way a grader does.

The page is loaded, then every JavaScript check is polled until it is truthy or
its time runs out; console errors, uncaught page errors and failed requests of
the page's own origin are collected alongside. Natural-language checks are
listed but not judged. A check that is still false on a quiet page ends early:
once the page has no request in flight, no pending short timer and no DOM
change for ``QUIET_SECONDS`` (``VisitOptions.quiet_seconds``), nothing more will
happen without a user, so waiting out the check's time would only delay a
repair. A page still loading, fetching or changing is polled as before.

Playwright is imported only inside ``run_checks`` so importing this module is
cheap and works without it. Its asyncio API is used (behind the synchronous
``run_checks``) because only there can a call into a hung page be abandoned:
a page stuck in ``while (true) {}`` never answers an evaluation, and the
sync API would wait forever.

Optional ``VisitOptions`` (used by the self-check stage and its tests) route
URL prefixes to local folders (CDN copies for offline tests), can cut the page
off from every other host, and evaluate a snapshot expression (a bounded DOM
excerpt) after the checks.

Never downloads a browser: it runs the Chromium it is given (see
``find_chromium``). Never gives the page access to secrets or to files outside
what is served: Chromium gets a minimal environment (none of the service's
variables), a throwaway profile, no service workers and no downloads; a routed
folder serves only files inside it. Never lets the page reach loopback (except
its own origin), private, link-local or reserved addresses: every request,
every redirect hop (requests are sent one hop at a time) and every WebSocket
goes through ``utils.checks.outbound.OutboundGuard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from utils.checks.outbound import NO_WEBRTC_SCRIPT, OutboundGuard, send_one_hop
from utils.checks.quiet import QUIET_SECONDS, QuietPage, quiet_probe
from utils.records import Check

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",  # and NO_WEBRTC_SCRIPT removes WebRTC itself
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_PATHS = tuple(f"/usr/bin/{name}" for name in CHROMIUM_NAMES) + (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
# Variables Chromium may need; everything else (SECRET, tokens, keys) stays out of its environment.
BROWSER_ENV_KEYS = (
    "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "FONTCONFIG_PATH", "FONTCONFIG_FILE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)

POLL_INTERVAL = 0.2
VALUE_LIMIT = 200
MESSAGE_LIMIT = 500
LIST_LIMIT = 100
CLOSE_TIMEOUT = 10.0
SNAPSHOT_LIMIT = 60_000
SNAPSHOT_TIMEOUT = 5.0
EXPRESSION, STATEMENTS, SCRIPT = "expression", "statements", "script"
ILLEGAL_RETURN = "SyntaxError: Illegal return statement"

# Runs one check in the page: exceptions become a falsy result with the error
# recorded; a function value (a check written as `() => ...`) is called, as
# Playwright's own evaluate would.
_WRAPPER = """async () => {
  const check = %s;
  const describe = (v) => {
    if (v === undefined) return 'undefined';
    if (typeof v === 'function') return 'function';
    if (typeof Element !== 'undefined' && v instanceof Element)
      return '<' + v.tagName.toLowerCase() + (v.id ? '#' + v.id : '') + '>';
    try { const s = JSON.stringify(v); return (s === undefined ? String(v) : s).slice(0, 1000); }
    catch (e) { return String(v).slice(0, 1000); }
  };
  try {
    let value = await check();
    if (typeof value === 'function') value = await value();
    return {truthy: !!value, value: describe(value), error: null};
  } catch (e) {
    const name = e && e.name ? e.name + ': ' : '';
    const message = e && e.message !== undefined ? e.message : String(e);
    return {truthy: false, value: 'undefined', error: (name + message).slice(0, 1000)};
  }
}"""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium to run: ``explicit``, else $CHROMIUM_PATH, else a well-known install; None if none.

    An explicit path or $CHROMIUM_PATH that does not resolve to an executable
    gives None rather than silently falling back to another browser.
    """
    chosen = explicit or os.environ.get("CHROMIUM_PATH")
    if chosen:
        return executable_path(chosen)
    for candidate in CHROMIUM_PATHS + CHROMIUM_NAMES:
        found = executable_path(candidate)
        if found:
            return found
    return None


def executable_path(name_or_path: str) -> str | None:
    """An absolute path to an executable file (a bare name is looked up on PATH), or None."""
    found = shutil.which(name_or_path)
    return os.path.abspath(found) if found else None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``passed`` is None for natural-language checks (not judged)."""

    check: str
    js: str | None
    passed: bool | None
    value: str
    error: str | None
    seconds: float
    quiet: bool = False  # still false when the page went quiet, so polling ended early


@dataclass(frozen=True)
class PageReport:
    """Everything one visit to a page found."""

    url: str
    results: list[CheckResult]
    console_errors: list[str]
    page_errors: list[str]
    failed_requests: list[str]
    seconds: float
    load_error: str | None = None
    snapshot: str | None = None  # what VisitOptions.snapshot_js returned, bounded
    screenshot: bytes | None = None  # a PNG of the viewport, when VisitOptions.screenshot asked for one

    @property
    def passed(self) -> int:
        """How many JavaScript checks passed."""
        return sum(1 for r in self.results if r.passed is True)

    @property
    def failed(self) -> int:
        """How many JavaScript checks failed."""
        return sum(1 for r in self.results if r.passed is False)


@dataclass
class _Events:
    """What the page reported while it was open, bounded in size."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    snapshot: str | None = None
    screenshot: bytes | None = None

    def on_console(self, message: Any) -> None:
        """Keep console messages of type error (but not the browser's own favicon probe)."""
        if message.type != "error":
            return
        where = (message.location or {}).get("url") or ""
        if where == f"{self.origin}/favicon.ico":
            return
        _append(self.console_errors, f"{message.text} ({where})" if where else message.text)

    def on_page_error(self, error: Any) -> None:
        """Keep uncaught exceptions."""
        name = getattr(error, "name", "") or "Error"
        _append(self.page_errors, f"{name}: {getattr(error, 'message', error)}")

    def on_request_failed(self, request: Any) -> None:
        """Keep requests of the page's origin that failed at the network level."""
        failure = request.failure or "failed"
        if self._own(request.url) and "ERR_ABORTED" not in failure:
            _append(self.failed_requests, f"{request.method} {request.url}: {failure}")

    def on_response(self, response: Any) -> None:
        """Keep responses of the page's origin with status >= 400."""
        if response.status >= 400 and self._own(response.url):
            _append(self.failed_requests, f"{response.request.method} {response.url}: HTTP {response.status}")

    def _own(self, url: str) -> bool:
        """True if ``url`` has the page's origin."""
        return _origin(url) == self.origin


def _append(items: list[str], text: str) -> None:
    """Append a shortened ``text`` unless the list is full (a page can log in a loop)."""
    if len(items) < LIST_LIMIT:
        items.append(_shorten(text, MESSAGE_LIMIT))


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def run_checks(
    url: str,
    checks: Sequence[Check],
    *,
    chromium_path: str,
    check_timeout: float = 15.0,
    total_timeout: float = 60.0,
    load_timeout: float = 30.0,
    options: VisitOptions | None = None,
) -> PageReport:
    """Load ``url`` in headless Chromium and judge every JavaScript check; always closes the browser.

    Checks are polled concurrently, each for up to ``check_timeout`` seconds
    after the page's ``load`` event (waited for up to ``load_timeout``); the
    whole visit is bounded by ``total_timeout`` (closing the browser may add
    up to CLOSE_TIMEOUT). ``options`` adds routing and a snapshot (see VisitOptions).
    """
    deadline = time.monotonic() + total_timeout
    visit = _Visit(url, list(checks), chromium_path, check_timeout, load_timeout, deadline,
                   options or VisitOptions())
    report: PageReport = _run_coroutine(_run_visit(visit))
    return report


@dataclass(frozen=True)
class VisitOptions:
    """Extras for one visit: local routes, offline mode and a snapshot expression.

    ``routes`` maps a URL prefix (``https://cdn.jsdelivr.net/``) to a local folder:
    a request under the prefix gets the file at the rest of its path, or a 404,
    and never reaches the network. ``offline`` aborts every other request that
    is not to the page's own origin. ``snapshot_js`` is evaluated once after the
    checks; its string value lands in ``PageReport.snapshot``. ``screenshot``
    takes a PNG of the viewport after the checks (``PageReport.screenshot``).
    ``quiet_seconds``: a false check stops being polled once the page has been
    quiet that long (0 polls every check for its whole time).
    """

    routes: Mapping[str, Path] = field(default_factory=dict)
    offline: bool = False
    snapshot_js: str | None = None
    screenshot: bool = False
    quiet_seconds: float = QUIET_SECONDS  # a false check ends once the page was quiet this long (0: poll it out)


@dataclass(frozen=True)
class _Visit:
    """What one call of run_checks was asked to do."""

    url: str
    checks: list[Check]
    chromium_path: str
    check_timeout: float
    load_timeout: float
    deadline: float
    options: VisitOptions = field(default_factory=VisitOptions)


def _run_coroutine(coroutine: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _run_visit(visit: _Visit) -> PageReport:
    """Open a browser, visit the page, judge the checks and build the report."""
    from playwright.async_api import async_playwright  # why: the optional `browser` extra, loaded to visit

    started = time.monotonic()
    events = _Events(origin=_origin(visit.url))
    results: dict[int, CheckResult] = {}
    load_error = None
    with tempfile.TemporaryDirectory(prefix="browser-home-") as home:
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=visit.chromium_path,
                    headless=True,
                    args=list(CHROMIUM_ARGS),
                    env=dict[str, str | float | bool](browser_env(home)),
                    timeout=_ms(_left(visit.deadline)),
                )
                try:
                    load_error = await _judge_page(browser, visit, events, results)
                finally:
                    await _close(browser)
        except Exception as exc:  # launch failures and a dead browser still give a report
            load_error = load_error or _shorten(f"browser: {exc}", MESSAGE_LIMIT)
    return PageReport(
        url=visit.url,
        results=_complete(visit.checks, results, load_error),
        console_errors=events.console_errors,
        page_errors=events.page_errors,
        failed_requests=events.failed_requests,
        seconds=round(time.monotonic() - started, 3),
        load_error=load_error,
        snapshot=events.snapshot,
        screenshot=events.screenshot,
    )


async def _judge_page(browser: Any, visit: _Visit, events: _Events, results: dict[int, CheckResult]) -> str | None:
    """Load the page and poll its checks into ``results``; return why loading failed, if it did."""
    context = await browser.new_context(service_workers="block", accept_downloads=False)
    await context.add_init_script(NO_WEBRTC_SCRIPT)  # every frame and popup: WebRTC connects below routing
    guard = OutboundGuard(events.origin)

    async def handle(route: Any) -> None:
        """Route one request of the context."""
        await _route(route, visit.options, events.origin, guard)

    async def handle_socket(socket: Any) -> None:
        """Connect a WebSocket only to an allowed host."""
        if await guard.allows(socket.url):
            socket.connect_to_server()
        else:
            await socket.close(code=1008, reason="blocked: internal address")

    await context.route("**/*", handle)
    await context.route_web_socket(lambda _url: True, handle_socket)
    quiet = QuietPage(visit.options.quiet_seconds)
    if quiet.seconds > 0:
        await context.add_init_script(quiet_probe(visit.check_timeout))
    page = await context.new_page()
    page.on("console", events.on_console)
    page.on("pageerror", events.on_page_error)
    page.on("requestfailed", events.on_request_failed)
    page.on("response", events.on_response)
    page.on("request", quiet.on_request)
    page.on("requestfinished", quiet.on_request_done)
    page.on("requestfailed", quiet.on_request_done)
    load_error = await _load(page, visit.url, min(visit.load_timeout, _left(visit.deadline)))
    if load_error and not load_error.startswith("timeout"):
        return load_error  # nothing was loaded, so there is nothing to judge
    until = min(time.monotonic() + visit.check_timeout, visit.deadline)
    jobs = [_judge(page, i, check, until, results, quiet) for i, check in enumerate(visit.checks) if check.js]
    await asyncio.gather(*jobs)
    if visit.options.snapshot_js:
        events.snapshot = await _snapshot(page, visit.options.snapshot_js, visit.deadline)
    if visit.options.screenshot:
        with contextlib.suppress(Exception):  # a picture for the dashboard; never a reason to fail
            events.screenshot = await asyncio.wait_for(page.screenshot(type="png"), SNAPSHOT_TIMEOUT)
    return load_error


async def _snapshot(page: Any, expression: str, deadline: float) -> str | None:
    """The string value of ``expression`` in the page, bounded; None if it failed or hung."""
    try:
        value = await asyncio.wait_for(page.evaluate(expression), timeout=min(SNAPSHOT_TIMEOUT, _left(deadline)))
    except Exception:
        return None
    return _shorten(str(value), SNAPSHOT_LIMIT) if value is not None else None


async def _route(route: Any, options: VisitOptions, origin: str, guard: OutboundGuard) -> None:
    """Serve a routed URL from its local folder, abort foreign requests when offline or internal, pass the rest."""
    url = route.request.url
    for prefix, folder in options.routes.items():
        if url.startswith(prefix):
            await _fulfill_local(route, Path(folder), urlsplit(url[len(prefix):]).path)
            return
    if options.offline and _origin(url) != origin and not url.startswith(("data:", "blob:")):
        await route.abort("internetdisconnected")
        return
    if not await guard.allows(url):
        await route.abort("blockedbyclient")
        return
    await send_one_hop(route)


async def _fulfill_local(route: Any, folder: Path, rest: str) -> None:
    """Answer with the file at ``rest`` inside ``folder``, or 404 (also for anything outside it)."""
    root = folder.resolve()
    target = (root / unquote(rest).lstrip("/")).resolve()
    headers = {"access-control-allow-origin": "*", "cache-control": "no-store"}
    if not target.is_relative_to(root) or not target.is_file():
        await route.fulfill(status=404, body="404 Not Found (no local copy)", headers=headers)
        return
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    await route.fulfill(status=200, body=target.read_bytes(), headers={**headers, "content-type": kind})


async def _load(page: Any, url: str, timeout: float) -> str | None:
    """Navigate and wait for ``load``; return an error text, or None when it loaded."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout  # why: the `browser` extra

    try:
        await page.goto(url, wait_until="load", timeout=_ms(timeout))
    except PlaywrightTimeout:
        return f"timeout: no load event within {timeout:.1f} s"
    except Exception as exc:
        return _shorten(f"load failed: {exc}", MESSAGE_LIMIT)
    return None


async def _judge(page: Any, index: int, check: Check, until: float, results: dict[int, CheckResult],
                 quiet: QuietPage | None = None) -> None:
    """Poll one check until it is truthy, ``until``, or (still false) the page is quiet; store its result."""
    started = time.monotonic()
    form: str | None = EXPRESSION
    outcome = _failure("not evaluated")
    ended_quiet = False
    while form is not None:
        outcome, form = await _evaluate(page, check.js or "", form, until)
        if outcome["truthy"] or time.monotonic() + POLL_INTERVAL >= until:
            break
        if quiet is not None and await quiet.holds(page):
            ended_quiet = True  # nothing is loading or changing: the value will not change without a user
            break
        await asyncio.sleep(POLL_INTERVAL)
    results[index] = replace(_result(check, outcome, time.monotonic() - started), quiet=ended_quiet)


async def _evaluate(page: Any, js: str, form: str, until: float) -> tuple[dict[str, Any], str | None]:
    """Evaluate a check once; returns the outcome and the form to use next (None: give up).

    Forms are tried in order: an expression, then a script judged by its last
    value, then (only if the script has a top-level ``return``) a function body.
    """
    from playwright.async_api import Error as PlaywrightError  # why: the optional `browser` extra (see _run_visit)

    try:
        evaluation = page.evaluate(_wrapped(js, form))
        outcome = await asyncio.wait_for(evaluation, timeout=max(until - time.monotonic(), 0.05))
    except TimeoutError:
        return _failure("timed out waiting for the page to answer"), form
    except PlaywrightError as exc:
        message = str(exc)
        if "SyntaxError" not in message:
            return _failure(message), form  # e.g. the page navigated mid-evaluation: try again
        if form == EXPRESSION:
            return await _evaluate(page, js, SCRIPT, until)
        return _failure(message.split("\n")[0]), None
    if form == SCRIPT and (outcome.get("error") or "").startswith(ILLEGAL_RETURN):
        return await _evaluate(page, js, STATEMENTS, until)
    return outcome, form


def _wrapped(js: str, form: str) -> str:
    """The check as a function of the wrapper, in the form ``form``."""
    if form == EXPRESSION:
        body = js.strip().rstrip(";").strip()
        return _WRAPPER % f"async () => (\n{body}\n)"
    if form == STATEMENTS:
        return _WRAPPER % f"async () => {{\n{js}\n}}"
    # A script's completion value, as Playwright's evaluate(string) gives a grader.
    return _WRAPPER % f"async () => (0, eval)({json.dumps(js)})"


def _failure(error: str) -> dict[str, Any]:
    """An outcome for an evaluation that did not run to completion."""
    return {"truthy": False, "value": "undefined", "error": error}


def _result(check: Check, outcome: dict[str, Any], seconds: float) -> CheckResult:
    """A CheckResult from the last outcome of a check."""
    error = outcome.get("error")
    return CheckResult(
        check=check.text,
        js=check.js,
        passed=bool(outcome.get("truthy")),
        value=_shorten(str(outcome.get("value")), VALUE_LIMIT),
        error=_shorten(error.removeprefix("Page.evaluate: "), MESSAGE_LIMIT) if error else None,
        seconds=round(seconds, 3),
    )


def _complete(checks: list[Check], results: dict[int, CheckResult], load_error: str | None) -> list[CheckResult]:
    """One result per check, in order: natural-language ones unjudged, unjudged JavaScript ones failed."""
    reason = load_error or "not evaluated before the time ran out"
    return [results.get(i) or _unjudged(check, reason) for i, check in enumerate(checks)]


def _unjudged(check: Check, reason: str) -> CheckResult:
    """The result of a check that was never evaluated."""
    if check.js is None:
        return CheckResult(check=check.text, js=None, passed=None, value="", error=None, seconds=0.0)
    return CheckResult(check=check.text, js=check.js, passed=False, value="", error=reason, seconds=0.0)


async def _close(browser: Any) -> None:
    """Close the browser, bounded; leaving ``async_playwright`` kills it if this fails."""
    try:
        await asyncio.wait_for(browser.close(), timeout=CLOSE_TIMEOUT)
    except Exception:
        pass


def browser_env(home: str) -> dict[str, str]:
    """A minimal environment for Chromium: no secrets, a throwaway HOME."""
    env = {key: os.environ[key] for key in BROWSER_ENV_KEYS if key in os.environ}
    env["HOME"] = home
    return env


def _left(deadline: float) -> float:
    """Seconds until ``deadline``, never below a small floor so calls fail fast rather than hang."""
    return max(deadline - time.monotonic(), 0.1)


def _ms(seconds: float) -> float:
    """Seconds as Playwright's milliseconds."""
    return max(seconds, 0.1) * 1000
