"""Keep the self-check's browser off internal networks: which URLs a page under test may reach.

Generated code runs in Chromium with the server's network. A page must not
reach loopback (other than its own origin, the self-check's server), private,
link-local (cloud metadata at 169.254.169.254), shared (100.64/10), multicast
or reserved addresses: ``OutboundGuard.allows`` resolves a URL's host and
refuses it when any of its addresses is not global. Public hosts (CDNs) pass.

Never raises on a strange URL (it is refused) and never lets a name through
without resolving it; results are cached per visit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

LOCAL_SCHEMES = ("data", "blob", "about", "chrome-error")


def is_public_address(address: str) -> bool:
    """True for a global unicast address (an IPv4-mapped IPv6 address is judged as its IPv4 one)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(is_public_address(address) for address in addresses)
