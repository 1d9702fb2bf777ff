"""Bound what parsing an untrusted JSON body may cost, before any Python object is built.

``json.loads`` turns every ``{}`` into a dict of about 64 bytes plus its list
slot: a 20 MB body of ``{"pad":[{},{},...]}`` becomes about 500 MB of objects
before the secret can be read. ``check_json_shape`` scans the raw bytes with C
regex and counting (no Python object per value) and refuses a body with too
many objects and lists, too many values or too deep a nesting.

Never decodes, stores or logs the body; only counts its structural characters.
"""

from __future__ import annotations

import itertools
import re

from utils.errors import InvalidRequest

# A valid request holds at most 100 checks and MAX_ATTACHMENTS attachments; these leave room for any real
# one (and for naming the field of an over-long list), while 20,000 dicts cost a few MB, not gigabytes.
MAX_JSON_CONTAINERS = 20_000
MAX_JSON_VALUES = 200_000
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(rb"[\[\]{}]")
_OPENERS = frozenset(b"[{")


def check_json_shape(raw: bytes) -> None:
    """Raise InvalidRequest if ``raw`` nests deeper than MAX_JSON_DEPTH or holds too many containers or values."""
    structure = _STRING.sub(b"", raw)  # what is left are the brackets, commas, colons, numbers and literals
    openers = structure.count(b"{") + structure.count(b"[")
    closers = structure.count(b"}") + structure.count(b"]")
    if _deeper_than(structure, MAX_JSON_DEPTH, scan_limit=2 * MAX_JSON_CONTAINERS + 2):
        raise InvalidRequest(f"request body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    if max(openers, closers) > MAX_JSON_CONTAINERS:
        raise InvalidRequest(f"request body holds {max(openers, closers)} JSON objects and lists; the limit is "
                             f"{MAX_JSON_CONTAINERS}")
    values = structure.count(b",") + 1
    if values > MAX_JSON_VALUES:
        raise InvalidRequest(f"request body holds about {values} JSON values; the limit is {MAX_JSON_VALUES}")


def _deeper_than(structure: bytes, limit: int, *, scan_limit: int) -> bool:
    """Whether the first ``scan_limit`` brackets of ``structure`` nest deeper than ``limit``."""
    depth = 0
    for match in itertools.islice(_BRACKET.finditer(structure), scan_limit):
        depth += 1 if match.group()[0] in _OPENERS else -1
        if depth > limit:
            return True
    return False
