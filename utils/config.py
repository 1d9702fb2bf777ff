"""One frozen Config built from the environment (and ``.env``) in one place.

``main.py`` and ``check_config.py`` both call ``load_config``. Loading never
fails on missing or malformed values: the service must start with no
configuration at all and say what it lacks (``Config.problems``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
DEFAULT_AIPIPE_BASE_URL = "https://aipipe.org/openai/v1"
DEFAULT_AIPIPE_MODEL = "gpt-4.1-mini"
DEFAULT_GITHUB_API_URL = "https://api.github.com"

# Further providers through their OpenAI-compatible endpoints, tried after the primary and AI Pipe:
# name, key variable, base URL, model variable, default model.
EXTRA_PROVIDERS = (
    ("gemini", "GEMINI_API_KEY", "https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_MODEL",
     "gemini-2.5-flash"),
    ("openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1", "OPENROUTER_MODEL", "openai/gpt-4.1-mini"),
    ("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com/v1/", "ANTHROPIC_MODEL", "claude-sonnet-4-5"),
)


@dataclass(frozen=True)
class ProviderSpec:
    """An OpenAI-compatible model endpoint: name, base URL, key variable and model."""

    name: str
    base_url: str
    api_key: str = field(repr=False)
    model: str
    key_variable: str


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its environment."""

    secret: str = field(default="", repr=False)
    providers: tuple[ProviderSpec, ...] = ()
    github_token: str = field(default="", repr=False)
    github_username: str = ""
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_write_interval: float = 1.0
    github_poll_interval: float = 2.0
    host: str = "0.0.0.0"
    port: int = 5000
    public_url: str = ""
    data_dir: Path = Path("data")
    deadline_seconds: float = 600.0
    max_request_bytes: int = 25 * 1024 * 1024
    max_attachments: int = 20
    max_attachment_bytes: int = 20 * 1024 * 1024
    llm_timeout_seconds: float = 180.0
    llm_max_tokens: int = 16000
    self_check: str = "auto"
    self_check_repairs: int = 2
    chromium_path: str = ""
    max_concurrent_builds: int = 4
    build_queue_seconds: float = 30.0
    response_mode: str = "sync"
    web_workers: int = 1
    web_threads: int = 8
    log_level: str = "INFO"
    secret_failures_limit: int = 10
    secret_failures_window_seconds: int = 600
    trusted_proxy_hops: int = 0
    problems: tuple[str, ...] = ()

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret value, for redaction and scanning."""
        values = [self.secret, self.github_token, *(p.api_key for p in self.providers)]
        return tuple(v for v in values if v)

    def missing_for_serving(self) -> list[str]:
        """Variables that must be set before /api-endpoint can serve, with a hint each."""
        missing = []
        if not self.secret:
            missing.append("SECRET")
        if not self.providers:
            missing.append("OPENAI_API_KEY (or AIPIPE_TOKEN, GEMINI_API_KEY, OPENROUTER_API_KEY, ANTHROPIC_API_KEY)")
        return missing

    @property
    def publisher_name(self) -> str:
        """'github' when a token is set, else the embedded 'local' publisher."""
        return "github" if self.github_token else "local"


def load_config(environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Config:
    """Build a Config from ``environ`` (default: ``os.environ`` after loading ``.env``)."""
    if environ is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        environ = os.environ
    env = _Env(environ)
    config = Config(
        secret=env.text("SECRET"),
        providers=_providers(env),
        github_token=env.text("GITHUB_TOKEN"),
        github_username=env.text("GITHUB_USERNAME"),
        github_api_url=env.text("GITHUB_API_URL", DEFAULT_GITHUB_API_URL).rstrip("/"),
        github_write_interval=env.number("GITHUB_WRITE_INTERVAL", 1.0, minimum=0.0),
        github_poll_interval=env.number("GITHUB_POLL_INTERVAL", 2.0, minimum=0.01),
        host=env.text("HOST", "0.0.0.0"),
        port=env.integer("PORT", 5000, minimum=1),
        public_url=env.text("PUBLIC_URL").rstrip("/"),
        data_dir=Path(env.text("DATA_DIR", "data")),
        deadline_seconds=env.number("DEADLINE_SECONDS", 600.0, minimum=1.0),
        max_request_bytes=env.integer("MAX_REQUEST_BYTES", 25 * 1024 * 1024, minimum=1024),
        max_attachments=env.integer("MAX_ATTACHMENTS", 20, minimum=0),
        max_attachment_bytes=env.integer("MAX_ATTACHMENT_BYTES", 20 * 1024 * 1024, minimum=1),
        llm_timeout_seconds=env.number("LLM_TIMEOUT_SECONDS", 180.0, minimum=1.0),
        llm_max_tokens=env.integer("LLM_MAX_TOKENS", 16000, minimum=256),
        self_check=env.choice("SELF_CHECK", ("auto", "off", "required")),
        self_check_repairs=env.integer("SELF_CHECK_REPAIRS", 2, minimum=0),
        chromium_path=env.text("CHROMIUM_PATH"),
        max_concurrent_builds=env.integer("MAX_CONCURRENT_BUILDS", 4, minimum=1),
        build_queue_seconds=env.number("BUILD_QUEUE_SECONDS", 30.0, minimum=0.0),
        response_mode=env.choice("RESPONSE_MODE", ("sync", "early")),
        web_workers=env.integer("WEB_CONCURRENCY", 1, minimum=1),
        web_threads=env.integer("WEB_THREADS", 8, minimum=1),
        log_level=env.choice("LOG_LEVEL", ("INFO", "DEBUG", "WARNING", "ERROR")),
        secret_failures_limit=env.integer("SECRET_FAILURES_LIMIT", 10, minimum=0),
        secret_failures_window_seconds=env.integer("SECRET_FAILURES_WINDOW_SECONDS", 600, minimum=1),
        trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0),
        problems=(),
    )
    return Config(**{**config.__dict__, "problems": tuple(env.problems)})


def _providers(env: _Env) -> tuple[ProviderSpec, ...]:
    """The configured providers in ``LLM_PROVIDERS`` order (default: primary, AI Pipe, the rest)."""
    specs = _configured_providers(env)
    order = [name.strip().lower() for name in env.text("LLM_PROVIDERS").split(",") if name.strip()]
    if not order:
        return specs
    known = {spec.name for spec in specs} | {"openai", "aipipe"} | {row[0] for row in EXTRA_PROVIDERS}
    env.problems.extend(f"LLM_PROVIDERS names unknown provider '{name}'" for name in order if name not in known)
    rank = {name: i for i, name in enumerate(order)}
    return tuple(sorted((s for s in specs if s.name in rank), key=lambda s: rank[s.name]))


def _configured_providers(env: _Env) -> tuple[ProviderSpec, ...]:
    """Every provider whose key is set, primary first."""
    specs = []
    if key := env.text("OPENAI_API_KEY"):
        specs.append(ProviderSpec("openai", env.text("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL),
                                  key, env.text("LLM_MODEL", DEFAULT_OPENAI_MODEL), "OPENAI_API_KEY"))
    aipipe_variable = "AIPIPE_TOKEN" if env.text("AIPIPE_TOKEN") else "AIPIPE_AKI_KEY"
    if key := env.text(aipipe_variable):
        specs.append(ProviderSpec("aipipe", env.text("AIPIPE_BASE_URL", DEFAULT_AIPIPE_BASE_URL),
                                  key, env.text("AIPIPE_MODEL", DEFAULT_AIPIPE_MODEL), aipipe_variable))
    for name, key_variable, base_url, model_variable, model in EXTRA_PROVIDERS:
        if key := env.text(key_variable):
            specs.append(ProviderSpec(name, base_url, key, env.text(model_variable, model), key_variable))
    return tuple(specs)


class _Env:
    """Reads typed values, recording a problem (never raising) for malformed ones."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str = "") -> str:
        value = (self.environ.get(name) or "").strip()
        return value or default

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number; using {default:g}")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw} is below {minimum:g}; using {default:g}")
            return default
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        """One of ``options`` (case-insensitive); the first is the default."""
        raw = self.text(name)
        for option in options:
            if raw.lower() == option.lower():
                return option
        if raw:
            self.problems.append(f"{name}={raw!r} is not one of {', '.join(options)}; using {options[0]}")
        return options[0]

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.number(name, float(default), minimum=minimum)
        return int(value)
