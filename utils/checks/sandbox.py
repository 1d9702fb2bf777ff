"""Evaluate untrusted JavaScript in a sandboxed page of headless Chromium and return its JSON value.

Computed derive blocks and the ``files``/``run`` check kinds hand the service a
script written by a model. ``Sandbox`` runs each one in a fresh browser
context of one Chromium launch (launched on first use, reused for every
evaluation of a build stage, relaunched if it died):

- **no network**: the context is offline, every request and WebSocket is
  refused before it leaves the browser, host names resolve to nothing, and the
  page has no ``fetch``, ``XMLHttpRequest``, ``WebSocket``, ``EventSource``,
  ``WebTransport``, WebRTC, ``sendBeacon`` or workers;
- **no storage**: the page is ``about:blank`` (an opaque origin, so
  ``localStorage``, ``indexedDB`` and cookies are refused) in a throwaway
  context and profile;
- **bounded time**: a script still running after its timeout is abandoned and
  its context closed (its renderer with it); if even that hangs the browser is
  killed and the next evaluation relaunches it;
- **bounded memory**: V8's heap is capped (``--js-flags=--max-old-space-size``);
  a page that runs out crashes, which becomes a ``SandboxError``;
- **bounded output**: the value is serialized inside the page and refused there
  when longer than ``result_limit`` characters, so a huge value never crosses
  into Python.

Named values (``files``, ``sizes``, ``sources``...) are given to the script as
globals; they must be JSON-serializable. The expression may be an expression,
a promise, a function (called with no arguments) or statements that
``return`` a value.

Never gives the page the service's environment (Chromium gets a minimal one,
see ``browser_env``), never downloads a browser, never raises anything but
``SandboxError`` from ``evaluate``, and never blocks its caller much beyond the
timeout it was given. Playwright (the ``browser`` extra) is imported only when
a browser is launched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from utils.checks.browser import CHROMIUM_ARGS, browser_env

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 512
DEFAULT_RESULT_LIMIT = 10_000_000  # characters of the serialized value
SETUP_TIMEOUT = 60.0  # launching the browser, parsing the named values into the page
CLOSE_TIMEOUT = 5.0
MESSAGE_LIMIT = 1000

# Host names resolve to nothing, so even a request that slipped past routing finds no server.
SANDBOX_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--webrtc-ip-handling-policy=disable_non_proxied_udp")

# Runs in every frame before any script: the page has no way to talk to the network or spawn workers.
_NO_NETWORK = """(() => {
  for (const name of ['fetch', 'XMLHttpRequest', 'WebSocket', 'WebSocketStream', 'EventSource', 'WebTransport',
                      'RTCPeerConnection', 'webkitRTCPeerConnection', 'RTCDataChannel', 'Worker', 'SharedWorker',
                      'BroadcastChannel', 'open']) {
    try { delete globalThis[name]; } catch (e) {}
    try { Object.defineProperty(globalThis, name, {value: undefined, writable: false, configurable: false}); }
    catch (e) {}
  }
  try { Object.defineProperty(Navigator.prototype, 'sendBeacon', {value: undefined}); } catch (e) {}
  try { Object.defineProperty(Navigator.prototype, 'serviceWorker', {get: () => undefined}); } catch (e) {}
})();"""

# Puts the named values on globalThis (parsed from one JSON text).
_SET_VALUES = """(text) => {
  const values = JSON.parse(text);
  for (const [name, value] of Object.entries(values)) globalThis[name] = value;
}"""

# Compiles the script (an expression, else statements with `return`), awaits it, calls a function value,
# and serializes the value in the page, refusing one longer than the limit.
_RUN = """async ([source, limit]) => {
  const AsyncFunction = (async () => {}).constructor;
  const text = (e) => {
    if (e && typeof e === 'object' && 'message' in e) return (e.name ? e.name + ': ' : '') + e.message;
    try { return 'a thrown value: ' + String(e); } catch (_) { return 'a thrown value'; }
  };
  let run;
  try { run = new AsyncFunction('return (\\n' + source.trim().replace(/;+$/, '') + '\\n);'); }
  catch (asExpression) {
    try { run = new AsyncFunction(source); }
    catch (asStatements) { return {error: 'syntax', message: text(asStatements)}; }
  }
  let value;
  try {
    value = await run();
    if (typeof value === 'function') value = await value();
  } catch (e) { return {error: 'thrown', message: text(e)}; }
  const type = typeof value;
  if (type === 'undefined') return {type};
  if (type === 'string') return value.length > limit ? {error: 'too_large', size: value.length} : {type, text: value};
  let json;
  try { json = JSON.stringify(value); }
  catch (e) { return {error: 'unserializable', message: text(e)}; }
  if (json === undefined) return {type, json: 'null'};
  return json.length > limit ? {error: 'too_large', size: json.length} : {type, json};
}"""


class SandboxError(Exception):
    """Why a script gave no value: ``kind`` is one of KINDS, ``str()`` a sentence naming the problem."""

    KINDS = ("syntax", "thrown", "timeout", "memory", "too_large", "unserializable", "input", "browser")

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SandboxValue:
    """What a script returned: its JavaScript ``type`` (``typeof``) and its value as JSON data.

    A string is ``value`` as is; ``undefined`` is None with type "undefined";
    any other value is what ``JSON.stringify`` made of it, parsed.
    """

    type: str
    value: Any


class Sandbox:
    """One headless Chromium for several sandboxed evaluations; use as a context manager or call ``close``."""

    failure = SandboxError  # what ``evaluate`` raises, for callers that see the sandbox through a seam

    def __init__(self, chromium_path: str, *, memory_mb: int = DEFAULT_MEMORY_MB,
                 timeout: float = DEFAULT_TIMEOUT, result_limit: int = DEFAULT_RESULT_LIMIT):
        self.chromium_path = chromium_path
        self.memory_mb = memory_mb
        self.timeout = timeout
        self.result_limit = result_limit
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._home: tempfile.TemporaryDirectory[str] | None = None
        self.launches = 0  # how many times Chromium was started (a relaunch follows a kill)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def evaluate(self, script: str, values: Mapping[str, Any] | None = None, *,
                 timeout: float | None = None) -> SandboxValue:
        """Run ``script`` with ``values`` as globals; its value, or SandboxError saying why there is none."""
        limit = self.timeout if timeout is None else timeout
        try:
            payload = json.dumps(dict(values or {}), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SandboxError("input", f"the values given to the script are not JSON: {exc}") from None
        with self._lock:
            loop = self._ensure_loop()
            future = asyncio.run_coroutine_threadsafe(self._evaluate(script, payload, limit), loop)
            try:
                outcome = future.result(timeout=limit + SETUP_TIMEOUT + 3 * CLOSE_TIMEOUT)
            except FutureTimeout:
                future.cancel()
                self._call(self._stop_browser(), CLOSE_TIMEOUT * 2)
                raise SandboxError("browser", "the browser stopped answering; it was closed") from None
        return _value_of(outcome, limit, self)

    def close(self) -> None:
        """Close the browser and stop the sandbox's event loop; the next evaluation starts them again."""
        with self._lock:
            if self._loop is None:
                return
            self._call(self._stop_browser(), CLOSE_TIMEOUT * 3)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(CLOSE_TIMEOUT)
            if not self._loop.is_running():
                self._loop.close()
            self._loop = self._thread = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The sandbox's event loop, running in its own daemon thread."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-loop", daemon=True)
            self._thread.start()
        return self._loop

    def _call(self, coroutine: Any, timeout: float) -> None:
        """Run ``coroutine`` on the loop and wait up to ``timeout``; errors are swallowed (used for cleanup)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=timeout)

    async def _launch(self) -> Any:
        """The running browser, launched now if there is none."""
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        await self._stop_browser()
        from playwright.async_api import async_playwright  # why: the optional `browser` extra, loaded to evaluate

        self._home = tempfile.TemporaryDirectory(prefix="sandbox-home-")
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.chromium_path,
            headless=True,
            args=[*CHROMIUM_ARGS, *SANDBOX_ARGS, f"--js-flags=--max-old-space-size={self.memory_mb}"],
            env=browser_env(self._home.name),
            timeout=SETUP_TIMEOUT * 1000,
        )
        self.launches += 1
        return self._browser

    async def _stop_browser(self) -> None:
        """Close the browser, bounded; stopping Playwright kills it if closing hangs."""
        browser, playwright, home = self._browser, self._playwright, self._home
        self._browser = self._playwright = self._home = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT)
        if playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(playwright.stop(), CLOSE_TIMEOUT)
        if home is not None:
            with contextlib.suppress(Exception):
                home.cleanup()

    async def _evaluate(self, script: str, payload: str, timeout: float) -> dict[str, Any]:
        """One evaluation in a fresh context; the outcome as the page reported it, or an error outcome."""
        try:
            browser = await self._launch()
        except Exception as exc:
            return {"error": "browser", "message": f"the browser could not be started: {_first_line(exc)}"}
        context = await browser.new_context(offline=True, service_workers="block", accept_downloads=False,
                                            java_script_enabled=True)
        crashed = asyncio.Event()
        try:
            await context.route("**/*", lambda route: route.abort("internetdisconnected"))
            await context.route_web_socket(lambda _url: True, _refuse_socket)
            await context.add_init_script(_NO_NETWORK)
            page = await context.new_page()
            page.on("crash", lambda _page: crashed.set())
            await asyncio.wait_for(page.evaluate(_SET_VALUES, payload), SETUP_TIMEOUT)
            run = asyncio.ensure_future(page.evaluate(_RUN, [script, self.result_limit]))
            return await asyncio.wait_for(run, timeout)
        except TimeoutError:
            return {"error": "timeout"}
        except Exception as exc:
            if crashed.is_set() or "crash" in str(exc).lower():
                return {"error": "memory"}
            return {"error": "browser", "message": _first_line(exc)}
        finally:
            await self._discard(context)

    async def _discard(self, context: Any) -> None:
        """Close a context (and the renderer of a page still running); kill the browser if that hangs."""
        try:
            await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
        except Exception:
            await self._stop_browser()


async def _refuse_socket(socket: Any) -> None:
    """Close a WebSocket before it connects anywhere."""
    with contextlib.suppress(Exception):
        await socket.close(code=1008, reason="no network in the sandbox")


def _value_of(outcome: dict[str, Any], timeout: float, sandbox: Sandbox) -> SandboxValue:
    """The SandboxValue of a page outcome, or the SandboxError it describes."""
    error = outcome.get("error")
    if error:
        raise SandboxError(error, _describe(outcome, timeout, sandbox))
    kind = outcome["type"]
    if kind == "undefined":
        return SandboxValue(kind, None)
    if kind == "string":
        return SandboxValue(kind, outcome["text"])
    return SandboxValue(kind, json.loads(outcome["json"]))


def _describe(outcome: dict[str, Any], timeout: float, sandbox: Sandbox) -> str:
    """A sentence saying why the script gave no value."""
    error, message = outcome["error"], _shorten(str(outcome.get("message") or ""))
    if error == "syntax":
        return f"the script does not parse: {message}"
    if error == "thrown":
        return f"the script threw {message}"
    if error == "timeout":
        return f"the script was still running after {timeout:g} s and was stopped"
    if error == "memory":
        return (f"the script's page crashed, most likely out of memory (the limit is {sandbox.memory_mb} MB), "
                "and was stopped")
    if error == "too_large":
        return (f"the script returned {outcome.get('size', 0):,} characters; at most {sandbox.result_limit:,} "
                "are accepted")
    if error == "unserializable":
        return f"the script's value cannot be written as JSON: {message}"
    return f"the sandbox failed: {message}" if not message.startswith("the ") else message


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's text, shortened."""
    return _shorten(str(exc).strip().split("\n")[0] or type(exc).__name__)


def _shorten(text: str) -> str:
    """``text`` cut to MESSAGE_LIMIT characters."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
