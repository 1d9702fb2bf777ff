"""Validate a raw /api-endpoint body against the request contract of DESIGN.md.

Every failure names the offending field. The secret is compared in constant
time and never returned, stored or logged; the validated TaskRequest has none.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from utils.errors import InvalidRequest, RequestTooLarge, SecretMismatch
from utils.models import AttachmentRef, Check, TaskRequest

MAX_FIELD_CHARS = {"email": 320, "task": 200, "nonce": 200, "secret": 1024, "brief": 100_000}
MAX_CHECKS = 100
MAX_CHECK_CHARS = 10_000


def parse_body(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode a JSON object from the raw body, whatever the Content-Type says."""
    if len(raw) > max_bytes:
        raise RequestTooLarge(f"request body is {len(raw)} bytes; the limit is {max_bytes} (MAX_REQUEST_BYTES)")
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not UTF-8 text; send a JSON object") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply to parse") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {_json_type(body)}")
    return body


def validate_request(body: dict[str, Any], secret: str) -> TaskRequest:
    """Check every field and the secret; return the request without its secret."""
    fields = {name: _required_text(body, name) for name in ("email", "task", "nonce", "brief")}
    given_secret = _required_text(body, "secret")
    round_number = _round(body.get("round"))
    checks = parse_checks(body.get("checks"))
    evaluation_url = _evaluation_url(body.get("evaluation_url"))
    attachments = _attachments(body.get("attachments"))
    if not hmac.compare_digest(given_secret.encode(), secret.encode()):
        raise SecretMismatch("secret does not match", field="secret")
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
    if "\x00" in value:
        raise InvalidRequest(f"'{name}' contains a NUL character", field=name)
    return value.strip() if name != "brief" else value


def _round(value: Any) -> int:
    if value is None:
        raise InvalidRequest("'round' is required", field="round")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"'round' must be an integer >= 1, not {_json_type(value)}", field="round")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise InvalidRequest(f"'round' must be an integer >= 1, got {value[:20]!r}", field="round")
        value = int(value)
    if not 1 <= value <= 1000:
        raise InvalidRequest(f"'round' must be between 1 and 1000, got {value}", field="round")
    return value


def parse_checks(value: Any) -> tuple[Check, ...]:
    """Checks from strings (``js:`` prefix for JavaScript) and ``{"js": ...}`` objects."""
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
        return Check(text=js, js=js.strip())
    if not isinstance(item, str) or not item.strip():
        raise InvalidRequest(f"'{field}' must be a non-empty string or an object with 'js'", field=field)
    _bounded(item, field)
    if item.lstrip().lower().startswith("js:"):
        return Check(text=item, js=item.lstrip()[3:].strip())
    return Check(text=item)


def _bounded(text: str, field: str) -> None:
    if len(text) > MAX_CHECK_CHARS:
        raise InvalidRequest(f"'{field}' is longer than {MAX_CHECK_CHARS} characters", field=field)


def _evaluation_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'evaluation_url' must be a string, not {_json_type(value)}", field="evaluation_url")
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        parts = None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("'evaluation_url' must be an http or https URL", field="evaluation_url")
    return value.strip()


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
