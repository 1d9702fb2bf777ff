"""The provider chain in utils/model/llm.py against scripted OpenAI-compatible servers over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import BACKUP_KEY, PRIMARY_KEY
from tests.fakes.faults import Delay, Disconnect, Fail, Malformed
from tests.fakes.openai_server import ScriptedModel, Truncated, count_tokens
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.errors import GenerationFailed, ProvidersFailed
from utils.model.base import Completion
from utils.model.llm import ModelClient
from utils.model.usage import UsageTally
from utils.records import Attempt

MESSAGES = [{"role": "system", "content": "You write apps."}, {"role": "user", "content": "Build a page"}]


def spec(name: str, server: ScriptedModel, key: str, model: str = "scripted-model") -> ProviderSpec:
    """A provider pointing at a scripted server."""
    return ProviderSpec(name, server.base_url, key, model, f"{name.upper()}_API_KEY")




def chain(primary: ScriptedModel, backup: ScriptedModel, **options) -> ModelClient:
    """A client over primary then backup with test-sized limits."""
    options = {"timeout": 0.5, "max_tokens": 256, **options}
    return ModelClient([spec("openai", primary, PRIMARY_KEY), spec("aipipe", backup, BACKUP_KEY)], **options)


def statuses(result: Completion | ProvidersFailed) -> list[tuple[str, str]]:
    """(provider, status) of each attempt."""
    return [(a.provider, a.status) for a in result.attempts]


def deadline(seconds: float = 5.0) -> Deadline:
    return Deadline(seconds)


@pytest.mark.parametrize("stream", [False, True])
def test_reply_with_token_accounting(primary, backup, stream):
    reply = "<!doctype html><html><body>Hello, world. This reply is longer than one stream chunk.</body></html>"
    primary.enqueue(reply)
    completion = chain(primary, backup, stream=stream).complete(MESSAGES, deadline())
    assert completion.text == reply
    assert completion.finish_reason == "stop"
    assert (completion.provider, completion.model) == ("openai", "scripted-model")
    assert completion.prompt_tokens == count_tokens("You write apps. Build a page")
    assert completion.completion_tokens == count_tokens(reply)
    assert statuses(completion) == [("openai", "ok")]
    sent = primary.history[0].json
    assert sent["max_tokens"] == 256 and sent["messages"] == MESSAGES
    assert bool(sent.get("stream")) is stream
    assert backup.history == []


def test_usage_summarises_the_attempts(primary, backup):
    primary.enqueue(Fail(500))
    tally = UsageTally()
    tally.add(chain(primary, backup).complete(MESSAGES, deadline()))
    usage = tally.usage()
    assert (usage.provider, usage.attempts) == ("aipipe", 2)
    assert usage.completion_tokens == count_tokens("Hello from the scripted model.")


@pytest.mark.parametrize("stream", [False, True])
def test_500_on_primary_falls_back_to_second(primary, backup, stream):
    primary.enqueue(Fail(500))
    backup.enqueue("from backup")
    completion = chain(primary, backup, stream=stream).complete(MESSAGES, deadline())
    assert completion.text == "from backup"
    assert completion.provider == "aipipe"
    assert statuses(completion) == [("openai", "500"), ("aipipe", "ok")]


def test_429_with_small_retry_after_retries_same_provider(primary, backup):
    primary.enqueue(Fail(429, retry_after=0.1), "after the wait")
    started = time.monotonic()
    completion = chain(primary, backup).complete(MESSAGES, deadline())
    assert completion.text == "after the wait"
    assert statuses(completion) == [("openai", "429"), ("openai", "ok")]
    assert time.monotonic() - started >= 0.1
    assert backup.history == []


def test_429_twice_moves_on_after_one_retry(primary, backup):
    primary.enqueue(Fail(429, retry_after=0), Fail(429, retry_after=0))
    completion = chain(primary, backup).complete(MESSAGES, deadline())
    assert statuses(completion) == [("openai", "429"), ("openai", "429"), ("aipipe", "ok")]


@pytest.mark.parametrize("retry_after", [None, 30.0])
def test_429_without_usable_retry_after_moves_on(primary, backup, retry_after):
    primary.enqueue(Fail(429, retry_after=retry_after))
    completion = chain(primary, backup).complete(MESSAGES, deadline(2.0))
    assert statuses(completion) == [("openai", "429"), ("aipipe", "ok")]
    assert len(primary.history) == 1  # not asked again after a wait


@pytest.mark.parametrize("stream", [False, True])
def test_delay_beyond_client_timeout_moves_on(primary, backup, stream):
    primary.enqueue(Delay(1.5, then="too late"))
    completion = chain(primary, backup, timeout=0.3, stream=stream).complete(MESSAGES, deadline())
    assert statuses(completion) == [("openai", "timeout"), ("aipipe", "ok")]  # the 1.5 s answer was not awaited


def test_call_timeout_is_capped_by_the_deadline(primary, backup):
    primary.enqueue(Delay(1.5))
    with pytest.raises(ProvidersFailed) as caught:
        chain(primary, backup, timeout=10).complete(MESSAGES, Deadline(0.3))
    assert statuses(caught.value) == [("openai", "timeout"), ("aipipe", "skipped: deadline reached")]


def test_wrong_key_on_primary_falls_back_and_says_so(backup):
    with ScriptedModel(api_key="sk-the-right-one") as primary:
        completion = chain(primary, backup).complete(MESSAGES, deadline())
        recorded = primary.history[0]
    assert statuses(completion) == [("openai", "401 invalid key"), ("aipipe", "ok")]
    assert recorded.authorized is False
    assert "Authorization" not in recorded.headers
    assert PRIMARY_KEY not in json.dumps(recorded.headers)


def test_unknown_model_is_reported_and_skipped(backup):
    with ScriptedModel(models=("gpt-real",)) as primary:
        completion = chain(primary, backup).complete(MESSAGES, deadline())
    assert completion.attempts[0].status.startswith("404")
    assert completion.provider == "aipipe"


def test_all_fail_raises_generation_failed_listing_attempts_without_keys(backup):
    backup.enqueue(Fail(503))
    with ScriptedModel(api_key="sk-the-right-one") as primary:
        with pytest.raises(GenerationFailed) as caught:
            chain(primary, backup).complete(MESSAGES, deadline())
    error = caught.value
    assert (error.status, error.stage) == (502, "generation")
    assert f"openai (scripted-model) at {primary.base_url}: 401 invalid key after" in error.message  # issue 17
    assert f"aipipe (scripted-model) at {backup.base_url}: 503 after" in error.message
    assert "Check OPENAI_API_KEY." in error.message
    assert [a.status for a in error.attempts] == ["401 invalid key", "503"]
    text = json.dumps(error.to_body()) + repr(error) + str(error.attempts)
    assert PRIMARY_KEY not in text and BACKUP_KEY not in text
    assert "Incorrect API key" not in text
    assert error.__cause__ is None and error.__context__ is None


def test_no_providers_raises_generation_failed():
    with pytest.raises(GenerationFailed, match="No model provider is configured"):
        ModelClient([], timeout=1, max_tokens=256).complete(MESSAGES, deadline())


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_tries_the_healthy_provider_first(primary, backup):
    clock = FakeClock()
    client = chain(primary, backup, cooldown_seconds=120, clock=clock)
    primary.enqueue(Fail(500))
    assert client.complete(MESSAGES, deadline()).provider == "aipipe"

    clock.now += 60
    second = client.complete(MESSAGES, deadline())
    assert statuses(second) == [("aipipe", "ok")]
    assert len(primary.history) == 1

    clock.now += 61
    assert statuses(client.complete(MESSAGES, deadline())) == [("openai", "ok")]


def test_cooled_down_provider_is_still_tried_last(primary, backup):
    clock = FakeClock()
    client = chain(primary, backup, clock=clock)
    primary.enqueue(Fail(500))
    client.complete(MESSAGES, deadline())
    backup.enqueue(Fail(500))
    completion = client.complete(MESSAGES, deadline())
    assert statuses(completion) == [("aipipe", "500"), ("openai", "ok")]


@pytest.mark.parametrize("stream", [False, True])
def test_truncated_reply_returns_finish_reason_length(primary, backup, stream):
    primary.enqueue(Truncated("index.html\n```html\n<html><body>half"))
    completion = chain(primary, backup, stream=stream).complete(MESSAGES, deadline())
    assert completion.finish_reason == "length"
    assert completion.text.endswith("<body>half")
    assert completion.provider == "openai"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fault", "status"), [
    (Malformed(), "malformed reply"),
    (Disconnect(), "connection error"),
    (Fail(502, body="<html>bad gateway</html>"), "502"),
    ("   ", "empty reply"),
])
def test_unusable_replies_move_to_next_provider(primary, backup, stream, fault, status):
    primary.enqueue(fault)
    completion = chain(primary, backup, stream=stream).complete(MESSAGES, deadline())
    assert statuses(completion) == [("openai", status), ("aipipe", "ok")]


def test_max_tokens_rejected_retries_with_max_completion_tokens(primary, backup):
    body = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                 "Use 'max_completion_tokens' instead.",
                      "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}
    primary.enqueue(Fail(400, body=body), "ok now")
    client = chain(primary, backup)
    completion = client.complete(MESSAGES, deadline())
    assert statuses(completion) == [("openai", "400 max_tokens unsupported"), ("openai", "ok")]
    assert "max_tokens" not in primary.history[1].json
    assert primary.history[1].json["max_completion_tokens"] == 256
    client.complete(MESSAGES, deadline())
    assert primary.history[2].json["max_completion_tokens"] == 256


def test_concurrent_calls_share_one_client(primary, backup):
    primary.default_reply = lambda body: f"reply to {body['messages'][-1]['content']}"
    client = chain(primary, backup)
    prompts = [[{"role": "user", "content": f"prompt-{i}"}] for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda m: client.complete(m, deadline()).text, prompts))
    assert texts == [f"reply to prompt-{i}" for i in range(8)]
    assert len(primary.history) == 8


def test_attempt_describe_has_no_key():
    assert Attempt("openai", "m", "timeout", 1.234).describe() == "openai (m): timeout after 1.23 s"


def test_import_is_cheap():
    code = "import sys, utils.model.llm; sys.exit('openai' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


class TestScriptedModel:
    """The fake itself: routes, auth, default replies."""

    def test_models_route_and_auth(self):
        with ScriptedModel(api_key="k", models=("a", "b")) as server:
            ok = requests.get(f"{server.base_url}/models", headers={"Authorization": "Bearer k"}, timeout=2)
            bad = requests.get(f"{server.base_url}/models", headers={"Authorization": "Bearer x"}, timeout=2)
        assert [m["id"] for m in ok.json()["data"]] == ["a", "b"]
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"

    def test_default_reply_answers_by_prompt_and_faults_can_be_returned(self):
        with ScriptedModel() as server:
            server.default_reply = lambda body: Fail(500) if "fail" in json.dumps(body) else "fine"
            url = f"{server.base_url}/chat/completions"
            good = requests.post(url, json={"model": "m", "messages": MESSAGES}, timeout=2)
            bad = requests.post(url, json={"model": "m", "messages": [{"role": "user", "content": "fail"}]},
                                timeout=2)
        assert good.json()["choices"][0]["message"]["content"] == "fine"
        assert good.json()["usage"]["completion_tokens"] == 1
        assert bad.status_code == 500 and "error" in bad.json()

    def test_stream_ends_with_usage_and_done(self):
        with ScriptedModel() as server:
            server.enqueue("streamed words here")
            response = requests.post(f"{server.base_url}/chat/completions", timeout=2, json={
                "model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})
        lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        last = json.loads(lines[-2].removeprefix("data: "))
        assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


def test_every_provider_failing_names_each_endpoint_tried(primary, backup):
    primary.enqueue(Fail(500))
    backup.enqueue(Fail(503))
    with pytest.raises(ProvidersFailed) as raised:
        chain(primary, backup).complete(MESSAGES, deadline())
    message = str(raised.value)
    assert f"openai (scripted-model) at {primary.base_url}: 500 after" in message
    assert f"aipipe (scripted-model) at {backup.base_url}: 503 after" in message
    assert PRIMARY_KEY not in message and BACKUP_KEY not in message


def test_an_endpoint_is_shown_without_credentials_or_query():
    from utils.model.llm import public_endpoint

    assert public_endpoint("https://user:pa55@llm.example.com:8443/v1?key=sk-abc#x") == "https://llm.example.com:8443/v1"
    assert public_endpoint("http://[::1]:9/v1") == "http://[::1]:9/v1"
    assert public_endpoint("not a url") == ""


def test_a_provider_retried_during_its_cool_down_says_when_it_failed(primary, backup):
    clock = FakeClock()
    client = ModelClient([spec("openai", primary, PRIMARY_KEY)], timeout=0.5, max_tokens=256, clock=clock)
    primary.enqueue(Fail(500))
    with pytest.raises(ProvidersFailed) as first:
        client.complete(MESSAGES, deadline())
    assert "tried last" not in str(first.value)
    clock.now += 42
    primary.enqueue(Fail(502))
    with pytest.raises(ProvidersFailed) as second:
        client.complete(MESSAGES, deadline())
    assert "502 after" in str(second.value) and "(tried last: it had failed 42 s before)" in str(second.value)
    assert len(primary.history) == 2, "a provider in its cool-down is still tried, last"
