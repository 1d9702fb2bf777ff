"""Unit tests for configuration, log redaction, repository naming and notification backoff."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from tests.fakes.evaluation_server import EvaluationReceiver
from utils.config import load_config
from utils.deadline import Deadline
from utils.logs import JsonFormatter
from utils.build.notify import NOTIFICATION_KEYS, notification_payload, notify
from utils.publishers.base import commit_message, nonce_of, repo_name_for


def test_config_defaults_with_no_environment():
    config = load_config({})
    assert config.port == 5000 and config.deadline_seconds == 600 and config.publisher_name == "local"
    assert config.missing_for_serving()[0] == "SECRET"
    assert "OPENAI_API_KEY" in config.missing_for_serving()[1]


def test_config_reports_malformed_values_instead_of_failing():
    config = load_config({"PORT": "eighty", "DEADLINE_SECONDS": "-5"})
    assert config.port == 5000 and config.deadline_seconds == 600
    assert any("PORT" in p for p in config.problems) and any("DEADLINE_SECONDS" in p for p in config.problems)


def test_aipipe_legacy_variable_is_read():
    config = load_config({"AIPIPE_AKI_KEY": "k"})
    assert [(p.name, p.key_variable) for p in config.providers] == [("aipipe", "AIPIPE_AKI_KEY")]
    assert config.providers[0].base_url == "https://aipipe.org/openai/v1"


def test_config_repr_hides_secrets():
    config = load_config({"SECRET": "s3cret-value", "OPENAI_API_KEY": "sk-abc", "GITHUB_TOKEN": "ghp_x"})
    assert "s3cret-value" not in repr(config) and "sk-abc" not in repr(config) and "ghp_x" not in repr(config)


def test_json_formatter_redacts_secrets_in_messages_and_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(["hunter2-secret", 'quo"te']))
    logger = logging.getLogger("redaction-test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("token hunter2-secret leaked", extra={"detail": {"key": 'quo"te'}, "stage": "x"})
    line = json.loads(stream.getvalue())
    assert "hunter2-secret" not in stream.getvalue() and 'quo\\"te' not in stream.getvalue()
    assert line["message"] == "token [REDACTED] leaked" and line["stage"] == "x"


@pytest.mark.parametrize("task, round_number", [
    ("sales-summary", 1), ("Ünïcode task / with spaces", 3), ("x" * 300, 2), ("...", 1)])
def test_repo_names_are_valid_stable_and_bounded(task, round_number):
    name = repo_name_for(task, round_number)
    assert name == repo_name_for(task, round_number)
    assert len(name) <= 100 and name.endswith(f"-round-{round_number}")
    assert all(c.isalnum() or c in "._-" for c in name) and not name.startswith(".")


def test_long_task_names_stay_distinct():
    assert repo_name_for("a" * 200 + "1", 1) != repo_name_for("a" * 200 + "2", 1)


def test_nonce_trailer_round_trips():
    assert nonce_of(commit_message("Round 1: x", "task", 1, "n-123")) == "n-123"
    assert nonce_of("no trailer here") is None


def test_notification_payload_has_exactly_seven_keys():
    values = {k: k for k in NOTIFICATION_KEYS} | {"secret": "never", "timings": {}}
    assert list(notification_payload(values)) == list(NOTIFICATION_KEYS)


def test_notify_backs_off_1_2_4_and_stops_at_the_deadline():
    with EvaluationReceiver(fail_first=100) as down:
        started = time.monotonic()
        result = notify(down.notify_url, {"a": 1}, Deadline(5.0))
        elapsed = time.monotonic() - started
    assert result.ok is False and result.last_error == "HTTP 500"
    assert down.attempts == 3  # at 0 s, 1 s and 3 s; the next (at 7 s) is past the deadline
    assert elapsed < 5.5


def test_notify_tries_once_even_with_no_time_left():
    with EvaluationReceiver() as up:
        assert notify(up.notify_url, {"a": 1}, Deadline(0.0)).ok is True


def test_llm_providers_sets_the_order_and_drops_the_unlisted():
    env = {"OPENAI_API_KEY": "a", "AIPIPE_TOKEN": "b", "GEMINI_API_KEY": "c", "LLM_PROVIDERS": "gemini, openai, nope"}
    config = load_config(env)
    assert [p.name for p in config.providers] == ["gemini", "openai"]
    assert any("nope" in p for p in config.problems)


def test_choice_variables_fall_back_with_a_problem():
    config = load_config({"SELF_CHECK": "sometimes", "RESPONSE_MODE": "EARLY"})
    assert config.self_check == "auto" and config.response_mode == "early"
    assert any("SELF_CHECK" in p for p in config.problems)
