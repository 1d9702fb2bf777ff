"""Bound what parsing an untrusted JSON body may cost, before any Python object is built.

``json.loads`` turns every ``{}`` into a dict of about 64 bytes plus its list
slot: a 20 MB body of ``{"pad":[{},{},...]}`` becomes about 500 MB of objects
before the secret can be read. ``check_json_shape`` scans the raw bytes (C-level
counting plus a scan that stops at the first limit passed, no copy of the body)
and refuses a body with too many objects and lists, too many values or too
deep a nesting. ``DOCUMENT_LIMITS`` are the wider bounds for JSON data (an
attachment, a fetched document, a derive source): a 10 MB attachment of ``{}``
once added 270 MB to a worker; a data file of 200,000 records still passes.
Their depth is not checked (the readers of JSON data catch ``RecursionError``),
so a document whose bracket and comma counts are within the limits needs no
token scan at all.

Never decodes, stores or logs the body; only counts its structural characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from utils.errors import InvalidRequest

# A valid request holds at most 100 checks and MAX_ATTACHMENTS attachments; these leave room for any real
# one (and for naming the field of an over-long list), while 20,000 dicts cost a few MB, not gigabytes.
MAX_JSON_CONTAINERS = 20_000
MAX_JSON_VALUES = 200_000
MAX_JSON_DEPTH = 64

# A whole string (an unterminated one runs to the end: retrying it at every later quote would take quadratic
# time, and json.loads stops there anyway), or one bracket.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


@dataclass(frozen=True)
class JsonLimits:
    """How many containers and values, and how deep, a JSON text may be before it is parsed."""

    containers: int = MAX_JSON_CONTAINERS
    values: int = MAX_JSON_VALUES
    depth: int | None = MAX_JSON_DEPTH  # None: not checked (the document readers catch RecursionError)


BODY_LIMITS = JsonLimits()
DOCUMENT_LIMITS = JsonLimits(containers=250_000, values=2_500_000, depth=None)


def _surely_within(raw: bytes, limits: JsonLimits) -> bool:
    """True when even counting brackets and commas inside strings, ``raw`` stays within the container and value
    limits (an honest 10 MB document of records then costs three C-level counts, not a scan of every string)."""
    return (raw.count(b"{") + raw.count(b"[") <= limits.containers and raw.count(b",") < limits.values
            and raw.count(b'"') <= 4 * limits.values)


def check_json_shape(raw: bytes, limits: JsonLimits = BODY_LIMITS, what: str = "request body") -> None:
    """Raise InvalidRequest if ``raw`` (``what``) nests deeper or holds more containers or values than ``limits``.

    Works on the raw bytes without copying them: quotes are counted first (every
    string is a key or a value), then one scan walks the strings and brackets,
    stopping as soon as a limit is passed; each byte is looked at a bounded
    number of times, so the scan is linear in the body.
    """
    if limits.depth is None and _surely_within(raw, limits):
        return  # C-level counts bound the containers and values from above: no token scan needed
    if raw.count(b'"') > 4 * limits.values:
        raise InvalidRequest(f"{what} holds more than {limits.values} JSON values (strings)")
    depth = containers = commas_in_strings = 0
    for match in _TOKEN.finditer(raw):
        token = match.group() if match.end() - match.start() == 1 else b'"'
        if token == b'"':
            commas_in_strings += raw.count(b",", match.start(), match.end())
        elif token[0] in _OPENERS:
            depth, containers = depth + 1, containers + 1
            if limits.depth is not None and depth > limits.depth:
                raise InvalidRequest(f"{what} is nested too deeply (more than {limits.depth} levels)")
            if containers > limits.containers:
                raise InvalidRequest(f"{what} holds more than {limits.containers} JSON objects and lists")
        else:
            depth -= 1
    values = raw.count(b",") - commas_in_strings + 1
    if values > limits.values:
        raise InvalidRequest(f"{what} holds about {values} JSON values; the limit is {limits.values}")
