"""The sandboxed page that runs model-written scripts: values in, JSON out, and hostile scripts contained.

Every hostile script (an endless loop, a huge allocation, requests to a local
listener, a 50 MB value, a throw) must end with a clear SandboxError, and the
next evaluation in the same sandbox must still work. Never reaches the
internet and never downloads a browser.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.browser_support import chromium_or_skip
from utils.checks.sandbox import Sandbox, SandboxError

pytestmark = pytest.mark.browser

MEMORY_MB = 128
TIMEOUT = 3.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox (one Chromium launch) for the whole module, as a build stage would use it."""
    with Sandbox(chromium_or_skip(), memory_mb=MEMORY_MB, timeout=TIMEOUT) as box:
        yield box


class Listener:
    """A TCP listener on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            client.close()

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.close()
        self.thread.join(5)


def still_works(sandbox: Sandbox) -> None:
    """The sandbox answers a plain evaluation after whatever came before."""
    assert sandbox.evaluate("files['a.txt'].toUpperCase()", {"files": {"a.txt": "next"}}).value == "NEXT"


@pytest.mark.parametrize(("script", "kind", "value"), [
    ("1 + 2", "number", 3),
    ("Promise.resolve({a: [1, 2]})", "object", {"a": [1, 2]}),
    ("() => 'called'", "string", "called"),
    ("const x = 4;\nreturn x * 2;", "number", 8),
    ("'as is\\n'", "string", "as is\n"),
    ("undefined", "undefined", None),
    ("[NaN, 1.5]", "object", [None, 1.5]),
])
def test_a_value_comes_back_as_json_data(sandbox: Sandbox, script: str, kind: str, value: object) -> None:
    result = sandbox.evaluate(script)
    assert (result.type, result.value) == (kind, value)


def test_named_values_are_globals_of_that_evaluation_only(sandbox: Sandbox) -> None:
    rows = [{"region": "north", "sales": 30}, {"region": "south", "sales": 12}]
    script = "sources[0].reduce((sum, row) => sum + row.sales, 0) + sizes['a.csv']"
    assert sandbox.evaluate(script, {"sources": [rows], "sizes": {"a.csv": 100}}).value == 142
    assert sandbox.evaluate("typeof sources").value == "undefined"


def test_an_endless_loop_is_stopped_at_its_timeout(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("(() => { while (true) {} })()", timeout=1.5)
    assert caught.value.kind == "timeout"
    assert str(caught.value) == "the script was still running after 1.5 s and was stopped"
    still_works(sandbox)


def test_a_huge_allocation_crashes_only_its_page(sandbox: Sandbox) -> None:
    hog = "(() => { const keep = []; while (true) keep.push(new Array(100000).fill(Math.random())); })()"
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate(hog, timeout=60)
    assert caught.value.kind == "memory", caught.value
    assert f"out of memory (the limit is {MEMORY_MB} MB)" in str(caught.value)
    still_works(sandbox)


def test_no_request_leaves_the_page(sandbox: Sandbox) -> None:
    script = """(async () => {
      const url = 'http://127.0.0.1:PORT/';
      const tried = {};
      const attempt = async (name, act) => {
        try { tried[name] = String(await act()); } catch (e) { tried[name] = 'refused: ' + e; }
      };
      const frame = document.createElement('iframe');
      document.body.appendChild(frame);
      const other = frame.contentWindow;
      await attempt('fetch', () => fetch(url));
      await attempt('frame fetch', () => other.fetch(url).then(r => r.status));
      await attempt('xhr', () => { const x = new other.XMLHttpRequest(); x.open('GET', url, false); x.send(); });
      await attempt('socket', () => new other.WebSocket(url.replace('http', 'ws')));
      await attempt('worker', () => new other.Worker('data:text/javascript,fetch("' + url + '")'));
      await attempt('peer', () => new other.RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.1:PORT'}]}));
      await attempt('image', () => new Promise((ok, no) => {
        const image = new Image(); image.onload = () => ok('loaded'); image.onerror = () => no('error');
        image.src = url + 'pixel.png';
      }));
      await attempt('import', () => import(url + 'module.js'));
      await attempt('frame', () => new Promise((ok) => {
        const inner = document.createElement('iframe'); inner.onload = () => ok('frame event');
        inner.src = url; document.body.appendChild(inner);
      }));
      await attempt('named host', () => new Promise((ok, no) => {
        const image = new Image(); image.onload = () => ok('loaded'); image.onerror = () => no('error');
        image.src = 'http://localhost:PORT/pixel.png';
      }));
      return tried;
    })()"""
    with Listener() as listener:
        tried = sandbox.evaluate(script.replace("PORT", str(listener.port)), timeout=20).value
        still_works(sandbox)
    assert listener.connections == 0
    refused = {name for name, outcome in tried.items() if outcome.startswith("refused")}
    every = {"fetch", "frame fetch", "xhr", "socket", "worker", "peer", "image", "import", "named host"}
    assert refused >= every, tried


def test_no_storage(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="SecurityError"):
        sandbox.evaluate("localStorage.setItem('k', 'v')")
    with pytest.raises(SandboxError, match="SecurityError"):
        sandbox.evaluate("document.cookie = 'k=v'")
    with pytest.raises(SandboxError, match="SecurityError"):
        sandbox.evaluate("indexedDB.open('db')")


def test_a_50_mb_value_is_refused_inside_the_page(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("'x'.repeat(50 * 1024 * 1024)")
    assert caught.value.kind == "too_large"
    assert str(caught.value) == "the script returned 52,428,800 characters; at most 10,000,000 are accepted"
    with pytest.raises(SandboxError, match="^the script returned 12,000,001 characters"):
        sandbox.evaluate("Array.from({length: 6e6}, (_, i) => i % 10)")
    still_works(sandbox)


@pytest.mark.parametrize(("script", "kind", "message"), [
    ("(() => { throw new TypeError('no rows'); })()", "thrown", "the script threw TypeError: no rows"),
    ("Promise.reject('plain')", "thrown", "the script threw a thrown value: plain"),
    ("undefinedName.field", "thrown", "the script threw ReferenceError: undefinedName is not defined"),
    ("[1, 2", "syntax", "the script does not parse: SyntaxError: Unexpected token '}'"),
    ("10n", "unserializable", "the script's value cannot be written as JSON: TypeError: Do not know how to "
                              "serialize a BigInt"),
])
def test_a_script_that_gives_no_value_says_why(sandbox: Sandbox, script: str, kind: str, message: str) -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate(script)
    assert (caught.value.kind, str(caught.value)) == (kind, message)
    still_works(sandbox)


def test_values_that_are_not_json_are_refused_before_the_browser() -> None:
    box = Sandbox("/nonexistent/chromium")
    with pytest.raises(SandboxError) as caught:
        box.evaluate("1", {"when": object()})
    assert caught.value.kind == "input"
    assert box.launches == 0
    box.close()


def test_a_missing_browser_is_a_clear_error() -> None:
    with Sandbox("/nonexistent/chromium") as box, pytest.raises(SandboxError) as caught:
        box.evaluate("1")
    assert caught.value.kind == "browser"
    assert str(caught.value).startswith("the browser could not be started: ")


def test_one_launch_serves_every_evaluation(sandbox: Sandbox) -> None:
    before = sandbox.launches
    for number in range(5):
        assert sandbox.evaluate(f"{number} * 2").value == number * 2
    assert sandbox.launches == before
