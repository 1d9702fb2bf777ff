"""Keep the self-check's browser off internal networks: which URLs a page under test may reach.

Generated code runs in Chromium with the server's network. A page must not
reach loopback (other than its own origin, the self-check's server), private,
link-local (cloud metadata at 169.254.169.254), shared (100.64/10), multicast
or reserved addresses: ``OutboundGuard.allows`` resolves a URL's host and
refuses it when any of its addresses is not global. Public hosts (CDNs) pass.
``send_one_hop`` sends an allowed request without following redirects, so each
hop of a redirect is a new request the guard sees. Whether an address is public
is decided by ``utils.addresses.refusal_reason``, the same check the build-time
fetch uses (IPv4 inside IPv6 -- mapped, NAT64, 6to4 -- judged by its IPv4).

WebRTC opens its own connections (STUN over UDP, TURN over TCP) below the
request routing, so a TURN server at a loopback address was reached although a
fetch to it was refused: ``NO_WEBRTC_SCRIPT`` runs in every frame and popup
before the page's scripts and removes every ``RTC*`` constructor.

Never raises on a strange URL (it is refused) and never lets a name through
without resolving it; results are cached per visit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from utils.addresses import refusal_reason

LOCAL_SCHEMES = ("data", "blob", "about", "chrome-error")
# What route.fetch says when it cannot send a request -> the error the page sees (else "failed").
FETCH_ERRORS = (("ECONNREFUSED", "connectionrefused"), ("ENOTFOUND", "namenotresolved"),
                ("EAI_AGAIN", "namenotresolved"), ("ETIMEDOUT", "timedout"), ("Timeout", "timedout"))
# A fulfilled answer without CORS headers gets this origin, which matches no page, so a cross-origin read of it
# fails as it would have without interception (Playwright adds the page's own origin to one that has none).
NO_CROSS_ORIGIN_READS = "https://no-cross-origin-reads.invalid"


# Runs before any script of every frame and popup (Playwright's init scripts): no RTCPeerConnection and friends,
# each replaced by a non-configurable undefined so a page cannot put one back.
NO_WEBRTC_SCRIPT = """(() => {
  for (const name of Object.getOwnPropertyNames(window).filter((n) => /^(webkit|moz)?RTC/.test(n))) {
    try { delete window[name]; } catch (error) {}
    try { Object.defineProperty(window, name, {value: undefined, writable: false, configurable: false}); }
    catch (error) {}
  }
})();"""


def is_public_address(address: str) -> bool:
    """True for a global unicast address (IPv4 inside IPv6 -- mapped, NAT64, 6to4 -- is judged as its IPv4 one)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return refusal_reason(ip) is None


class OutboundGuard:
    """Decides, per URL, whether a page loaded from ``own_origin`` may request it."""

    def __init__(self, own_origin: str):
        self.own_origin = own_origin
        self._hosts: dict[str, bool] = {}

    async def allows(self, url: str) -> bool:
        """True for the page's own origin, local schemes, and hosts whose every address is public."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in LOCAL_SCHEMES:
            return True
        if f"{parts.scheme}://{parts.netloc}" == self.own_origin:
            return True
        if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            return False
        host = parts.hostname
        if host not in self._hosts:
            self._hosts[host] = await _resolves_to_public_only(host)
        return self._hosts[host]


async def _resolves_to_public_only(host: str) -> bool:
    """Whether ``host`` resolves, and only to public addresses."""
    try:
        ipaddress.ip_address(host.split("%")[0])
        return is_public_address(host)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(is_public_address(address) for address in addresses)


async def send_one_hop(route: Any) -> None:
    """Send the request without following redirects and hand the answer (a redirect too) to the page.

    Chromium follows the redirects of a ``route.continue_()`` without routing
    them again, so an allowed URL answering 302 to an internal address would
    slip past the guard; a redirect fulfilled here is a new, routed request.
    """
    try:
        response = await route.fetch(max_redirects=0)
    except Exception as exc:  # report it to the page as Chromium would have
        code = next((code for mark, code in FETCH_ERRORS if mark in str(exc)), "failed")
        with contextlib.suppress(Exception):  # the page may be gone already
            await route.abort(code)
        return
    headers = response.headers
    if "access-control-allow-origin" not in headers:  # else Playwright's fulfill would allow any cross-origin read
        headers = {**headers, "access-control-allow-origin": NO_CROSS_ORIGIN_READS}
    with contextlib.suppress(Exception):
        await route.fulfill(response=response, headers=headers)
