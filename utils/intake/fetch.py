"""Build-time fetches of the public http(s) URLs a brief names, under the SSRF policy of DESIGN.md.

    brief -> urls_in_brief -> fetch_all (concurrent, each bounded in bytes and seconds) -> FetchedDocument

The address check wraps the HTTP library's connection, not the URL's text: a
``requests`` session whose urllib3 connections resolve the host, refuse the
connection when ANY resolved address is loopback, private, link-local,
multicast, reserved, unspecified or otherwise not global (IPv4 inside IPv6 --
mapped, NAT64, 6to4 -- is judged by its IPv4 address), and then connect to the
checked address itself, so DNS cannot answer differently between check and
connect. Decimal and hex host forms (``http://2130706433/``) resolve to the
address they mean and are judged by it. Redirects are followed by the same
session, so every hop opens its connection through the same check.
``FETCH_ALLOW_PRIVATE=true`` turns the private-address refusal off (LAN data,
tests). Proxies from the environment are ignored: a proxy would connect for us.

Each fetch sends a descriptive User-Agent (the service and a contact address),
reads at most ``max_bytes`` (then stops, keeping what it read and saying so),
and stops after ``timeout`` seconds in all: one ``FetchDeadline`` per fetch
covers every redirect hop, every name resolution, every address tried (at most
``MAX_ADDRESSES``) and the headers as much as the body, and shuts the sockets down
when it passes (a
server dripping its headers a byte at a time once kept a 3 s fetch going for
minutes, since each read had its own timeout). A failure is a value
(``error``), never an exception: the build goes on. The HTTP reason phrase is
cut to ``REASON_CHARS`` printable characters before it reaches a prompt or a
warning.

Never sends a secret (no Authorization, no cookies), never fetches a URL from
an attachment or a check, never logs a document's content.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from utils.addresses import refusal_reason
from utils.config import Config
from utils.deadline import Deadline

log = logging.getLogger(__name__)

SERVICE_AGENT = "llm-code-deployment-system/1.0"
MAX_URLS = 8
MAX_URL_CHARS = 2048
MAX_REDIRECTS = 5
PARALLEL_FETCHES = 4
CHUNK_BYTES = 64 * 1024
MAX_ADDRESSES = 4  # addresses one host may make a fetch try (each under the same deadline)
REASON_CHARS = 60

Resolver = Callable[[str, int], list[str]]

_URL = re.compile(r"https?://[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~'\""


class AddressRefused(Exception):
    """A connection the SSRF policy refused before any socket was opened (not an OSError on purpose:
    urllib3 must not retry it or wrap it as a network failure)."""


class CredentialsInURL(Exception):
    """A URL naming a user (``user:password@host``): refused before any connection, since requests would send it."""


@dataclass(frozen=True)
class FetchLimits:
    """How much one fetch may read and how long it may take."""

    max_bytes: int = 5 * 1024 * 1024
    timeout: float = 10.0


@dataclass(frozen=True)
class FetchedDocument:
    """One build-time fetch as the model is told about it: what came back, or why nothing did."""

    url: str
    final_url: str = ""
    status: int | None = None
    content_type: str = ""
    data: bytes = b""
    truncated: bool = False  # stopped at the size cap
    error: str = ""  # "" when the fetch succeeded (2xx)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether a 2xx answer came back."""
        return not self.error


# ---------------------------------------------------------------- URLs in the brief

def urls_in_brief(brief: str, limit: int = MAX_URLS) -> list[str]:
    """The distinct http(s) URLs the brief names, in order, without trailing prose punctuation."""
    found: list[str] = []
    for match in _URL.finditer(brief):
        url = _trim(match.group(0))
        if len(url) <= MAX_URL_CHARS and _has_host(url) and url not in found:
            found.append(url)
        if len(found) >= limit:
            break
    return found


def _trim(url: str) -> str:
    """``url`` without sentence punctuation and unbalanced closing parentheses at its end."""
    while url:
        if url[-1] in _TRAILING:
            url = url[:-1]
        elif url[-1] == ")" and url.count(")") > url.count("("):
            url = url[:-1]
        else:
            break
    return url


def _has_host(url: str) -> bool:
    """Whether the URL parses with a host and a well-formed port."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return bool(parts.hostname)


# ---------------------------------------------------------------- the address policy

def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (as the C library reads it: decimal, hex...)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AddressGuard:
    """Resolves a host and returns the addresses a connection may use, or raises AddressRefused.

    ``public_stand_ins`` is a test seam: (address, port) pairs judged as public, so a
    loopback server can play a public site while every other loopback port stays refused.
    """

    allow_private: bool = False
    resolve: Resolver = system_resolver
    public_stand_ins: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def checked_addresses(self, host: str, port: int) -> list[str]:
        """Every resolved address of ``host``, all of them allowed; AddressRefused if any is not."""
        host = host.strip("[]")
        try:
            addresses = self.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"could not resolve {host!r}: {exc}") from None
        if not addresses:
            raise AddressRefused(f"{host!r} resolved to no address")
        for text in addresses:
            reason = self._reason(text, port)
            if reason:
                shown = host if host == text else f"{host!r} resolves to {text}, which"
                raise AddressRefused(f"refused: {shown} is {reason} (set FETCH_ALLOW_PRIVATE=true for LAN data)")
        return addresses

    def _reason(self, text: str, port: int) -> str | None:
        """Why one resolved address is refused, or None."""
        if self.allow_private or (text, port) in self.public_stand_ins:
            return None
        try:
            return refusal_reason(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            return "not an IP address"


# ---------------------------------------------------------------- the checked connection

class FetchDeadline:
    """One fetch's time limit over all its hops and sockets: when it passes, every socket it opened is shut down,
    so a read blocked on a server that drips its headers returns at once."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Seconds left (0 when passed)."""
        return max(0.0, self.ends - time.monotonic())

    @property
    def passed(self) -> bool:
        """True once the time is up (whether or not the timer has shut the sockets yet)."""
        return self.expired or not self.remaining()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        """Stop the timer (the fetch is over)."""
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    """Shut a socket down in both directions (a blocked recv returns); it may be closed already."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _checked_within(guard: AddressGuard, host: str, port: int, deadline: FetchDeadline | None) -> list[str]:
    """``guard.checked_addresses`` within the fetch's deadline: a resolver that never answers cannot hold the
    fetch (its thread is left to the system resolver's own timeouts)."""
    if deadline is None:
        return guard.checked_addresses(host, port)
    outcome: dict[str, Any] = {}

    def resolve() -> None:
        try:
            outcome["addresses"] = guard.checked_addresses(host, port)
        except BaseException as exc:  # handed to the fetch's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=resolve, name="fetch-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise ReadTimeoutError(None, "", f"resolving {host!r} took longer than the fetch's time limit")  # type: ignore[arg-type]
    if "error" in outcome:
        raise outcome["error"]
    addresses: list[str] = outcome["addresses"]
    return addresses


class _CheckedConnection:
    """Mixed into urllib3's connections: resolve, check every address, then connect to a checked one."""

    guard: AddressGuard
    deadline: FetchDeadline | None = None
    # set by urllib3's HTTPConnection, which this class is mixed into (declared here for the type checker)
    _dns_host: str
    port: int
    timeout: float | None
    source_address: tuple[str, int] | None
    socket_options: Sequence[tuple[int, int, int | bytes]] | None

    def _new_conn(self) -> socket.socket:
        addresses = _checked_within(self.guard, self._dns_host, self.port, self.deadline)
        failure: OSError | None = None
        for address in addresses[:MAX_ADDRESSES]:
            timeout = self.timeout
            if self.deadline is not None:
                if self.deadline.passed:
                    raise ReadTimeoutError(None, "", "the fetch's time limit passed")  # type: ignore[arg-type]
                timeout = min(timeout, self.deadline.remaining()) if isinstance(timeout, (int, float)) \
                    else self.deadline.remaining()
            try:
                sock = socket.create_connection((address, self.port), timeout, source_address=self.source_address)
            except OSError as exc:
                failure = exc
                continue
            if self.deadline is not None:
                self.deadline.watch(sock)
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            return sock
        # arg-type: at run time ``self`` is the urllib3 HTTPConnection this class is mixed into
        raise NewConnectionError(self, f"Failed to establish a new connection: {failure}")  # type: ignore[arg-type]


class _GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connection pools open every connection through ``guard``."""

    def __init__(self, guard: AddressGuard, deadline: FetchDeadline | None = None):
        self.guard = guard
        self.deadline = deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Replace the pool classes with ones whose connections check their addresses."""
        super().init_poolmanager(*args, **kwargs)
        attributes = {"guard": self.guard, "deadline": self.deadline}
        plain = type("CheckedHTTPConnection", (_CheckedConnection, HTTPConnection), attributes)
        tls = type("CheckedHTTPSConnection", (_CheckedConnection, HTTPSConnection), attributes)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }


def guarded_session(guard: AddressGuard, user_agent: str, deadline: FetchDeadline | None = None) -> requests.Session:
    """A session that connects only where ``guard`` allows, ignores proxies and sends ``user_agent``; with a
    ``deadline``, every socket it opens is shut down when the deadline passes."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment, no .netrc credentials
    session.max_redirects = MAX_REDIRECTS
    adapter = _GuardedAdapter(guard, deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json, text/csv, text/*;q=0.9, */*;q=0.5",
                            "Accept-Encoding": "gzip, deflate"})
    return session


def user_agent_for(email: str, override: str = "") -> str:
    """The User-Agent of build-time fetches: ``override``, else the service's name and the contact address."""
    if override.strip():
        return override.strip()
    contact = email.strip() or "no contact given"
    return f"{SERVICE_AGENT} (build-time data fetch for a generated app; contact: {contact})"


# ---------------------------------------------------------------- fetching

def fetch_document(guard: AddressGuard, user_agent: str, url: str, limits: FetchLimits) -> FetchedDocument:
    """GET ``url`` within the size cap and one time limit over every hop; every failure becomes ``error``."""
    started = time.monotonic()
    deadline = FetchDeadline(limits.timeout)
    try:
        if urlsplit(url).username is not None:  # requests would send it as Basic auth: never send a credential
            raise CredentialsInURL("refused: the URL carries credentials (user:password@); ask for a public URL")
        with guarded_session(guard, user_agent, deadline) as session:
            return _fetch(session, url, limits, deadline, started)
    except (AddressRefused, CredentialsInURL) as exc:
        error = str(exc)
    except requests.exceptions.TooManyRedirects:
        error = f"more than {MAX_REDIRECTS} redirects"
    except (requests.exceptions.Timeout, ReadTimeoutError):
        error = f"timed out (limit {limits.timeout:g} s)"
    except (requests.exceptions.RequestException, HTTPError) as exc:  # urllib3's errors: the body is read raw
        error = f"timed out (limit {limits.timeout:g} s)" if deadline.passed else f"request failed: {_short(exc)}"
    finally:
        deadline.cancel()
    seconds = round(time.monotonic() - started, 3)
    log.info("build-time fetch failed", extra={"url": _without_credentials(url), "error": error, "seconds": seconds})
    return FetchedDocument(url=url, error=error, seconds=seconds)


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part, for the log."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else url


def _fetch(session: requests.Session, url: str, limits: FetchLimits, deadline: FetchDeadline,
           started: float) -> FetchedDocument:
    """The request itself: stream the body until it ends, the size cap or the time cap."""
    with session.get(url, stream=True, timeout=(min(5.0, limits.timeout), limits.timeout)) as response:
        data, truncated, timed_out = _read_body(response, limits, deadline)
        seconds = round(time.monotonic() - started, 3)
        error = ""
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code} {reason_phrase(response.reason)}".strip()
        elif timed_out:
            error = f"timed out after {seconds:g} s (limit {limits.timeout:g} s) with {len(data):,} bytes read"
        document = FetchedDocument(url=url, final_url=response.url, status=response.status_code,
                                   content_type=response.headers.get("Content-Type", ""), data=data,
                                   truncated=truncated, error=error, seconds=seconds)
    log.info("build-time fetch", extra={"url": url, "status": document.status, "bytes": len(data),
                                        "truncated": truncated, "seconds": seconds, "error": error or None})
    return document


def _read_body(response: requests.Response, limits: FetchLimits, deadline: FetchDeadline) -> tuple[bytes, bool, bool]:
    """(bytes read, stopped at the size cap, stopped at the time cap).

    ``read1`` returns whatever has arrived: ``iter_content`` waits for a whole
    chunk, so a body with a Content-Length dripping in a byte at a time kept
    the fetch far past its time cap. When the deadline shuts the socket down
    mid-body, what was read is kept.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size > limits.max_bytes:
                return b"".join(chunks)[: limits.max_bytes], True, False
            if deadline.passed:
                return b"".join(chunks), False, True
    except (HTTPError, OSError):
        if not deadline.passed:
            raise
    return b"".join(chunks), False, deadline.expired


def reason_phrase(reason: str | bytes | None) -> str:
    """A server's HTTP reason phrase as it may be shown: printable ASCII, whitespace collapsed, at most
    REASON_CHARS characters (a server may send 64 KB of instructions there)."""
    text = reason.decode("latin-1") if isinstance(reason, bytes) else (reason or "")
    text = " ".join("".join(c if " " <= c <= "~" else " " for c in text[:REASON_CHARS * 4]).split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"


def _short(exc: Exception) -> str:
    """A one-line, bounded description of a request failure (the innermost reason)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    inner = re.search(r"\((?:Caused by )?\w+\((?:<[^>]*>: )?'?([^'()]+)", text)
    return (inner.group(1) if inner else text)[:200]


def fetch_all(urls: Sequence[str], *, guard: AddressGuard, user_agent: str,
              limits: FetchLimits = FetchLimits()) -> list[FetchedDocument]:
    """Fetch every URL concurrently (at most PARALLEL_FETCHES at once), in the order given."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL_FETCHES, len(urls))) as pool:
        return list(pool.map(lambda url: fetch_document(guard, user_agent, url, limits), urls))


def fetch_brief_urls(urls: Sequence[str], *, email: str, config: Config, deadline: Deadline) -> list[FetchedDocument]:
    """Fetch the brief's URLs under the configured policy, each within a quarter of the time left."""
    guard = AddressGuard(allow_private=config.fetch_allow_private == "true")
    timeout = max(0.5, min(config.fetch_timeout_seconds, deadline.remaining() / 4))
    limits = FetchLimits(max_bytes=config.fetch_max_bytes, timeout=timeout)
    return fetch_all(urls, guard=guard, user_agent=user_agent_for(email, config.fetch_user_agent), limits=limits)
