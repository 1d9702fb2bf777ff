"""The fault matrix: each external call the service makes x each way it can fail, asserted through the service.

External calls: the five model providers (OpenAI-compatible, each pointed at a scripted server), every
GitHub REST call of rounds 1 and 2 (the fake GitHub), the Pages build, and the evaluation URL. Faults:
5xx, 429 (and GitHub's secondary-limit 403) with Retry-After, a call that outlasts the client's timeout,
a refused or dropped connection, and a 200 whose body is not JSON or not the expected shape (the shared
vocabulary of tests/fakes/faults.py). Every case names its expected outcome, and every case also checks
that the answer came before the deadline (plus SLACK), that an error body names its stage, that no key
reached the answer, the logs or DATA_DIR, and, for GitHub, that every request matched GitHub's OpenAPI
description.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import BACKUP_KEY, PRIMARY_KEY, SECRET, Service, data_uri
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Delay, Disconnect, Fail, Fault, Malformed, WrongShape
from tests.fakes.github_server import FakeGitHub, secondary_rate_limit
from tests.fakes.openai_server import Item, ScriptedModel
from tests.fakes.openapi_spec import load_openapi
from tests.sample_task import ROUND1_INDEX, ROUND1_REPLY, ROUND1_SCRIPT, SALES_CSV, request_body
from utils.config import Config, ProviderSpec, load_config

SLACK = 3.0  # seconds an answer may take past the deadline (the last notification attempt, HTTP overhead)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
PROVIDERS = {"openai": "OPENAI_API_KEY", "aipipe": "AIPIPE_TOKEN", "gemini": "GEMINI_API_KEY",
             "openrouter": "OPENROUTER_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
ROUND_ONE_REPO = "sales-summary-7341-round-1"


@dataclass(frozen=True)
class Outcome:
    """What the user sees: the kind of outcome, and for errors the HTTP status and the failing stage."""

    kind: str
    stage: str = ""
    status: int = 200


class Expect:
    """The outcomes a case can expect."""

    RETRY_SUCCEEDS = Outcome("the same upstream is asked again and the build succeeds")
    VERIFIED = Outcome("a state check finds the non-idempotent call took effect; it is not re-sent")
    FALLS_BACK = Outcome("the next provider writes the app")
    SUCCEEDS = Outcome("the fault does not matter; the build succeeds")
    NOT_LIVE = Outcome("answered 200 with pages_live false, notified anyway")
    WAITS = Outcome("waits for Pages until the deadline, then answers 200 with pages_live false, notified")
    UNNOTIFIED = Outcome("answers 200 with notified false by the deadline")

    @staticmethod
    def ERROR(stage: str, status: int = 502) -> Outcome:  # noqa: N802 - reads as a constant in the table
        """An error answer naming ``stage``."""
        return Outcome("error", stage, status)


@dataclass
class World:
    """The fakes of one case: two model servers, GitHub (or None) and the evaluation receiver."""

    primary: ScriptedModel
    backup: ScriptedModel
    github: FakeGitHub | None
    receiver: EvaluationReceiver
    primary_url: str = ""
    evaluation_url: str = ""
    github_api_url: str = ""


@dataclass(frozen=True)
class Case:
    """One external call, one fault, the outcome the user should see."""

    family: str  # "model", "github" or "notify"
    call: str
    fault: str
    inject: Callable[[World], Any]
    expect: Outcome
    deadline: float = 20.0
    round: int = 1
    provider: str = "openai"
    sole: bool = False
    route: tuple[str, str] = ("", "")  # GitHub: method and path regex of the faulted call
    receiver: tuple[Fault, ...] = ()  # the evaluation receiver's answers to its first attempts


def closed_url() -> str:
    """An http URL on a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the model providers ----------------------------------------------------------------------------------

def _scripted(item: Item | None) -> Callable[[World], Any]:
    """Inject ``item`` as the primary server's next answer (None: refuse its connections)."""
    def inject(world: World) -> None:
        if item is None:
            world.primary_url = closed_url() + "/v1"
        else:
            world.primary.enqueue(item)
    return inject


MODEL_FAULTS: list[tuple[str, Item | None, Outcome]] = [
    ("HTTP 500", Fail(500), Expect.FALLS_BACK),
    ("HTTP 429 Retry-After 0.2 s", Fail(429, retry_after=0.2), Expect.RETRY_SUCCEEDS),
    ("HTTP 429 without Retry-After", Fail(429), Expect.FALLS_BACK),
    ("timeout", Delay(2.5), Expect.FALLS_BACK),
    ("refused", None, Expect.FALLS_BACK),
    ("dropped", Disconnect(), Expect.FALLS_BACK),
    ("200 not JSON", Malformed(), Expect.FALLS_BACK),
    ("200 wrong shape", WrongShape({"object": "chat.completion", "choices": []}), Expect.FALLS_BACK),
]
SOLE_FAULTS = ("HTTP 500", "HTTP 429 Retry-After 0.2 s", "timeout", "refused", "200 not JSON")


def _sole(item: Item | None) -> Callable[[World], Any]:
    """Make every answer of the only provider ``item`` (None: refuse its connections)."""
    def inject(world: World) -> None:
        if item is None:
            world.primary_url = closed_url() + "/v1"
        else:
            world.primary.default_reply = lambda _body: item
    return inject


def model_cases() -> list[Any]:
    """Every provider x every fault with a backup behind it, then the openai provider alone."""
    cases = [Case("model", name, fault, _scripted(item), expect, provider=name)
             for name in PROVIDERS for fault, item, expect in MODEL_FAULTS]
    cases.append(Case("model", "openai", "200 JSON list", _scripted(WrongShape(["not", "a", "completion"])),
                      Expect.FALLS_BACK))
    cases += [Case("model", "openai (sole provider)", fault, _sole(item), Expect.ERROR("generation"), sole=True)
              for fault, item, _ in MODEL_FAULTS if fault in SOLE_FAULTS]
    return cases


# -- GitHub --------------------------------------------------------------------------------------------------

GITHUB_FAULTS: dict[str, tuple[Fault, dict[str, Any]]] = {  # name: (fault, options of FakeGitHub.inject)
    "HTTP 500": (Fail(500), {}),
    "HTTP 500, answer lost": (Fail(500), {"after": True}),
    "HTTP 500 persistent": (Fail(500), {"times": 1000}),
    "HTTP 429 Retry-After 1 s": (Fail(429, "Too many requests", retry_after=1), {}),
    "HTTP 403 secondary limit, Retry-After 1 s": (secondary_rate_limit(retry_after=1), {}),
    "HTTP 403 secondary limit, Retry-After past the deadline": (secondary_rate_limit(retry_after=6), {}),
    "timeout": (Delay(6.5), {}),
    "dropped": (Disconnect(), {}),
    "dropped, answer lost": (Disconnect(), {"after": True}),
    "200 not JSON": (Malformed(), {"after": True}),
    "200 wrong shape": (WrongShape(), {"after": True}),
}
ROUND_ONE_CALLS = {  # name: (method, path regex, idempotent)
    "POST /user/repos": ("POST", r"/user/repos$", False),
    "POST pages": ("POST", r"/pages$", False),
    "POST git/blobs": ("POST", r"/git/blobs$", True),
    "POST git/trees": ("POST", r"/git/trees$", True),
    "POST git/commits": ("POST", r"/git/commits$", True),
    "PATCH git/refs": ("PATCH", r"/git/refs/heads", True),
    "GET pages/builds/latest": ("GET", r"/pages/builds/latest$", True),
}
ROUND_TWO_CALLS = {  # reads of round 1 before round 2 is built
    "GET /user": ("GET", r"/user$", True),
    "GET branches/main": ("GET", r"/branches/main$", True),
    "GET git/trees/{sha}": ("GET", r"/git/trees/[0-9a-f]{40}", True),
    "GET git/blobs/{sha}": ("GET", r"/git/blobs/[0-9a-f]{40}$", True),
}
COMMON_FAULTS = ("HTTP 500", "HTTP 429 Retry-After 1 s", "dropped", "200 not JSON", "200 wrong shape")
SECONDARY_LIMIT = "HTTP 403 secondary limit, Retry-After 1 s"  # the same wait as a 429: a few calls suffice
READ_FAULTS = ("HTTP 500", "dropped", "200 wrong shape")


def _github_fault(fault: str, method: str, pattern: str) -> Callable[[World], Any]:
    injected, options = GITHUB_FAULTS[fault]
    return lambda world: world.github.inject(method, pattern, injected, **options)


def _github_case(call: str, fault: str, expect: Outcome, *, round_number: int = 1, deadline: float = 20.0,
                 calls: dict[str, tuple[str, str, bool]] = ROUND_ONE_CALLS) -> Case:
    method, pattern, _ = calls[call]
    return Case("github", call, fault, _github_fault(fault, method, pattern), expect, deadline=deadline,
                round=round_number, route=(method, pattern))


def _expected_on(call: str, fault: str) -> Outcome:
    """Idempotent calls are repeated; a create whose answer was lost or garbled is checked, not re-sent."""
    idempotent = ROUND_ONE_CALLS[call][2]
    if not idempotent and fault.startswith("200"):
        return Expect.VERIFIED
    return Expect.RETRY_SUCCEEDS


def _pages_builds(*scripts: list[str]) -> Callable[[World], Any]:
    """Script the next Pages builds: the first is the placeholder's (Pages enabled), the second the app's."""
    return lambda world: world.github.queue_builds(["building", "built"], *scripts)


def _never_built(world: World) -> None:
    world.github.default_build_script = ["building"]


def _refused_github(world: World) -> None:
    world.github_api_url = closed_url() + "/api/v3"


def _rebuild_fails(fault: Fail, times: int = 1) -> Callable[[World], Any]:
    def inject(world: World) -> Any:
        world.github.queue_builds(["building", "built"], ["errored"])
        return world.github.inject("POST", r"/pages/builds$", fault, times=times)
    return inject


def github_cases() -> list[Any]:
    """Round 1's calls and round 2's reads x their faults, lost answers, the Pages build, a refused API."""
    cases: list[Any] = [_github_case(call, fault, _expected_on(call, fault))
                        for call in ROUND_ONE_CALLS for fault in COMMON_FAULTS]
    cases += [_github_case(call, SECONDARY_LIMIT, Expect.RETRY_SUCCEEDS)
              for call in ("POST /user/repos", "POST git/commits", "GET pages/builds/latest")]
    cases += [_github_case(call, fault, Expect.VERIFIED)
              for call in ("POST /user/repos", "POST pages")
              for fault in ("HTTP 500, answer lost", "dropped, answer lost")]
    cases += [_github_case(call, fault, Expect.RETRY_SUCCEEDS, round_number=2, calls=ROUND_TWO_CALLS)
              for call in ROUND_TWO_CALLS for fault in READ_FAULTS]
    cases += [
        _github_case("POST git/trees", "HTTP 500 persistent", Expect.ERROR("publish")),
        _github_case("GET pages/builds/latest", "timeout", Expect.WAITS, deadline=4.0),
        _github_case("GET pages/builds/latest", "HTTP 500 persistent", Expect.WAITS, deadline=4.0),
        Case("github", "GitHub API", "refused", _refused_github, Expect.ERROR("publish"), deadline=12.0),
        Case("github", "Pages build", "errors once", _pages_builds(["errored"]), Expect.RETRY_SUCCEEDS),
        Case("github", "Pages build", "errors twice", _pages_builds(["errored"], ["errored"]), Expect.NOT_LIVE),
        Case("github", "Pages build", "never finishes", _never_built, Expect.WAITS, deadline=4.0),
        Case("github", "POST pages/builds (after an errored build)", "HTTP 429 Retry-After 1 s",
             _rebuild_fails(Fail(429, retry_after=1)), Expect.RETRY_SUCCEEDS),
        Case("github", "POST pages/builds (after an errored build)", "HTTP 403 (no rebuild possible)",
             _rebuild_fails(Fail(403, "Resource not accessible by integration")), Expect.NOT_LIVE),
        Case("github", "POST pages/builds (after an errored build)", "HTTP 500 persistent",
             _rebuild_fails(Fail(500), times=10), Expect.WAITS, deadline=4.0),
    ]
    cases += [
        _github_case("POST /user/repos", "timeout", Expect.ERROR("publish"), deadline=4.0),
        _github_case("POST git/trees", "timeout", Expect.ERROR("publish"), deadline=4.0),
        _github_case("POST /user/repos", "HTTP 403 secondary limit, Retry-After past the deadline",
                     Expect.ERROR("publish"), deadline=4.0),
    ]
    return cases


# -- the evaluation URL ------------------------------------------------------------------------------------

def _refused_receiver(world: World) -> None:
    world.evaluation_url = closed_url() + "/notify"


def _nothing(world: World) -> None:
    """The fault is in the receiver's options."""


def notify_cases() -> list[Case]:
    """The evaluation URL x every fault."""
    def case(fault: str, expect: Outcome, *receiver: Fault, deadline: float = 20.0,
             inject: Callable[[World], Any] = _nothing) -> Case:
        return Case("notify", "evaluation_url", fault, inject, expect, deadline=deadline, receiver=receiver)

    return [
        case("HTTP 500 once", Expect.RETRY_SUCCEEDS, Fail(500)),
        case("HTTP 500 persistent", Expect.UNNOTIFIED, *[Fail(500)] * 99, deadline=4.0),
        case("HTTP 429 Retry-After 2 s once", Expect.RETRY_SUCCEEDS, Fail(429, retry_after=2)),
        case("HTTP 503 Retry-After 2 s once", Expect.RETRY_SUCCEEDS, Fail(503, retry_after=2)),
        case("HTTP 429 Retry-After past the deadline", Expect.UNNOTIFIED, *[Fail(429, retry_after=60)] * 99),
        case("timeout", Expect.UNNOTIFIED, Delay(6.0), deadline=4.0),
        case("refused", Expect.UNNOTIFIED, deadline=4.0, inject=_refused_receiver),
        case("dropped once", Expect.RETRY_SUCCEEDS, Disconnect()),
        case("200 not JSON", Expect.SUCCEEDS, Malformed("<html><body>thanks</body></html>")),
        case("200 wrong shape", Expect.SUCCEEDS, WrongShape(["unexpected"])),
    ]


def case_id(case: Case) -> str:
    """``family: call | fault``."""
    return f"{case.family}: {case.call} | {case.fault}"


CASES = model_cases() + github_cases() + notify_cases()


# -- running one case through the service ---------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def openapi_description() -> None:
    """Load GitHub's OpenAPI description once."""
    load_openapi()


@pytest.fixture
def world(primary: ScriptedModel, backup: ScriptedModel, request: pytest.FixtureRequest) -> Iterator[World]:
    """Fresh fakes for one case (GitHub only for GitHub cases); the model servers answer with a good app."""
    case: Case = request.node.callspec.params["case"]
    for server in (primary, backup):
        server.default_reply = lambda _body: ROUND1_REPLY
    github = FakeGitHub().start() if case.family == "github" else None
    with EvaluationReceiver(case.receiver) as receiver:
        yield World(primary, backup, github, receiver, primary.base_url, receiver.notify_url,
                    github.api_url if github else "")
    if github is not None:
        github.stop()


def service_config(case: Case, world: World, data_dir: Path) -> Config:
    """The configuration of one case: short timeouts, its providers, GitHub when the case is about GitHub."""
    env = {"SECRET": SECRET, "DATA_DIR": str(data_dir), "DEADLINE_SECONDS": str(case.deadline),
           "SELF_CHECK": "off", "LLM_TIMEOUT_SECONDS": "1", "OPENAI_API_KEY": PRIMARY_KEY}
    if world.github is not None:
        env.update(GITHUB_TOKEN=world.github.token, GITHUB_API_URL=world.github_api_url,
                   GITHUB_WRITE_INTERVAL="0", GITHUB_POLL_INTERVAL="0.05")
    names = list(PROVIDERS)
    first = ProviderSpec(case.provider, world.primary_url, PRIMARY_KEY, "scripted-model", PROVIDERS[case.provider])
    second_name = names[(names.index(case.provider) + 1) % len(names)]
    second = ProviderSpec(second_name, world.backup.base_url, BACKUP_KEY, "scripted-model", PROVIDERS[second_name])
    providers = (first,) if case.sole or case.family != "model" else (first, second)
    return dataclasses.replace(load_config(env), providers=providers)


def request_for(case: Case, world: World) -> dict:
    """The grader's request: round 1 with a CSV and a PNG (a binary file needs a blob), or round 2."""
    body = request_body(case.round, world.evaluation_url)
    if case.round == 1:
        body["attachments"].append({"name": "logo.png", "url": data_uri(PNG, "image/png")})
    else:
        files = {"index.html": ROUND1_INDEX.encode(), "app.js": ROUND1_SCRIPT.encode(), "data.csv": SALES_CSV,
                 "logo.png": PNG}
        world.github.add_repo(ROUND_ONE_REPO, files, "Round 1\n\nNonce: nonce-7341-r1\n")
    return body


@pytest.mark.parametrize("case", [c if not isinstance(c, Case) else pytest.param(c, id=case_id(c)) for c in CASES])
def test_fault(case: Case, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    injected = case.inject(world)
    body = request_for(case, world)
    service = Service(service_config(case, world, tmp_path / "data"))
    try:
        started = time.monotonic()
        response = requests.post(f"{service.url}/api-endpoint", json=body, timeout=case.deadline + 60)
        elapsed = time.monotonic() - started
    finally:
        service.server.stop()
    assert elapsed <= case.deadline + SLACK, f"answered after {elapsed:.1f} s (deadline {case.deadline} s)"
    assert_outcome(case, world, response, injected)
    assert_no_secrets(service.config, response.text, capsys.readouterr(), tmp_path / "data")
    if world.github is not None:
        assert world.github.violations == []


def assert_outcome(case: Case, world: World, response: requests.Response, injected: Any) -> None:
    """The response and the fakes' records show the case's expected outcome."""
    body = response.json()
    expect = case.expect
    if expect.kind == "error":
        assert response.status_code == expect.status, body
        assert body["status"] == "error" and body["error"]["stage"] == expect.stage, body
        return
    assert response.status_code == 200, body
    assert body["status"] == "success", body
    if case.family == "model":
        assert_model_outcome(case, body["model"])
    elif case.family == "github":
        assert_github_outcome(case, world, body, injected)
    else:
        assert_notify_outcome(case, world.receiver, body)


def assert_model_outcome(case: Case, usage: dict) -> None:
    """Who wrote the app: the faulted provider after a retry, or the next one."""
    if case.expect is Expect.RETRY_SUCCEEDS:
        assert usage["provider"] == case.provider and usage["attempts"] == 2, usage
    else:
        assert usage["provider"] != case.provider and usage["attempts"] == 2, usage


def assert_github_outcome(case: Case, world: World, body: dict, injected: Any) -> None:
    """Live or not as expected, notified, one commit on main; a verified call was not re-sent."""
    github = world.github
    live = case.expect in (Expect.RETRY_SUCCEEDS, Expect.VERIFIED)
    assert body["pages_live"] is live and body["notified"] is True, body
    assert world.receiver.payloads[-1]["commit_sha"] == body["commit_sha"]
    name = f"sales-summary-7341-round-{case.round}"
    history = [c.id.decode() for c in github.history(name)]
    assert history[0] == body["commit_sha"] and len(history) == case.round, history
    if injected is not None and hasattr(injected, "times"):
        assert injected.times <= 0 or case.expect is Expect.WAITS, "the fault never fired"
    if case.expect is Expect.VERIFIED:
        method, pattern = case.route
        sent = [c for c in github.calls if c.method == method and re.search(pattern, c.path)]
        assert len(sent) == 1, f"a non-idempotent call was re-sent: {[c.path for c in sent]}"


def assert_notify_outcome(case: Case, receiver: EvaluationReceiver, body: dict) -> None:
    """Notified or not; a retry came only after the Retry-After the receiver asked for."""
    notified = case.expect is not Expect.UNNOTIFIED
    assert body["notified"] is notified, body
    assert receiver.early_attempts == 0, "the service knocked again before Retry-After had passed"
    if case.expect is Expect.RETRY_SUCCEEDS:
        assert receiver.attempts == 2 and receiver.payloads[-1]["commit_sha"] == body["commit_sha"]
    if case.expect is Expect.SUCCEEDS:
        assert receiver.attempts == 1


def assert_no_secrets(config: Config, text: str, captured: Any, data_dir: Path) -> None:
    """No configured secret in the answer, the logs or anything written under DATA_DIR."""
    secrets = config.secret_values()
    logs = captured.out + captured.err
    for secret in secrets:
        assert secret not in text and secret not in logs
    for path in data_dir.rglob("*"):
        try:
            content = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # SQLite removed its -wal/-shm after a checkpoint: nothing left to check
            continue
        assert not any(secret.encode() in content for secret in secrets), path
