"""Which IP addresses are public: the one check shared by the build-time fetch guard and the browser's guard.

    refusal_reason(address) -> None for a public address, else why not ("loopback", "private", ...)

IPv4 carried inside IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``,
6to4 ``2002::/16``) is judged by its IPv4 address, so ``64:ff9b::7f00:1`` is
loopback wherever it is checked. Pure: never resolves a name, never connects.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refusal_reason(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is refused (None: it is a public unicast address)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = refusal_reason(embedded)
        return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    for test, name in ((address.is_loopback, "loopback"), (address.is_link_local, "link-local"),
                       (address.is_multicast, "multicast"), (address.is_unspecified, "unspecified"),
                       (address.is_reserved, "reserved"), (address.is_private, "private")):
        if test:
            return name
    return None if address.is_global else "not a public address"


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64 or 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour
