"""utils/checks/outbound.py: the self-check's Chromium reaches its own page and public hosts, never internal ones.

A page served on loopback tries a loopback stand-in for a cloud metadata
service (by IP and by name), by fetch, image, script and WebSocket; the stand-in
must see no request at all, while the page's own files still load.
"""

from __future__ import annotations

import pytest
from flask import Flask, Response

from tests.browser_support import chromium_or_skip
from tests.fakes.data_site import ConnectionCounter
from tests.fakes.server import LocalServer
from utils.checks.browser import run_checks
from utils.checks.outbound import is_public_address
from utils.records import Check


@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.10", False), ("172.16.5.4", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("fe80::1", False), ("fd00::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("not an address", False),
    ("8.8.8.8", True), ("151.101.1.69", True), ("2606:4700:4700::1111", True),
])
def test_only_global_unicast_addresses_are_public(address: str, public: bool):
    assert is_public_address(address) is public


class MetadataStandIn(LocalServer):
    """A loopback server standing in for a cloud metadata service; records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        app = Flask("metadata")

        @app.route("/", defaults={"path": ""})
        @app.route("/<path:path>")
        def anything(path: str) -> Response:
            self.hits.append(path)
            return Response("iam-credentials-SECRET", headers={"Access-Control-Allow-Origin": "*"})

        super().__init__(app)


def page_server(metadata_port: int) -> LocalServer:
    """The page under test: its own script, then attempts at the metadata stand-in."""
    app = Flask("page")
    targets = [f"http://127.0.0.1:{metadata_port}/latest/meta-data/by-ip",
               f"http://localhost:{metadata_port}/latest/meta-data/by-name"]
    page = """<!doctype html><html><head><title>outbound</title><script src="own.js"></script></head><body>
<script>
window.reached = [];
const targets = %s;
for (const url of targets) {
  fetch(url).then((r) => r.text()).then((t) => window.reached.push(t), () => {});
  const img = new Image(); img.src = url + "/img";
  const s = document.createElement("script"); s.src = url + "/script"; document.head.appendChild(s);
}
try { const ws = new WebSocket("ws://127.0.0.1:%d/ws"); ws.onopen = () => window.reached.push("ws"); } catch (e) {}
window.tried = true;
</script></body></html>""" % (targets, metadata_port)  # noqa: UP031 (the page's JavaScript is full of braces)

    @app.get("/")
    def index() -> Response:
        return Response(page, content_type="text/html")

    @app.get("/own.js")
    def own() -> Response:
        return Response("window.ownScriptLoaded = true;", content_type="text/javascript")

    return LocalServer(app)


def test_the_page_reaches_its_own_files_but_no_internal_address():
    chromium = chromium_or_skip()
    with MetadataStandIn() as metadata, page_server(metadata.port) as page:
        checks = [Check(text="own", js="window.ownScriptLoaded === true"),
                  Check(text="tried", js="window.tried === true"),
                  Check(text="nothing came back",
                        js="new Promise((r) => setTimeout(() => r(window.reached.length === 0), 1500))")]
        report = run_checks(page.url + "/", checks, chromium_path=chromium, check_timeout=10)
    assert [r.passed for r in report.results] == [True, True, True], report.results
    assert metadata.hits == [], "the browser reached the metadata stand-in"


def test_a_redirect_to_an_internal_address_is_refused_but_one_to_an_allowed_url_is_followed():
    """Chromium follows a continued request's redirect without routing it again: an allowed URL answering 302
    to an internal one must not reach it, while a redirect to an allowed URL still loads."""
    chromium = chromium_or_skip()
    with MetadataStandIn() as metadata:
        app = Flask("redirecting")
        internal = f"http://127.0.0.1:{metadata.port}/latest/meta-data/via-redirect"

        @app.get("/")
        def index() -> Response:
            return Response("""<!doctype html><html><body><script>
window.reached = [];
fetch("go").then((r) => r.text()).then((t) => window.reached.push(t), () => {});
const f = document.createElement("iframe"); f.src = "go?frame"; document.body.appendChild(f);
fetch("moved").then((r) => r.text()).then((t) => { window.moved = t; });
window.tried = true;
</script></body></html>""", content_type="text/html")

        @app.get("/go")
        def go() -> Response:
            return Response("", status=302, headers={"Location": internal})

        @app.get("/moved")
        def moved() -> Response:
            return Response("", status=301, headers={"Location": "/target"})

        @app.get("/target")
        def target() -> Response:
            return Response("arrived", content_type="text/plain")

        with LocalServer(app) as page:
            checks = [Check(text="tried", js="window.tried === true"),
                      Check(text="an allowed redirect is followed", js="window.moved === 'arrived'"),
                      Check(text="nothing came back",
                            js="new Promise((r) => setTimeout(() => r(window.reached.length === 0), 1500))")]
            report = run_checks(page.url + "/", checks, chromium_path=chromium, check_timeout=10)
    assert metadata.hits == [], "the browser followed a redirect to the metadata stand-in"
    assert [r.passed for r in report.results] == [True, True, True], report.results


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:c0a8:1::1"])
def test_ipv4_inside_nat64_and_6to4_is_judged_by_its_ipv4_address(address: str):
    assert is_public_address(address) is False


def test_webrtc_cannot_reach_a_loopback_turn_server_from_any_frame():
    """TURN over TCP opens its connection below request routing: WebRTC must not exist in any frame."""
    chromium = chromium_or_skip()
    with ConnectionCounter() as turn:
        app = Flask("webrtc")
        attempt = """
window.tried = (() => {
  const kinds = [];
  for (const scope of [window, document.body.appendChild(document.createElement('iframe')).contentWindow]) {
    const Connection = scope.RTCPeerConnection || scope.webkitRTCPeerConnection;
    kinds.push(typeof Connection);
    if (!Connection) continue;
    const pc = new Connection({iceServers: [{urls: 'turn:127.0.0.1:PORT?transport=tcp', username: 'u',
                                            credential: 'c'}], iceTransportPolicy: 'relay'});
    pc.createDataChannel('x');
    pc.createOffer().then((offer) => pc.setLocalDescription(offer));
  }
  return kinds.join(',');
})();""".replace("PORT", str(turn.port))

        @app.get("/")
        def index() -> Response:
            return Response(f"<!doctype html><html><body><script>{attempt}</script></body></html>",
                            content_type="text/html")

        with LocalServer(app) as page:
            checks = [Check(text="no WebRTC", js="window.tried === 'undefined,undefined'"),
                      Check(text="waited", js="new Promise((r) => setTimeout(() => r(true), 2000))")]
            report = run_checks(page.url + "/", checks, chromium_path=chromium, check_timeout=10)
    assert turn.connections == 0, "WebRTC opened a TCP connection to a loopback TURN server"
    assert [r.passed for r in report.results] == [True, True], report.results
