"""Validate a raw /api-endpoint body against the request contract of DESIGN.md.

Every failure names the offending field. The secret is compared in constant
time and never returned, stored or logged; the validated TaskRequest has none.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from utils.errors import InvalidRequest, RequestTooLarge, SecretMismatch
from utils.intake.check_kinds import is_javascript
from utils.intake.json_limits import check_json_shape
from utils.records import AttachmentRef, Check, TaskRequest

MAX_FIELD_CHARS = {"email": 320, "task": 200, "nonce": 200, "secret": 1024, "brief": 100_000}
MAX_CHECKS = 100
MAX_CHECK_CHARS = 10_000
MAX_URL_CHARS = 2048
SINGLE_LINE_FIELDS = ("email", "task", "nonce")

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ROUND_TEXT = re.compile(r"[0-9]{1,4}")
_ASCII_HOST = re.compile(r"[A-Za-z0-9._-]+")


def parse_body(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode a JSON object from the raw body, whatever the Content-Type says."""
    if len(raw) > max_bytes:
        raise RequestTooLarge(f"request body is {len(raw)} bytes; the limit is {max_bytes} (MAX_REQUEST_BYTES)")
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    check_json_shape(raw)  # bounds the objects json.loads may build, before it builds any
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not UTF-8 text; send a JSON object") from None
    try:
        body = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply to parse") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {_json_type(body)}")
    return body


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A dict from an object's pairs; ValueError when a key repeats (parsers disagree on which value wins)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {_shown(key)} appears twice in one object; send each field once")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not a JSON number")


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted and cut for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def check_secret(body: dict[str, Any], secret: str) -> None:
    """Raise SecretMismatch unless the body's ``secret`` equals ``secret`` (constant-time comparison)."""
    given_secret = _required_text(body, "secret")
    if not hmac.compare_digest(given_secret.encode(), secret.encode()):
        raise SecretMismatch("secret does not match", field="secret")


def validate_request(body: dict[str, Any], secret: str) -> TaskRequest:
    """Check the secret first, then every field; return the request without its secret."""
    check_secret(body, secret)
    fields = {name: _required_text(body, name) for name in ("email", "task", "nonce", "brief")}
    round_number = _round(body.get("round"))
    checks = parse_checks(body.get("checks"))
    evaluation_url = _evaluation_url(body.get("evaluation_url"))
    attachments = _attachments(body.get("attachments"))
    return TaskRequest(round=round_number, checks=checks, evaluation_url=evaluation_url,
                       attachments=attachments, **fields)


def _required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"'{name}' is required", field=name)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string, not {_json_type(value)}", field=name)
    if not value.strip():
        raise InvalidRequest(f"'{name}' must not be empty", field=name)
    if len(value) > MAX_FIELD_CHARS[name]:
        raise InvalidRequest(f"'{name}' is longer than {MAX_FIELD_CHARS[name]} characters", field=name)
    _check_text(value, name, single_line=name in SINGLE_LINE_FIELDS)
    return value.strip() if name != "brief" else value


def _check_text(value: str, field: str, *, single_line: bool = False) -> None:
    """Refuse NUL, unpaired UTF-16 surrogates and, in one-line fields, control characters."""
    if "\x00" in value:
        raise InvalidRequest(f"'{field}' contains a NUL character", field=field)
    if _SURROGATE.search(value):
        raise InvalidRequest(f"'{field}' contains an unpaired UTF-16 surrogate (\\ud800-\\udfff); "
                             f"send valid Unicode", field=field)
    if single_line and _CONTROL.search(value.strip()):
        raise InvalidRequest(f"'{field}' contains a control character (a line break or tab?)", field=field)


def _round(value: Any) -> int:
    if value is None:
        raise InvalidRequest("'round' is required", field="round")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"'round' must be an integer >= 1, not {_json_type(value)}", field="round")
    if isinstance(value, str):
        if not _ROUND_TEXT.fullmatch(value.strip()):
            raise InvalidRequest(f"'round' must be an integer >= 1, got {_shown(value, 20)}", field="round")
        value = int(value)
    number: int = value
    if not 1 <= number <= 1000:
        raise InvalidRequest(f"'round' must be between 1 and 1000, got {number}", field="round")
    return number


def parse_checks(value: Any) -> tuple[Check, ...]:
    """Checks from strings (``js:``-prefixed or bare JavaScript expressions) and ``{"js": ...}`` objects."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'checks' must be a list, not {_json_type(value)}", field="checks")
    if len(value) > MAX_CHECKS:
        raise InvalidRequest(f"'checks' has more than {MAX_CHECKS} entries", field="checks")
    return tuple(_check(item, f"checks[{i}]") for i, item in enumerate(value))


def _check(item: Any, field: str) -> Check:
    if isinstance(item, dict):
        js = item.get("js")
        if not isinstance(js, str) or not js.strip():
            raise InvalidRequest(f"'{field}' must have a non-empty string 'js'", field=field)
        _bounded(js, field)
        _check_text(js, field)
        return Check(text=js, js=js.strip())
    if not isinstance(item, str) or not item.strip():
        raise InvalidRequest(f"'{field}' must be a non-empty string or an object with 'js'", field=field)
    _bounded(item, field)
    _check_text(item, field)
    if item.lstrip().lower().startswith("js:"):
        return Check(text=item, js=item.lstrip()[3:].strip())
    if is_javascript(item):  # a bare expression, as graders send them
        return Check(text=item, js=item.strip())
    return Check(text=item)


def _bounded(text: str, field: str) -> None:
    if len(text) > MAX_CHECK_CHARS:
        raise InvalidRequest(f"'{field}' is longer than {MAX_CHECK_CHARS} characters", field=field)


def _evaluation_url(value: Any) -> str | None:
    """The callback URL: http(s) with a valid host and port, no credentials; private addresses are allowed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'evaluation_url' must be a string, not {_json_type(value)}", field="evaluation_url")
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"'evaluation_url' is longer than {MAX_URL_CHARS} characters", field="evaluation_url")
    _check_text(url, "evaluation_url", single_line=True)
    if any(c.isspace() for c in url):
        raise InvalidRequest("'evaluation_url' contains whitespace", field="evaluation_url")
    problem = _url_problem(url)
    if problem:
        raise InvalidRequest(f"'evaluation_url' must be an http or https URL: {problem}", field="evaluation_url")
    return url


def _url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a callback, or None."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        return f"it does not parse ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the scheme is {_shown(parts.scheme, 20)}" if parts.scheme else "it has no scheme"
    if "@" in parts.netloc:
        return "it must not carry a user name or password (they would be stored and logged)"
    if not parts.hostname or not _valid_host(parts):
        return "it has no valid host"
    return None


def _valid_host(parts: SplitResult) -> bool:
    """Whether the host is an IP address, an ASCII DNS name or an IDNA-encodable name."""
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return False
        return True
    if host.isascii():
        labels = host.removesuffix(".").split(".")
        return bool(_ASCII_HOST.fullmatch(host)) and len(host) <= 253 and all(0 < len(x) <= 63 for x in labels)
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _attachments(value: Any) -> tuple[AttachmentRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'attachments' must be a list, not {_json_type(value)}", field="attachments")
    refs = []
    for i, item in enumerate(value):
        field = f"attachments[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{field}' must be an object with 'name' and 'url'", field=field)
        name, url = item.get("name"), item.get("url")
        if not isinstance(name, str):
            raise InvalidRequest(f"'{field}.name' must be a string", field=f"{field}.name")
        if not isinstance(url, str) or not url.strip():
            raise InvalidRequest(f"'{field}.url' must be a non-empty string (a data: URI)", field=f"{field}.url")
        refs.append(AttachmentRef(name=name, url=url))
    return tuple(refs)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
