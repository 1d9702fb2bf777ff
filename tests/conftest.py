"""Shared fixtures: the service on a real loopback port, the scripted model, the receiver, the fake GitHub.

Every external service is a real local HTTP server; nothing reaches the internet.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from main import create_app
from tests.check_lanes import add_check_lanes
from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.github_server import DEFAULT_TOKEN, FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.openapi_spec import SpecUnavailable
from tests.fakes.server import LocalServer
from utils.config import Config, load_config

SECRET = "test-shared-secret-7f3a9c"
MODEL_KEY = "sk-test-model-key-b81d2e"


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    """A scripted OpenAI-compatible server that requires MODEL_KEY."""
    with ScriptedModel(api_key=MODEL_KEY) as scripted:
        add_check_lanes(scripted)
        yield scripted


@pytest.fixture
def receiver() -> Iterator[EvaluationReceiver]:
    """An evaluation receiver that accepts every notification."""
    with EvaluationReceiver() as server:
        yield server


@pytest.fixture
def github_token() -> str:
    """The token the fake GitHub accepts (a test module overrides this fixture to choose its own)."""
    return DEFAULT_TOKEN


@pytest.fixture
def github(github_token: str) -> Iterator[FakeGitHub]:
    """A fresh fake GitHub; the test fails if any request broke GitHub's OpenAPI description."""
    with FakeGitHub(token=github_token) as fake:
        yield fake
        assert fake.violations == []


@pytest.fixture
def make_config(tmp_path: Path, model: ScriptedModel) -> Callable[..., Config]:
    """Build a Config from a minimal environment plus overrides (None removes a variable)."""

    def build(**overrides: str | None) -> Config:
        env = {"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
               "LLM_MODEL": "scripted-model", "DATA_DIR": str(tmp_path / "data"), "DEADLINE_SECONDS": "60",
               "SELF_CHECK": "off"}  # tests that exercise the browser stage turn it on
        env.update(overrides)
        return load_config({k: v for k, v in env.items() if v is not None})

    return build


class Service:
    """The service running on a loopback port, with helpers to call it."""

    def __init__(self, config: Config):
        self.config = config
        self.app = create_app(config)
        self.server = LocalServer(self.app).start()
        self.url = self.server.url

    def post(self, body: dict | bytes, **kwargs) -> requests.Response:
        """POST to /api-endpoint (a dict as JSON, bytes as they are)."""
        if isinstance(body, dict):
            return requests.post(f"{self.url}/api-endpoint", json=body, timeout=120, **kwargs)
        return requests.post(f"{self.url}/api-endpoint", data=body, timeout=120, **kwargs)


@pytest.fixture
def start_service(make_config) -> Iterator[Callable[..., Service]]:
    """Start the service with config overrides; stopped after the test."""
    started: list[Service] = []

    def start(**overrides: str | None) -> Service:
        service = Service(make_config(**overrides))
        started.append(service)
        return service

    yield start
    for service in started:
        service.server.stop()


@pytest.fixture
def service(start_service) -> Service:
    """The service with the default test configuration."""
    return start_service()


def data_uri(content: bytes, media_type: str = "text/csv") -> str:
    """A base64 data: URI for ``content``."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


def task_request(**fields) -> dict:
    """A valid round-1 request body; keyword arguments override fields."""
    body = {
        "email": "student@example.com", "secret": SECRET, "task": "sales-summary-4f2a", "round": 1,
        "nonce": "nonce-round-1", "brief": "Show the total of the sales column of data.csv in #total-sales.",
        "checks": [{"js": "document.querySelector('#total-sales') !== null"}],
        "attachments": [{"name": "data.csv", "url": data_uri(b"product,sales\nA,10\nB,32\n")}],
    }
    body.update(fields)
    return body


PRIMARY_KEY = "sk-primary-0123456789abcdef"
BACKUP_KEY = "sk-backup-fedcba9876543210"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedModel, ScriptedModel]]:
    """A primary and a backup scripted server per test module (stopping a server costs time)."""
    with ScriptedModel(api_key=PRIMARY_KEY) as first, ScriptedModel(api_key=BACKUP_KEY) as second:
        yield first, second


@pytest.fixture
def primary(servers) -> ScriptedModel:
    """The primary server, with an empty script and history."""
    servers[0].reset()
    return servers[0]


@pytest.fixture
def backup(servers) -> ScriptedModel:
    """The backup server, with an empty script and history."""
    servers[1].reset()
    return servers[1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A test whose fake GitHub cannot get GitHub's OpenAPI description is skipped locally, failed under CI."""
    try:
        return (yield)
    except SpecUnavailable as exc:
        _skip_or_fail(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The same for a test that starts a fake GitHub itself."""
    try:
        return (yield)
    except SpecUnavailable as exc:
        _skip_or_fail(str(exc))


def _skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when $CI is set (CI must run every test)."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI must not skip these tests)")
    pytest.skip(reason)
