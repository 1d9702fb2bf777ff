"""Hostile inputs to /api-endpoint: property-based mutations of a valid request, and a fixed corpus over HTTP.

Every request gets a 2xx (only for valid input) or a 4xx JSON error body naming the problem: never a 5xx,
never a non-JSON body, and nothing is written outside DATA_DIR. Run with ``-s`` to see how many examples ran.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from main import create_app
from tests.conftest import SECRET, data_uri, task_request
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.sample_task import ROUND1_REPLY
from utils.errors import InvalidAttachment, InvalidRequest, RequestTooLarge
from utils.intake.attachments import decode_attachments
from utils.intake.validation import MAX_FIELD_CHARS, parse_body
from utils.records import AttachmentRef

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"
REQUIRED_TEXT = ("email", "secret", "task", "nonce", "brief")
SINGLE_LINE = ("email", "task", "nonce")
KNOWN_FIELDS = {*REQUIRED_TEXT, "round", "checks", "evaluation_url", "attachments"}
SURROGATE = re.compile(r"[\ud800-\udfff]")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# database=None: no .hypothesis/ folder appears in the sandbox
HOSTILE_SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}


# --- helpers --------------------------------------------------------------------------------------------------


def files_outside(root: Path, data_dir: Path) -> set[str]:
    """Every path under ``root`` except DATA_DIR and what is inside it."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != data_dir]
        found.update(str(Path(folder, name).relative_to(root)) for name in dirs + files)
    return found


def error_of(status: int, content_type: str, text: str) -> dict[str, Any] | None:
    """Assert the response is 2xx or a 4xx JSON error body; return the error object (None for 2xx)."""
    assert status < 500, f"server error {status}: {text[:300]}"
    assert content_type.startswith("application/json"), f"non-JSON {content_type}: {text[:300]}"
    body = json.loads(text)
    assert SECRET not in text
    if 200 <= status < 300:
        assert body["status"] in ("success", "accepted"), body
        return None
    assert 400 <= status < 500 and body["status"] == "error", body
    error = body["error"]
    assert isinstance(error["stage"], str) and isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error.get("field", ""), str)
    return error


@dataclass
class Tally:
    """How many examples a property tried and the statuses they got."""

    name: str
    statuses: Counter = field(default_factory=Counter)

    def add(self, status: int | str) -> None:
        """Count one example."""
        self.statuses[status] += 1

    def report(self) -> str:
        """One line for the test output."""
        line = f"[hostile-inputs] {self.name}: {sum(self.statuses.values())} examples {dict(self.statuses)}"
        print(line)
        return line


@pytest.fixture
def no_internet(monkeypatch) -> None:
    """Refuse name resolution for anything but loopback, so no generated URL can reach the internet."""
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.strip("[]").lower() not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {name!r} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


# --- strategies: values -------------------------------------------------------------------------------------

ODD_CHARS = ("\x00", "\x01", "\x1b", "\x7f", "\x85", "\t", "\n", "\r", " ", "\u00a0", "\u200b", "\u200e",
             "\u202e", "\u2028", "\ufeff", "\ud800", "\udfff", "\uffff", "é", "中", "🙂", "/", "\\", ".", "%",
             ":", "~", "a", "Z", "0")
odd_text = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(), max_size=40)
plain_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)  # RTL, emoji, ...
big_text = st.builds(lambda char, n: char * n, st.sampled_from(["x", "é", " ", "\x00"]),
                     st.sampled_from([1, 199, 200, 201, 320, 321, 10_000, 100_000, 100_001, 1_000_000]))
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
                | st.floats() | odd_text)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(odd_text, kids, max_size=4), max_leaves=12)
non_strings = json_values.filter(lambda v: not isinstance(v, str))


@dataclass(frozen=True)
class Mutation:
    """Set ``field`` to ``value`` (or delete it when ``delete``); ``verdict`` says whether that is valid."""

    field: str
    value: Any
    verdict: str
    delete: bool = False


def as_sent(value: Any) -> Any:
    """``value`` as the service decodes it from escaped JSON (two lone surrogates may pair up into one character)."""
    return json.loads(json.dumps(value))


def text_verdict(name: str, value: Any) -> str:
    """Whether a required text field may hold ``value``, as the request contract reads."""
    value = as_sent(value)
    if not isinstance(value, str) or not value.strip() or "\x00" in value or SURROGATE.search(value):
        return INVALID
    if len(value) > MAX_FIELD_CHARS[name] or (name in SINGLE_LINE and CONTROL.search(value.strip())):
        return INVALID
    if name == "secret":
        return VALID if value == SECRET else INVALID  # a wrong secret is a 403
    return VALID


def text_mutations(name: str) -> st.SearchStrategy[Mutation]:
    """A required text field set to odd, huge, empty or non-string values, or removed."""
    values = odd_text | plain_text | big_text | non_strings | st.sampled_from(["", "   ", "\t\n"])
    return values.map(lambda v: Mutation(name, v, text_verdict(name, v))) | st.just(Mutation(name, None, INVALID,
                                                                                             delete=True))


def round_verdict(value: Any) -> str:
    """Integers 1..1000 are valid; booleans, floats, lists and the rest are not; digit strings are lenient."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return INVALID
    if isinstance(value, str):
        return UNKNOWN
    return VALID if 1 <= value <= 1000 else (INVALID if value < 1 else UNKNOWN)


round_values = (st.booleans() | st.floats() | st.integers(min_value=-(10**30), max_value=10**30)
                | st.integers(min_value=-3, max_value=1003) | odd_text | json_values
                | st.sampled_from(["2", " 3 ", "²", "١", "１", "9" * 5000, "0", "-1", "1.0"]))
round_mutations = round_values.map(lambda v: Mutation("round", v, round_verdict(v)))


def check_verdict(value: Any) -> str:
    """A list of non-empty strings or ``{"js": ...}`` objects is valid; other shapes are not."""
    if value is None:
        return VALID
    if not isinstance(value, list):
        return INVALID
    if len(value) > 100:
        return INVALID
    verdicts = [_one_check_verdict(item) for item in value]
    return INVALID if INVALID in verdicts else (UNKNOWN if UNKNOWN in verdicts else VALID)


def _one_check_verdict(item: Any) -> str:
    """The verdict for one check item."""
    item = as_sent(item)
    text = item.get("js") if isinstance(item, dict) else item
    if not isinstance(text, str) or not text.strip() or "\x00" in text or SURROGATE.search(text):
        return INVALID
    return VALID if len(text) <= 10_000 else INVALID


check_items = (odd_text | st.builds(lambda js: {"js": js}, odd_text | json_values) | json_values
               | st.sampled_from(["Page has a title", "js: document.title.length > 0",
                                  {"js": "document.querySelector('#x') !== null", "name": "x"}, "x" * 10_001]))
check_values = st.lists(check_items, max_size=5) | json_values | st.just(["ok"] * 101)
check_mutations = check_values.map(lambda v: Mutation("checks", v, check_verdict(v)))


def extra_field_mutation(key: str, value: Any) -> Mutation:
    """An unknown field: DESIGN.md says it is ignored."""
    return Mutation(key, value, VALID)


extra_fields = st.builds(extra_field_mutation, odd_text.filter(lambda k: k not in KNOWN_FIELDS), json_values)


# --- strategies: attachments ----------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../x.csv", "..\\x.csv", "a/../../b.csv", "data/../../../etc/cron.d/x", "..", ".", "...", ". .", "", "   ",
    "/etc/passwd", "C:\\Windows\\win.ini", "c:x.csv", "\\\\server\\share\\x", "//server/share/x",
    ".git/config", ".GIT/HEAD", "a/.git/hooks/pre-commit", ".git./config", ".gitattributes", "docs/.gitignore",
    ".github/workflows/x.yml", ".github\\workflows\\x.yml", "\uff0egithub/workflows/x.yml", ".GitHub/x.yml",
    "%2e%2e/x.csv", "%2e%2e%2fx.csv", "..%5c..%5cx", "%2egit/config", "%2Fetc%2Fpasswd",
    "x\x00.csv", "a\ud800.csv", "line\nbreak.csv", "a" * 1001, "d/" * 9 + "x.csv",
]
BENIGN_NAMES = [
    "data.csv", "my file.csv", "données.csv", "data/sales.csv", "./data//sales.csv", "CON", "aux.txt", "nul.csv",
    "COM1.txt", "trailing.", "trailing ", "a" * 300 + ".csv", "ﾃﾞｰﾀ.csv", "\u202eexe.txt", "100%.csv",
    "emoji🙂.json", ".well-known/x.json", "a.b.c.d", "-rf", "x" * 90 + "/" + "y" * 90,
]
VALID_URLS = [
    data_uri(b"product,sales\nA,10\n"), data_uri(b"{\"a\": 1}", "application/json"),
    data_uri(b"\xff\xfe\x00not utf-8", "text/plain"), data_uri(b"x", "application/x-unknown-type"),
    "data:text/plain;charset=utf-8;base64," + base64.b64encode("é".encode()).decode(),
    "data:text/plain;size=99999999999999;base64,aGk=", "data:text/plain,hello%20world", "data:,plain",
    "data:text/plain,%ff%fe%00", base64.b64encode(b"bare").decode(), "aGk", "-_-_",
    "data:application/octet-stream;base64,+/+/", "data:text/plain;base64,aGVs%2BbG8%3D",
    "https://127.0.0.1:9/never-fetched.csv", "DATA:TEXT/PLAIN;BASE64,aGk=", " \n" + data_uri(b"ws") + "\n",
]
INVALID_URLS = [
    "data:text/plain;base64,@@@@", "data:text/plain;base64,YQ=====", "data:text/plain;base64,a", "data:text/plain",
    "data:text/plain;base64,%zz%zz", "data:text/plain;base64,YWJj=ZGVm", "data:text/plain;base64,aGVsbG8\u00e9",
    "data:text/plain,", "file:///etc/passwd", "javascript:alert(1)", "ftp://127.0.0.1/x", "gopher://127.0.0.1/",
    "http://", "https:///x", "http://exa mple/", "abc$def", "\ud800", "data:text/plain,\ud800", "   ",
]


def name_verdict(name: Any, sandbox: str) -> str:
    """The verdict for a generated attachment name."""
    return INVALID if name in HOSTILE_NAMES or name == sandbox else (VALID if name in BENIGN_NAMES else UNKNOWN)


def attachment_items(sandbox: str) -> st.SearchStrategy[tuple[Any, str]]:
    """(item, verdict) pairs: hostile or benign names with valid or invalid payloads, or odd shapes."""
    names = st.sampled_from(HOSTILE_NAMES + BENIGN_NAMES + [sandbox]) | odd_text
    urls = st.sampled_from(VALID_URLS + INVALID_URLS) | odd_text | st.builds(lambda b: data_uri(b), st.binary(
        min_size=1, max_size=64))

    def pair(name: Any, url: str) -> tuple[dict, str]:
        url_verdict = INVALID if url in INVALID_URLS else (VALID if url in VALID_URLS or url.startswith(
            "data:text/csv;base64,") else UNKNOWN)
        return {"name": name, "url": url}, _worst(name_verdict(name, sandbox), url_verdict)

    odd_items = json_values.map(lambda v: (v, INVALID if not isinstance(v, dict) else UNKNOWN))
    return st.builds(pair, names, urls) | odd_items


def _worst(*verdicts: str) -> str:
    """INVALID if any verdict is, else UNKNOWN if any is, else VALID."""
    return INVALID if INVALID in verdicts else (UNKNOWN if UNKNOWN in verdicts else VALID)


def attachment_mutations(sandbox: str) -> st.SearchStrategy[Mutation]:
    """The attachments field as lists of generated items, too many items, or not a list at all."""
    lists = st.lists(attachment_items(sandbox), max_size=4).map(
        lambda pairs: Mutation("attachments", [p[0] for p in pairs], _worst(VALID, *[p[1] for p in pairs])))
    too_many = st.integers(min_value=21, max_value=60).map(
        lambda n: Mutation("attachments", [{"name": f"f{i}.csv", "url": "aGk="} for i in range(n)], INVALID))
    shapes = json_values.filter(lambda v: not isinstance(v, list)).map(
        lambda v: Mutation("attachments", v, VALID if v is None else INVALID))
    return lists | too_many | shapes


# --- strategies: evaluation_url -------------------------------------------------------------------------------


def url_mutations(notify_url: str, port: int) -> st.SearchStrategy[Mutation]:
    """Callback URLs: the receiver (valid, loopback allowed) or hostile schemes, hosts, ports and credentials."""
    valid = [notify_url, f"http://localhost:{port}/notify", f"http://127.0.0.1:{port}/notify?x=1",
             f"http://127.0.0.1:{port}/notify#frag", f"  {notify_url}  ", ""]
    invalid = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "file:///etc/passwd", f"ftp://127.0.0.1:{port}/x",
               "data:text/plain,hi", "mailto:a@example.com", "gopher://127.0.0.1/", "http://", "http:///notify",
               "https://:80/", f"//127.0.0.1:{port}/notify", f"127.0.0.1:{port}/notify",
               f"http://user:pw@127.0.0.1:{port}/notify", f"http://user@127.0.0.1:{port}/notify",
               "http://127.0.0.1:99999/notify", "http://127.0.0.1:abc/", "http://exa mple.com/",
               f"http://127.0.0.1:{port}/no\ntify", "http://127.0.0.1\n.evil/", "http://[::1/", "http://a..b/",
               "http://" + "a" * 64 + ".example/",
               "http://" + "a" * 3000 + "/", "http://\ud800/", f"http://127.0.0.1:{port}/\x00", "http://a_b!/"]
    listed = st.sampled_from([(u, VALID) for u in valid] + [(u, INVALID) for u in invalid])
    others = odd_text.filter(lambda t: "://" not in t).map(lambda t: (t, UNKNOWN)) | non_strings.map(
        lambda v: (v, VALID if v is None else INVALID))
    return (listed | others).map(lambda pair: Mutation("evaluation_url", pair[0], pair[1]))


# --- strategies: whole requests -------------------------------------------------------------------------------

RAW_ROUNDS = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "-0", "1.0", "1E0", "0x1", "01", "-1", "true",
              "1" + "0" * 5000, "1.5e300", "[1]", '{"n": 1}']
CONTENT_TYPES = [None, "application/json", "text/plain", "application/json; charset=utf-16",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"]


@dataclass(frozen=True)
class Encoding:
    """How the mutated body becomes bytes: escaping, a BOM, a raw round, a duplicate key, a cut, a wrapper."""

    ensure_ascii: bool
    bom: bool
    raw_round: str | None
    duplicate_key: bool
    cut: int | None
    wrap: str | None
    content_type: str | None


plain_encodings = st.builds(Encoding, st.booleans(), st.booleans(), st.none(), st.just(False), st.none(),
                            st.none(), st.sampled_from(CONTENT_TYPES))
tweaked_encodings = st.one_of(
    plain_encodings.flatmap(lambda e: st.sampled_from(RAW_ROUNDS).map(lambda r: replace(e, raw_round=r))),
    plain_encodings.map(lambda e: replace(e, duplicate_key=True)),
    plain_encodings.flatmap(lambda e: st.integers(0, 300).map(lambda n: replace(e, cut=n))),
    plain_encodings.flatmap(lambda e: st.sampled_from(["array", "string", "null", "number"]).map(
        lambda w: replace(e, wrap=w))))
encodings = st.integers(0, 3).flatmap(lambda n: tweaked_encodings if n == 0 else plain_encodings)  # 1 in 4 tweaked


def encode(body: dict, encoding: Encoding) -> tuple[bytes, str]:
    """The request bytes for ``body`` and whether the encoding alone makes it invalid."""
    verdict = VALID
    if encoding.raw_round is not None:
        body = {**body, "round": "\x00RAW-ROUND\x00"}
        verdict = INVALID
    text = json.dumps(body, ensure_ascii=encoding.ensure_ascii)
    if not _strict_json(body):
        verdict = INVALID
    if encoding.raw_round is not None:
        text = text.replace(json.dumps("\x00RAW-ROUND\x00", ensure_ascii=encoding.ensure_ascii), encoding.raw_round)
    if encoding.duplicate_key and body:
        key = json.dumps(next(iter(body)))
        text, verdict = "{" + key + ": 0, " + text[1:], INVALID
    if encoding.wrap:
        wrapped = {"array": f"[{text}]", "string": json.dumps(text), "null": "null", "number": "1e999"}
        text, verdict = wrapped[encoding.wrap], INVALID
    raw = text.encode("utf-8", "surrogatepass")
    if SURROGATE.search(text):
        verdict = INVALID  # surrogates sent unescaped are not UTF-8
    if encoding.cut is not None and encoding.cut < len(raw):
        raw, verdict = raw[: encoding.cut], INVALID
    return (b"\xef\xbb\xbf" + raw if encoding.bom else raw), verdict


def _strict_json(body: dict) -> bool:
    """Whether ``body`` is strict JSON once decoded: no NaN or Infinity, no two keys that decode alike."""
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        return False
    return len({as_sent(key) for key in body}) == len(body)


def request_cases(notify_url: str, port: int, sandbox: str) -> st.SearchStrategy:
    """(mutations, encoding) pairs: one to three mutations of the valid base request."""
    mutation = st.one_of([text_mutations(name) for name in REQUIRED_TEXT] + [
        round_mutations, check_mutations, extra_fields, attachment_mutations(sandbox), url_mutations(notify_url, port),
        st.sampled_from([Mutation(f, None, VALID, delete=True) for f in ("checks", "evaluation_url", "attachments")]),
        st.sampled_from([Mutation("round", None, INVALID, delete=True)])])
    return st.tuples(st.lists(mutation, min_size=1, max_size=3), encodings)


def apply(base: dict, mutations: list[Mutation]) -> tuple[dict, str]:
    """The mutated body and its verdict (the last mutation of a field wins, as it does in the dict)."""
    body, verdicts = dict(base), {}
    for m in mutations:
        if m.delete:
            body.pop(m.field, None)
        else:
            body[m.field] = m.value
        verdicts[m.field] = m.verdict
    return body, _worst(*verdicts.values())


# --- property 1: mutated requests through the app ---------------------------------------------------------------


@dataclass
class Sandbox:
    """A test client whose DATA_DIR and working directory live under one temporary folder."""

    client: Any
    root: Path
    data_dir: Path
    base: dict


@pytest.fixture
def sandbox(make_config, tmp_path, monkeypatch, model, no_internet) -> Iterator[Sandbox]:
    """The app with a scripted model that always writes the sample app, and a receiver for notifications."""
    monkeypatch.chdir(tmp_path)
    model.default_reply = lambda _body: ROUND1_REPLY
    # SECRET_FAILURES_LIMIT=0: the wrong-secret guard (429) has its own tests; here wrong secrets must stay 403s
    config = make_config(DEADLINE_SECONDS="8", LOG_LEVEL="ERROR", SECRET_FAILURES_LIMIT="0")
    with EvaluationReceiver() as receiver:
        client = create_app(config).test_client()
        base = task_request(nonce="hostile-base", evaluation_url=receiver.notify_url)
        seeded = client.post("/api-endpoint", json=base)
        assert seeded.status_code == 200, seeded.get_data(as_text=True)
        yield Sandbox(client, tmp_path, config.data_dir, base)


def test_mutated_requests_get_2xx_or_a_4xx_json_error(sandbox: Sandbox):
    """Mutations of a valid request: valid ones pass (or hit the nonce's first request), invalid ones get a 4xx."""
    tally = Tally("mutated requests (test client)")
    port = int(sandbox.base["evaluation_url"].split(":")[2].split("/")[0])
    sentinel = str(sandbox.root / "escaped-by-absolute-name.txt")
    before = files_outside(sandbox.root, sandbox.data_dir)

    @settings(max_examples=1200, **HOSTILE_SETTINGS)
    @given(request_cases(sandbox.base["evaluation_url"], port, sentinel))
    def check(case: tuple[list[Mutation], Encoding]) -> None:
        body, verdict = apply(sandbox.base, case[0])
        raw, encoding_verdict = encode(body, case[1])
        if encoding_verdict == INVALID:
            verdict = INVALID
        headers = {"Content-Type": case[1].content_type} if case[1].content_type else {}
        response = sandbox.client.post("/api-endpoint", data=raw, headers=headers)
        tally.add(f"{verdict} -> {response.status_code}")
        error = error_of(response.status_code, response.content_type or "", response.get_data(as_text=True))
        if verdict == INVALID:  # refused while validating, before any build or nonce lookup
            assert response.status_code in (400, 403, 413), f"{response.status_code} for an invalid request: {case}"
        if verdict == VALID:
            assert error is None or (response.status_code == 409 and error["field"] == "nonce"), error
        assert files_outside(sandbox.root, sandbox.data_dir) == before

    check()
    tally.report()


# --- property 2: decode_attachments on its own ------------------------------------------------------------------


def test_decoded_attachments_are_safe_or_refused_naming_the_attachment(tmp_path):
    """Any list of refs decodes to paths inside the app folder, or fails with a 4xx naming the attachment."""
    tally = Tally("decode_attachments")
    names = st.sampled_from(HOSTILE_NAMES) | st.sampled_from(BENIGN_NAMES) | odd_text | st.text(
        alphabet="./\\%2eE:gitG hub-\uff0e\u2024")
    urls = st.sampled_from(VALID_URLS) | st.sampled_from(INVALID_URLS) | odd_text | st.builds(
        lambda media, data: f"data:{media};base64,{base64.b64encode(data).decode()}",
        odd_text, st.binary(max_size=40))

    @settings(max_examples=1000, **HOSTILE_SETTINGS)
    @given(st.lists(st.builds(AttachmentRef, names, urls), max_size=3))
    def check(refs: list[AttachmentRef]) -> None:
        try:
            result = decode_attachments(refs, max_count=4, max_total_bytes=2000)
        except (InvalidAttachment, RequestTooLarge) as exc:
            tally.add(f"{exc.status} {exc.field and exc.field.split('.')[-1]}")
            named = re.fullmatch(r"attachments(\[(\d+)\](\.(name|url))?)?", exc.field or "")
            assert 400 <= exc.status < 500 and named, exc.field
            assert named.group(2) is None or f"attachments[{named.group(2)}]" in exc.message, exc.message
            return
        tally.add("decoded")
        for file in result.files:
            assert_safe_path(file.path, tmp_path)
        assert len({f.path.lower() for f in result.files}) == len(result.files)

    check()
    tally.report()


def assert_safe_path(path: str, base: Path) -> None:
    """``path`` stays inside ``base`` and reaches nothing special."""
    segments = path.split("/")
    assert all(s.strip(" .") for s in segments), path
    assert not any(s.lower().rstrip(". ") == ".git" for s in segments) and segments[0].lower() != ".github"
    assert (base / path).resolve().is_relative_to(base.resolve()), path
    assert path.isascii() and "\\" not in path and ":" not in path


# --- property 3: parse_body on arbitrary bytes -----------------------------------------------------------------


def test_any_body_parses_to_an_object_or_a_4xx():
    """Arbitrary bytes, JSON-ish text and deep nesting: a dict or InvalidRequest/RequestTooLarge, nothing else."""
    tally = Tally("parse_body")
    jsonish = st.text(alphabet='{}[]",:0123456789.eE+-tfnulrsaNIy \\u\ud800\x00é', max_size=200)
    nested = st.builds(lambda open_, n: (open_ * n).encode(), st.sampled_from(["[", '{"a":', '{"a":[']),
                       st.integers(1, 200_000))
    bodies = st.binary(max_size=200) | jsonish.map(lambda t: t.encode("utf-8", "surrogatepass")) | nested | \
        st.builds(lambda v: json.dumps(v).encode(), json_values)

    @settings(max_examples=1000, **HOSTILE_SETTINGS)
    @given(bodies)
    def check(raw: bytes) -> None:
        try:
            body = parse_body(raw, max_bytes=1_000_000)
        except (InvalidRequest, RequestTooLarge) as exc:
            tally.add(exc.status)
            assert 400 <= exc.status < 500 and exc.message
            return
        tally.add("object")
        assert isinstance(body, dict)

    check()
    tally.report()


# --- the fixed corpus, over HTTP -------------------------------------------------------------------------------


def body_of(**fields: Any) -> bytes:
    """A request body: the valid request with ``fields`` changed (None removes a field)."""
    merged = {k: v for k, v in task_request(**fields).items() if v is not None}
    return json.dumps(merged).encode()


def raw_with(placeholder: str, raw: str, **fields: Any) -> bytes:
    """A valid request body where the string ``placeholder`` is replaced by raw JSON text ``raw``."""
    return body_of(**fields).replace(json.dumps(placeholder).encode(), raw.encode())


def with_attachment(name: str, url: str | None = None) -> bytes:
    """A request body with one attachment."""
    return body_of(attachments=[{"name": name, "url": url if url is not None else data_uri(b"a,b\n1,2\n")}])


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    """``data`` in pieces, so requests sends it with chunked transfer encoding."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


@dataclass(frozen=True)
class Case:
    """One hostile request: what is sent, and the 4xx error a user should see."""

    id: str
    body: bytes | Callable[[], Any]
    status: int = 400
    field: str | None = None
    words: tuple[str, ...] = ()
    headers: dict[str, str] | None = None
    env: dict[str, str] | None = None


def name_case(id_: str, name: str, *words: str) -> Case:
    """A hostile attachment name, refused naming the attachment."""
    return Case(id_, with_attachment(name), field="attachments[0].name", words=("attachments[0]", *words))


def url_case(id_: str, url: str, *words: str) -> Case:
    """A hostile evaluation_url."""
    return Case(id_, body_of(evaluation_url=url), field="evaluation_url", words=words)


TEN_MB = 10 * 1024 * 1024
CORPUS = [
    # path traversal and special folders in attachment names
    name_case("traversal ../", "../../etc/cron.d/x", ".."),
    name_case("traversal ..\\", "..\\..\\windows\\x.ini", ".."),
    name_case("traversal encoded %2e%2e/", "%2e%2e/%2e%2e/x.csv", "percent-decoded"),
    name_case("traversal encoded %2e%2e%2f", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "percent-decoded"),
    name_case("traversal inside a sub-path", "data/../../x.csv", ".."),
    name_case("traversal dots only", "...", ".."),
    name_case("absolute POSIX", "/etc/passwd", "absolute"),
    name_case("absolute Windows drive", "C:\\Windows\\win.ini", "absolute"),
    name_case("absolute UNC", "\\\\server\\share\\x.csv", "absolute"),
    name_case("workflow", ".github/workflows/deploy.yml", ".github"),
    name_case("workflow backslashes", ".github\\workflows\\deploy.yml", ".github"),
    name_case("workflow fullwidth dot", "\uff0egithub/workflows/deploy.yml", ".github"),
    name_case("workflow mixed case", ".GitHub/workflows/x.yml", ".github"),
    name_case("git hooks", ".git/hooks/pre-commit", ".git"),
    name_case("git nested", "docs/.git/config", ".git"),
    name_case("git trailing dot", ".git./config", ".git"),
    name_case("git encoded", "%2egit/config", "percent-decoded"),
    name_case("NUL in name", "data\x00.csv", "NUL"),
    name_case("empty name", "", "empty"),
    name_case("very long name", "a" * 5000 + ".csv", "longer"),
    # NUL bytes, control characters and bad Unicode in text fields
    Case("NUL in brief", body_of(brief="Show\x00 the total"), field="brief", words=("NUL",)),
    Case("NUL in task", body_of(task="task\x00x"), field="task", words=("NUL",)),
    Case("NUL in nonce", body_of(nonce="n\x00"), field="nonce", words=("NUL",)),
    Case("NUL in a check", body_of(checks=["has\x00nul"]), field="checks[0]", words=("NUL",)),
    Case("NUL in a js check", body_of(checks=[{"js": "1\x00"}]), field="checks[0]", words=("NUL",)),
    Case("line break in nonce", body_of(nonce="n1\nNonce: n2"), field="nonce", words=("control",)),
    Case("lone surrogate in secret", body_of(secret="\ud800"), field="secret", words=("surrogate",)),
    Case("lone surrogate in brief", body_of(brief="x\udfff"), field="brief", words=("surrogate",)),
    Case("lone surrogate in a data URI", with_attachment("a.txt", "data:text/plain,\ud800"),
         field="attachments[0].url", words=("surrogate",)),
    # invalid base64 and data URIs
    Case("invalid base64", with_attachment("a.csv", "data:text/csv;base64,@@@@"), field="attachments[0].url",
         words=("base64",)),
    Case("base64 wrong padding", with_attachment("a.csv", "data:text/csv;base64,YQ====="),
         field="attachments[0].url", words=("padding",)),
    Case("base64 impossible length", with_attachment("a.csv", "data:text/csv;base64,YWJjZ"),
         field="attachments[0].url", words=("length",)),
    Case("data URI without comma", with_attachment("a.csv", "data:text/csv;base64"), field="attachments[0].url",
         words=("','",)),
    Case("unsupported attachment scheme", with_attachment("a.csv", "gopher://127.0.0.1:70/_x"),
         field="attachments[0].url", words=("scheme",)),
    Case("attachment url is an object", body_of(attachments=[{"name": "a", "url": {"data": "x"}}]),
         field="attachments[0].url"),
    # bodies that are not UTF-8 JSON objects
    Case("invalid UTF-8 in the body", body_of(brief="BRIEF").replace(b"BRIEF", b"caf\xe9 \xff"), words=("UTF-8",)),
    Case("UTF-8 encoded surrogate (CESU)", body_of(brief="BRIEF").replace(b"BRIEF", b"\xed\xa0\x80"),
         words=("UTF-8",)),
    Case("UTF-16 with BOM", json.dumps(task_request()).encode("utf-16"), words=("UTF-8",)),
    Case("UTF-16-BE with BOM", b"\xfe\xff" + json.dumps(task_request()).encode("utf-16-be"), words=("UTF-8",)),
    Case("UTF-32", json.dumps(task_request()).encode("utf-32"), words=("UTF-8",)),
    Case("gzip-compressed body", gzip.compress(body_of()), words=("UTF-8",), headers={"Content-Encoding": "gzip"}),
    Case("UTF-8 BOM then a bad round", b"\xef\xbb\xbf" + body_of(round="x"), field="round"),
    # enormous and deeply nested bodies
    Case("10 MB brief", lambda: body_of(brief="x" * TEN_MB), field="brief", words=("longer",)),
    Case("10 MB brief over MAX_REQUEST_BYTES", lambda: body_of(brief="x" * TEN_MB), status=413,
         words=("1048576",), env={"MAX_REQUEST_BYTES": "1048576"}),
    Case("100000 levels of [", b"[" * 100_000, words=("nested",)),
    Case("100000 levels of objects", b'{"a":' * 100_000, words=("nested",)),
    Case("deep nesting inside checks", raw_with("DEEP", "[" * 100_000 + "]" * 100_000, checks="DEEP"),
         words=("nested",)),
    Case("deep nesting sent chunked", lambda: chunks(b"[" * 100_000), words=("nested",)),
    # JSON shapes
    Case("duplicate secret key", b'{"secret": "wrong", ' + body_of()[1:], words=("twice", "secret")),
    Case("duplicate round key", body_of()[:-1] + b', "round": 2}', words=("twice", "round")),
    Case("top-level array", b"[" + body_of() + b"]", words=("object",)),
    Case("top-level string", json.dumps("hello").encode(), words=("object",)),
    Case("top-level null", b"null", words=("object", "null")),
    Case("top-level number", b"1e999", words=("object",)),
    Case("empty body", b"", words=("empty",)),
    Case("whitespace body", b" \r\n\t ", words=("empty",)),
    Case("form-urlencoded body", b"email=a%40b.c&secret=x&round=1", words=("JSON",),
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("multipart body", b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--x--\r\n',
         words=("JSON",), headers={"Content-Type": "multipart/form-data; boundary=x"}),
    Case("XML body", b"<task><brief>x</brief></task>", words=("JSON",), headers={"Content-Type": "application/xml"}),
    # callback URLs
    url_case("javascript callback", "javascript:alert(1)", "http"),
    url_case("file callback", "file:///etc/passwd", "http"),
    url_case("ftp callback", "ftp://127.0.0.1/x", "http"),
    url_case("data callback", "data:text/plain,hi", "http"),
    url_case("callback without host", "http:///notify", "host"),
    url_case("scheme-relative callback", "//127.0.0.1/notify", "scheme"),
    url_case("callback with credentials", "http://user:pw@127.0.0.1:9/notify", "password"),
    url_case("callback port out of range", "http://127.0.0.1:99999/notify", "port"),
    url_case("callback with whitespace", "http://exa mple.com/notify", "whitespace"),
    url_case("callback host label over 63 characters", "http://" + "a" * 64 + ".example/notify", "host"),
    url_case("callback that is a list", ["http://127.0.0.1/"], "string"),  # type: ignore[arg-type]
    # numbers
    Case("round 1e999", raw_with("ROUND", "1e999", round="ROUND"), field="round", words=("integer",)),
    Case("round NaN", raw_with("ROUND", "NaN", round="ROUND"), words=("NaN",)),
    Case("round -Infinity", raw_with("ROUND", "-Infinity", round="ROUND"), words=("Infinity",)),
    Case("round with 5000 digits", raw_with("ROUND", "9" * 5000, round="ROUND"), words=("JSON",)),
    Case("round as 5000 digit text", body_of(round="9" * 5000), field="round"),
    Case("round as superscript digit", body_of(round="²"), field="round"),
    Case("round negative", body_of(round=-1), field="round"),
    Case("round huge", body_of(round=10**30), field="round"),
    # attachments in bulk or in the wrong shape
    Case("10000 attachments", lambda: body_of(attachments=[{"name": f"f{i}.csv", "url": "aGk="}
                                                             for i in range(10_000)]),
         field="attachments", words=("too many",)),
    Case("attachments as a dict", body_of(attachments={"name": "a.csv", "url": "aGk="}), field="attachments",
         words=("list",)),
    Case("attachments as a string", body_of(attachments="a.csv"), field="attachments", words=("list",)),
    Case("101 checks", body_of(checks=["x"] * 101), field="checks", words=("100",)),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_hostile_request_gets_a_4xx_naming_the_problem(case: Case, start_service, model, tmp_path, monkeypatch):
    """Each hostile request, sent over real HTTP, gets the 4xx JSON error a user can act on."""
    monkeypatch.chdir(tmp_path)
    service = start_service(**(case.env or {}))
    before = files_outside(tmp_path, service.config.data_dir)
    body = case.body() if callable(case.body) else case.body
    response = requests.post(f"{service.url}/api-endpoint", data=body, headers=case.headers or {}, timeout=60)
    error = error_of(response.status_code, response.headers.get("Content-Type", ""), response.text)
    assert response.status_code == case.status, response.text[:500]
    assert error is not None
    if case.field:
        assert error.get("field") == case.field, error
    for word in case.words:
        assert word.lower() in error["message"].lower(), error
    assert not model.history, "a rejected request must not reach the model"
    assert files_outside(tmp_path, service.config.data_dir) == before
