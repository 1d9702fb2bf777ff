"""Bound what parsing an untrusted JSON body may cost, before any Python object is built.

``json.loads`` turns every ``{}`` into a dict of about 64 bytes plus its list
slot: a 20 MB body of ``{"pad":[{},{},...]}`` becomes about 500 MB of objects
before the secret can be read. ``check_json_shape`` scans the raw bytes (C-level
counting plus a scan that stops at the first limit passed, no copy of the body)
and refuses a body with too many objects and lists, too many values or too
deep a nesting.

Never decodes, stores or logs the body; only counts its structural characters.
"""

from __future__ import annotations

import re

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


def check_json_shape(raw: bytes) -> None:
    """Raise InvalidRequest if ``raw`` nests deeper than MAX_JSON_DEPTH or holds too many containers or values.

    Works on the raw bytes without copying them: quotes are counted first (every
    string is a key or a value), then one scan walks the strings and brackets,
    stopping as soon as a limit is passed; each byte is looked at a bounded
    number of times, so the scan is linear in the body.
    """
    if raw.count(b'"') > 4 * MAX_JSON_VALUES:
        raise InvalidRequest(f"request body holds more than {MAX_JSON_VALUES} JSON values (strings)")
    depth = containers = commas_in_strings = 0
    for match in _TOKEN.finditer(raw):
        token = match.group() if match.end() - match.start() == 1 else b'"'
        if token == b'"':
            commas_in_strings += raw.count(b",", match.start(), match.end())
        elif token[0] in _OPENERS:
            depth, containers = depth + 1, containers + 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"request body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
            if containers > MAX_JSON_CONTAINERS:
                raise InvalidRequest(f"request body holds more than {MAX_JSON_CONTAINERS} JSON objects and lists")
        else:
            depth -= 1
    values = raw.count(b",") - commas_in_strings + 1
    if values > MAX_JSON_VALUES:
        raise InvalidRequest(f"request body holds about {values} JSON values; the limit is {MAX_JSON_VALUES}")
