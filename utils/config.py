"""Every setting declared once (``SETTINGS``), and the one frozen Config built from them.

``load_config`` reads the environment (and ``.env``) through ``SETTINGS``,
applying platform defaults (Vercel's and Hugging Face Spaces'), so ``main.py`` and ``check_config.py``
see the same values; the preflight's variable report is derived from the same
table. Loading never fails on missing or malformed values: the service must
start with no configuration at all and say what it lacks (``Config.problems``).
Never puts a secret value in a repr, a problem or a hint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dotenv import load_dotenv

DEFAULT_GITHUB_API_URL = "https://api.github.com"
SPACES_FRAME_ANCESTOR = "https://huggingface.co"  # the Space's page shows the app in a frame from this origin


@dataclass(frozen=True)
class Setting:
    """One environment variable: its kind, default, whether it is secret, a fix hint, and the Config field it sets."""

    name: str
    kind: str  # text, url (trailing / dropped), path, number, integer or choice
    default: str | float = ""
    hint: str = ""
    secret: bool = False
    attribute: str = ""  # the Config field it sets; "" when read into a ProviderSpec or outside the Config
    minimum: float = 0.0
    options: tuple[str, ...] = ()  # a choice's accepted values, the first being its default
    on_vercel: str | float | None = None  # the default when VERCEL is set
    on_spaces: str | float | None = None  # the default on Hugging Face Spaces (SYSTEM=spaces with SPACE_ID)
    alias: str = ""  # an older name, read when this one is unset


SETTINGS = (
    Setting("SECRET", "text", hint="set SECRET to a long random string (e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`) and give it to the grader", secret=True, attribute="secret"),
    Setting("OPENAI_API_KEY", "text", hint="the primary provider's key (any OpenAI-compatible endpoint)", secret=True),
    Setting("OPENAI_BASE_URL", "url", "https://api.openai.com/v1",
            "the provider's base URL, ending in /v1 or its equivalent"),
    Setting("LLM_MODEL", "text", "gpt-4.1-mini", "a model id the primary provider serves"),
    Setting("AIPIPE_TOKEN", "text", hint="AI Pipe fallback key (alias AIPIPE_AKI_KEY)", secret=True,
            alias="AIPIPE_AKI_KEY"),
    Setting("AIPIPE_BASE_URL", "url", "https://aipipe.org/openai/v1", "AI Pipe endpoint"),
    Setting("AIPIPE_MODEL", "text", "gpt-4.1-mini", "AI Pipe model"),
    Setting("GEMINI_API_KEY", "text", hint="Gemini through its OpenAI-compatible endpoint", secret=True),
    Setting("GEMINI_MODEL", "text", "gemini-2.5-flash", "Gemini model"),
    Setting("OPENROUTER_API_KEY", "text", hint="OpenRouter key", secret=True),
    Setting("OPENROUTER_MODEL", "text", "openai/gpt-4.1-mini", "OpenRouter model"),
    Setting("ANTHROPIC_API_KEY", "text", hint="Anthropic through its OpenAI-compatible endpoint", secret=True),
    Setting("ANTHROPIC_MODEL", "text", "claude-sonnet-4-5", "Anthropic model"),
    Setting("LLM_PROVIDERS", "text", hint="comma-separated provider order, e.g. aipipe,openai; unlisted ones are "
            "not used"),
    Setting("LLM_TIMEOUT_SECONDS", "number", 180.0, "timeout of one model call", attribute="llm_timeout_seconds",
            minimum=1),
    Setting("LLM_MAX_TOKENS", "integer", 16000, "completion token limit per call", attribute="llm_max_tokens",
            minimum=256),
    Setting("GITHUB_TOKEN", "text", hint="a token that can create public repositories (classic: repo and workflow; "
            "fine-grained: Administration, Contents, Pages and Workflows read/write on all repositories)", secret=True,
            attribute="github_token"),
    Setting("GITHUB_USERNAME", "text", hint="optional: read from the token when unset", attribute="github_username"),
    Setting("GITHUB_API_URL", "url", DEFAULT_GITHUB_API_URL, "only for GitHub Enterprise: https://HOST/api/v3",
            attribute="github_api_url"),
    Setting("GITHUB_WRITE_INTERVAL", "number", 1.0, "seconds between mutating GitHub calls",
            attribute="github_write_interval"),
    Setting("GITHUB_POLL_INTERVAL", "number", 2.0, "seconds between Pages build status polls",
            attribute="github_poll_interval", minimum=0.01),
    Setting("PORT", "integer", 5000, "port to listen on (the Docker image and Spaces use 5000)", attribute="port",
            minimum=1),
    Setting("HOST", "text", "0.0.0.0", "address to bind (0.0.0.0 for containers)", attribute="host"),
    Setting("PUBLIC_URL", "url", hint="this service's public base URL, for the local publisher's links behind a "
            "proxy", attribute="public_url"),
    Setting("DATA_DIR", "path", "data", "a writable folder for the build store and local repositories (/data on Spaces "
            "with storage)", attribute="data_dir", on_vercel="/tmp/data"),
    Setting("ROUND_REPO", "choice", hint="new: a repository per round (the default); same: round N > 1 is a commit "
            "on round N-1 in round 1's repository (what TDS graders ask)", attribute="round_repo",
            options=("new", "same")),
    Setting("DATABASE_URL", "text", hint="postgresql://USER:PASSWORD@HOST:5432/DB: one store and build queue shared "
            "by several workers, containers or instances (unset: SQLite under DATA_DIR)", secret=True,
            attribute="database_url"),
    Setting("DEADLINE_SECONDS", "number", 600.0, "budget from receipt to notification", attribute="deadline_seconds",
            minimum=1, on_vercel=280.0),  # on Vercel: vercel.json's maxDuration (300 s) less a margin to answer
    Setting("MAX_REQUEST_BYTES", "integer", 25 * 1024 * 1024,
            "largest request body of POST /api-endpoint (others: 64 KB)", attribute="max_request_bytes",
            minimum=1024),
    Setting("MAX_ATTACHMENTS", "integer", 20, "most attachments per request", attribute="max_attachments"),
    Setting("MAX_ATTACHMENT_BYTES", "integer", 20 * 1024 * 1024, "largest total of decoded attachments",
            attribute="max_attachment_bytes", minimum=1),
    Setting("SELF_CHECK", "choice", hint="auto, off or required: run the checks in a browser before publishing",
            attribute="self_check", options=("auto", "off", "required")),
    Setting("SELF_CHECK_REPAIRS", "integer", 2, "repair rounds after a failed self-check",
            attribute="self_check_repairs"),
    Setting("CHROMIUM_PATH", "text", hint="the Chromium for self-checks, when not on PATH", attribute="chromium_path"),
    Setting("MAX_CONCURRENT_BUILDS", "integer", 4, "builds at once per process; keep it below WEB_THREADS",
            attribute="max_concurrent_builds", minimum=1),
    Setting("BUILD_QUEUE_SECONDS", "number", 30.0, "how long an extra request waits for a build slot before a 503",
            attribute="build_queue_seconds"),
    Setting("RESPONSE_MODE", "choice", hint="sync, or early to answer at once and build in the background (the "
            "default on Hugging Face Spaces, whose proxy cuts long requests)", attribute="response_mode",
            options=("sync", "early"), on_spaces="early"),
    Setting("WEB_CONCURRENCY", "integer", 1, "gunicorn worker processes", attribute="web_workers", minimum=1),
    Setting("WEB_THREADS", "integer", 8, "threads per worker; keep it above MAX_CONCURRENT_BUILDS",
            attribute="web_threads", minimum=1),
    Setting("LOG_LEVEL", "choice", hint="INFO, DEBUG, WARNING or ERROR", attribute="log_level",
            options=("INFO", "DEBUG", "WARNING", "ERROR")),
    Setting("SECRET_FAILURES_LIMIT", "integer", 10, "wrong secrets one client address may send per window before "
            "429 (0: no limit)", attribute="secret_failures_limit"),
    Setting("SECRET_FAILURES_WINDOW_SECONDS", "integer", 600, "the window of SECRET_FAILURES_LIMIT, in seconds",
            attribute="secret_failures_window_seconds", minimum=1),
    Setting("TRUSTED_PROXY_HOPS", "integer", 0, "proxies in front of the service that append to X-Forwarded-For "
            "(0: the connection's address; 1 on Hugging Face Spaces, whose proxy appends the client's)",
            attribute="trusted_proxy_hops", on_spaces=1),
    Setting("PROMETHEUS_MULTIPROC_DIR", "path", hint="set automatically when WEB_CONCURRENCY > 1"),
    Setting("FETCH_ALLOW_PRIVATE", "choice", hint="false, or true to let build-time fetches reach loopback, private "
            "and link-local addresses (LAN data, tests)", attribute="fetch_allow_private", options=("false", "true")),
    Setting("FETCH_USER_AGENT", "text", hint="the User-Agent of build-time fetches (default: the service's name and "
            "the request's email as contact)", attribute="fetch_user_agent"),
    Setting("FETCH_MAX_BYTES", "integer", 5 * 1024 * 1024, "most bytes read from one build-time fetch",
            attribute="fetch_max_bytes", minimum=1024),
    Setting("FETCH_TIMEOUT_SECONDS", "number", 10.0, "most seconds one build-time fetch may take",
            attribute="fetch_timeout_seconds", minimum=0.1),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class KnownProvider:
    """A provider the service knows: the settings holding its key and model, and its base URL."""

    name: str
    key: str
    model: str
    base_url: str = ""  # a fixed endpoint, or
    base_url_setting: str = ""  # the setting holding it


# The default order: the primary, AI Pipe, then the rest through their OpenAI-compatible endpoints.
KNOWN_PROVIDERS = (
    KnownProvider("openai", "OPENAI_API_KEY", "LLM_MODEL", base_url_setting="OPENAI_BASE_URL"),
    KnownProvider("aipipe", "AIPIPE_TOKEN", "AIPIPE_MODEL", base_url_setting="AIPIPE_BASE_URL"),
    KnownProvider("gemini", "GEMINI_API_KEY", "GEMINI_MODEL",
                  base_url="https://generativelanguage.googleapis.com/v1beta/openai/"),
    KnownProvider("openrouter", "OPENROUTER_API_KEY", "OPENROUTER_MODEL", base_url="https://openrouter.ai/api/v1"),
    KnownProvider("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL", base_url="https://api.anthropic.com/v1/"),
)
PROVIDER_KEYS_HINT = (f"{KNOWN_PROVIDERS[0].key} (or "
                      + ", ".join(provider.key for provider in KNOWN_PROVIDERS[1:]) + ")")


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
    """Everything the service reads from its environment (defaults live in ``SETTINGS``)."""

    secret: str = field(repr=False)
    providers: tuple[ProviderSpec, ...]
    github_token: str = field(repr=False)
    github_username: str
    github_api_url: str
    github_write_interval: float
    github_poll_interval: float
    host: str
    port: int
    public_url: str
    data_dir: Path
    database_url: str = field(repr=False)
    deadline_seconds: float
    max_request_bytes: int
    max_attachments: int
    max_attachment_bytes: int
    llm_timeout_seconds: float
    llm_max_tokens: int
    self_check: str
    self_check_repairs: int
    chromium_path: str
    max_concurrent_builds: int
    build_queue_seconds: float
    response_mode: str
    web_workers: int
    web_threads: int
    log_level: str
    secret_failures_limit: int
    secret_failures_window_seconds: int
    trusted_proxy_hops: int
    fetch_allow_private: str
    fetch_user_agent: str
    fetch_max_bytes: int
    fetch_timeout_seconds: float
    problems: tuple[str, ...]
    round_repo: str = "new"
    frame_ancestor: str = ""  # the one origin that may frame the service's pages ("" : none may)

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret value, for redaction and scanning."""
        values = [self.secret, self.github_token, *(p.api_key for p in self.providers), self.database_url,
                  database_password(self.database_url)]
        return tuple(v for v in values if v)

    def missing_for_serving(self) -> list[str]:
        """Variables that must be set before /api-endpoint can serve, with a hint each."""
        missing = []
        if not self.secret:
            missing.append("SECRET")
        if not self.providers:
            missing.append(PROVIDER_KEYS_HINT)
        return missing

    def slots_warning(self) -> str:
        """Why MAX_CONCURRENT_BUILDS does not fit WEB_THREADS, or "" when it does."""
        if self.max_concurrent_builds < self.web_threads:
            return ""
        return ("MAX_CONCURRENT_BUILDS >= WEB_THREADS: running builds can take every thread and /health will wait; "
                "raise WEB_THREADS")

    @property
    def publisher_name(self) -> str:
        """'github' when a token is set, else the embedded 'local' publisher."""
        return "github" if self.github_token else "local"


def database_password(url: str) -> str:
    """The password in a database URL ("" when none), so it is redacted like every secret."""
    try:
        parts = urlsplit(url)
        return parts.password or parse_qs(parts.query).get("password", [""])[0]
    except ValueError:
        return ""


def load_config(environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Config:
    """Build a Config from ``environ`` (default: ``os.environ`` after loading ``.env``)."""
    if environ is None:
        if dotenv:
            load_dotenv(override=False)
        environ = os.environ
    env = _Env(environ)
    values: dict[str, Any] = {setting.attribute: env.value(setting) for setting in SETTINGS if setting.attribute}
    providers = _providers(env)
    if not values["public_url"] and env.on_spaces and environ.get("SPACE_HOST"):
        values["public_url"] = "https://" + environ["SPACE_HOST"].strip().rstrip("/")  # the Space's own address
    frame_ancestor = SPACES_FRAME_ANCESTOR if env.on_spaces else ""
    return Config(**values, providers=providers, problems=tuple(env.problems), frame_ancestor=frame_ancestor)


def on_huggingface_spaces(environ: Mapping[str, str]) -> bool:
    """True inside a Hugging Face Space: its runtime sets SYSTEM=spaces and SPACE_ID or SPACE_HOST."""
    in_a_space = bool(environ.get("SPACE_ID") or environ.get("SPACE_HOST"))
    return (environ.get("SYSTEM") or "").strip() == "spaces" and in_a_space


def variable_value(environ: Mapping[str, str], setting: Setting) -> tuple[str, str]:
    """The variable that sets ``setting`` (its name, or its alias when only that is set) and its stripped value."""
    value = (environ.get(setting.name) or "").strip()
    if value or not setting.alias:
        return setting.name, value
    return setting.alias, (environ.get(setting.alias) or "").strip()


def _providers(env: _Env) -> tuple[ProviderSpec, ...]:
    """The configured providers in ``LLM_PROVIDERS`` order (default: ``KNOWN_PROVIDERS`` order)."""
    specs = _configured_providers(env)
    listed = str(env.value(SETTINGS_BY_NAME["LLM_PROVIDERS"]))
    order = [name.strip().lower() for name in listed.split(",") if name.strip()]
    if not order:
        return specs
    known = {provider.name for provider in KNOWN_PROVIDERS}
    env.problems.extend(f"LLM_PROVIDERS names unknown provider '{name}'" for name in order if name not in known)
    rank = {name: i for i, name in enumerate(order)}
    return tuple(sorted((s for s in specs if s.name in rank), key=lambda s: rank[s.name]))


def _configured_providers(env: _Env) -> tuple[ProviderSpec, ...]:
    """Every known provider whose key is set, in ``KNOWN_PROVIDERS`` order."""
    specs = []
    for provider in KNOWN_PROVIDERS:
        key_variable, key = variable_value(env.environ, SETTINGS_BY_NAME[provider.key])
        if key:
            base_url = (str(env.value(SETTINGS_BY_NAME[provider.base_url_setting])) if provider.base_url_setting
                        else provider.base_url)
            specs.append(ProviderSpec(provider.name, base_url, key, str(env.value(SETTINGS_BY_NAME[provider.model])),
                                      key_variable))
    return tuple(specs)


class _Env:
    """Reads typed values through ``SETTINGS``, recording a problem (never raising) for malformed ones."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.on_vercel = bool((environ.get("VERCEL") or "").strip())
        self.on_spaces = on_huggingface_spaces(environ)
        self.problems: list[str] = []

    def value(self, setting: Setting) -> str | float | int | Path:
        """``setting``'s value: as set, else its (platform) default; malformed values fall back with a problem."""
        raw = variable_value(self.environ, setting)[1]
        default = setting.on_vercel if self.on_vercel and setting.on_vercel is not None else setting.default
        default = setting.on_spaces if self.on_spaces and setting.on_spaces is not None else default
        if setting.kind == "choice":
            return self._choice(setting.name, raw, setting.options, str(default or setting.options[0]))
        if setting.kind in ("number", "integer"):
            number = self._number(setting.name, raw, float(default), minimum=setting.minimum)
            return int(number) if setting.kind == "integer" else number
        text = raw or str(default)
        if setting.kind == "path":
            return Path(text)
        return text.rstrip("/") if setting.kind == "url" else text

    def _number(self, name: str, raw: str, default: float, *, minimum: float) -> float:
        """``raw`` as a number of at least ``minimum``, else ``default``."""
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # "inf" and "nan" parse, but no setting can use them (int() raises)
            self.problems.append(f"{name}={raw!r} is not a number; using {default:g}")
            return default
        if value < minimum:
            self.problems.append(f"{name}={raw} is below {minimum:g}; using {default:g}")
            return default
        return value

    def _choice(self, name: str, raw: str, options: tuple[str, ...], default: str) -> str:
        """One of ``options`` (case-insensitive), else ``default`` (the first option, or the platform's)."""
        for option in options:
            if raw.lower() == option.lower():
                return option
        if raw:
            self.problems.append(f"{name}={raw!r} is not one of {', '.join(options)}; using {default}")
        return default
