"""utils/config.py: defaults, malformed values reported as problems, provider order, secrets kept out of repr."""

from __future__ import annotations

from utils.config import load_config


def test_config_defaults_with_no_environment():
    config = load_config({})
    assert config.port == 5000 and config.deadline_seconds == 600 and config.publisher_name == "local"
    assert config.missing_for_serving()[0] == "SECRET"
    assert "OPENAI_API_KEY" in config.missing_for_serving()[1]


def test_config_reports_malformed_values_instead_of_failing():
    config = load_config({"PORT": "eighty", "DEADLINE_SECONDS": "-5"})
    assert config.port == 5000 and config.deadline_seconds == 600
    assert any("PORT" in p for p in config.problems) and any("DEADLINE_SECONDS" in p for p in config.problems)


def test_infinite_and_nan_numbers_are_problems_not_a_crash():
    config = load_config({"PORT": "inf", "WEB_THREADS": "1e400", "DEADLINE_SECONDS": "nan"})
    assert config.port == 5000 and config.web_threads == 8 and config.deadline_seconds == 600
    assert sum(name in " ".join(config.problems) for name in ("PORT", "WEB_THREADS", "DEADLINE_SECONDS")) == 3


def test_aipipe_legacy_variable_is_read():
    config = load_config({"AIPIPE_AKI_KEY": "k"})
    assert [(p.name, p.key_variable) for p in config.providers] == [("aipipe", "AIPIPE_AKI_KEY")]
    assert config.providers[0].base_url == "https://aipipe.org/openai/v1"


def test_config_repr_hides_secrets():
    config = load_config({"SECRET": "s3cret-value", "OPENAI_API_KEY": "sk-abc", "GITHUB_TOKEN": "ghp_x"})
    assert "s3cret-value" not in repr(config) and "sk-abc" not in repr(config) and "ghp_x" not in repr(config)


def test_llm_providers_sets_the_order_and_drops_the_unlisted():
    env = {"OPENAI_API_KEY": "a", "AIPIPE_TOKEN": "b", "GEMINI_API_KEY": "c", "LLM_PROVIDERS": "gemini, openai, nope"}
    config = load_config(env)
    assert [p.name for p in config.providers] == ["gemini", "openai"]
    assert any("nope" in p for p in config.problems)


def test_choice_variables_fall_back_with_a_problem():
    config = load_config({"SELF_CHECK": "sometimes", "RESPONSE_MODE": "EARLY"})
    assert config.self_check == "auto" and config.response_mode == "early"
    assert any("SELF_CHECK" in p for p in config.problems)
