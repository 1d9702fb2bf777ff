"""Preflight: check the service's configuration before the first graded request.

Uses the service's own loader (``utils.config.load_config``). Reports every
variable with its status and a fix hint, then checks live what a variable alone
cannot show: the GitHub token (``GET {GITHUB_API_URL}/user``: its login, classic
scopes, fine-grained tokens, expiry), every model provider (a models list, or a
one-token completion, with latency), that ``DATA_DIR`` is writable, that the
secret is long enough, and whether a browser is there for self-checks.

Exit code 0 only when the service can serve (no ``fail``); ``--json`` for machines.
Never prints a secret value: only whether it is set and its length, and every
line is passed through the same redaction as the service's logs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import requests

from utils.config import Config, ProviderSpec, load_config
from utils.logs import JsonFormatter

MIN_SECRET_LENGTH = 16
HTTP_TIMEOUT = 15.0
EXPIRY_WARNING_DAYS = 7
GITHUB_SCOPES = ("repo",)  # the Pages API needs repo for classic tokens; public_repo alone cannot enable Pages
USER_AGENT = "llm-code-deployment-preflight"
OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
MARKS = {OK: " ok ", INFO: "info", WARN: "warn", FAIL: "FAIL"}


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, its status (ok, info, warn, fail), and how to fix it."""

    name: str
    status: str
    detail: str
    hint: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class Variable:
    """A documented environment variable: whether it is secret, and what to do about it."""

    name: str
    hint: str
    secret: bool = False
    attribute: str = ""  # the Config field it sets, to show the value in use when unset


VARIABLES = (
    Variable("SECRET", "set SECRET to a long random string (e.g. `python -c 'import secrets; "
                       "print(secrets.token_urlsafe(32))'`) and give it to the grader", secret=True),
    Variable("OPENAI_API_KEY", "the primary provider's key (any OpenAI-compatible endpoint)", secret=True),
    Variable("OPENAI_BASE_URL", "the provider's base URL, ending in /v1 or its equivalent"),
    Variable("LLM_MODEL", "a model id the primary provider serves"),
    Variable("AIPIPE_TOKEN", "AI Pipe fallback key (alias AIPIPE_AKI_KEY)", secret=True),
    Variable("AIPIPE_BASE_URL", "AI Pipe endpoint"),
    Variable("AIPIPE_MODEL", "AI Pipe model"),
    Variable("GEMINI_API_KEY", "Gemini through its OpenAI-compatible endpoint", secret=True),
    Variable("GEMINI_MODEL", "Gemini model"),
    Variable("OPENROUTER_API_KEY", "OpenRouter key", secret=True),
    Variable("OPENROUTER_MODEL", "OpenRouter model"),
    Variable("ANTHROPIC_API_KEY", "Anthropic through its OpenAI-compatible endpoint", secret=True),
    Variable("ANTHROPIC_MODEL", "Anthropic model"),
    Variable("LLM_PROVIDERS", "comma-separated provider order, e.g. aipipe,openai"),
    Variable("LLM_TIMEOUT_SECONDS", "timeout of one model call", attribute="llm_timeout_seconds"),
    Variable("LLM_MAX_TOKENS", "completion token limit per call", attribute="llm_max_tokens"),
    Variable("GITHUB_TOKEN", "a token that can create public repositories (classic: repo; fine-grained: "
                             "Administration, Contents and Pages read/write on all repositories)", secret=True),
    Variable("GITHUB_USERNAME", "optional: read from the token when unset"),
    Variable("GITHUB_API_URL", "only for GitHub Enterprise: https://HOST/api/v3", attribute="github_api_url"),
    Variable("PORT", "port to listen on (the Docker image and Spaces use 5000)", attribute="port"),
    Variable("HOST", "address to bind (0.0.0.0 for containers)", attribute="host"),
    Variable("PUBLIC_URL", "this service's public base URL, for the local publisher's links behind a proxy"),
    Variable("DATA_DIR", "a writable folder for the ledger and local repositories (/data on Spaces with storage)", attribute="data_dir"),
    Variable("DEADLINE_SECONDS", "budget from receipt to notification (default 600)", attribute="deadline_seconds"),
    Variable("MAX_REQUEST_BYTES", "largest request body", attribute="max_request_bytes"),
    Variable("MAX_ATTACHMENTS", "most attachments per request", attribute="max_attachments"),
    Variable("MAX_ATTACHMENT_BYTES", "largest total of decoded attachments", attribute="max_attachment_bytes"),
    Variable("SELF_CHECK", "auto, off or required: run the checks in a browser before publishing", attribute="self_check"),
    Variable("SELF_CHECK_REPAIRS", "repair rounds after a failed self-check", attribute="self_check_repairs"),
    Variable("CHROMIUM_PATH", "the Chromium for self-checks, when not on PATH"),
    Variable("MAX_CONCURRENT_BUILDS", "builds at once per process; keep it below WEB_THREADS", attribute="max_concurrent_builds"),
    Variable("BUILD_QUEUE_SECONDS", "how long an extra request waits for a build slot before a 503", attribute="build_queue_seconds"),
    Variable("RESPONSE_MODE", "sync, or early to answer at once and build in the background (Spaces)", attribute="response_mode"),
    Variable("WEB_CONCURRENCY", "gunicorn worker processes", attribute="web_workers"),
    Variable("WEB_THREADS", "threads per worker", attribute="web_threads"),
    Variable("LOG_LEVEL", "INFO, DEBUG, WARNING or ERROR", attribute="log_level"),
    Variable("SECRET_FAILURES_LIMIT", "wrong secrets one client address may send per window before 429 (0: no limit)",
             attribute="secret_failures_limit"),
    Variable("SECRET_FAILURES_WINDOW_SECONDS", "the window of SECRET_FAILURES_LIMIT, in seconds",
             attribute="secret_failures_window_seconds"),
    Variable("TRUSTED_PROXY_HOPS", "proxies in front of the service that append to X-Forwarded-For "
             "(0: the connection's address)", attribute="trusted_proxy_hops"),
    Variable("PROMETHEUS_MULTIPROC_DIR", "set automatically when WEB_CONCURRENCY > 1"),
)


def variable_findings(environ: Mapping[str, str], config: Config) -> list[Finding]:
    """Every documented variable: set or default, malformed values flagged, secrets shown only by length."""
    problems = {name: problem for problem in config.problems for name in [_problem_variable(problem)]}
    findings = []
    for variable in VARIABLES:
        value = (environ.get(variable.name) or "").strip()
        if variable.name == "AIPIPE_TOKEN" and not value:
            value = (environ.get("AIPIPE_AKI_KEY") or "").strip()
        default = str(getattr(config, variable.attribute)) if variable.attribute else ""
        findings.append(_variable_finding(variable, value, problems.get(variable.name), default))
    return findings


def _variable_finding(variable: Variable, value: str, problem: str | None, default: str = "") -> Finding:
    """One variable's line."""
    if problem:
        return Finding(variable.name, WARN, problem, variable.hint)
    if variable.name == "SECRET" and not value:
        return Finding(variable.name, FAIL, "missing", variable.hint)
    if not value:
        return Finding(variable.name, INFO, f"unset (using {default})" if default else "unset", variable.hint)
    shown = f"set ({len(value)} characters)" if variable.secret else _display(value)
    return Finding(variable.name, OK, shown)


def _problem_variable(problem: str) -> str:
    """The variable a config problem names (its first word, up to '=')."""
    return problem.split("=", 1)[0].split(" ", 1)[0]


def _display(value: str) -> str:
    """A non-secret value for the report; URLs lose any user:password and query string."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return value


def local_findings(config: Config, environ: Mapping[str, str]) -> list[Finding]:
    """Checks that need no network: secret length, DATA_DIR, browser, serving settings, platform hints."""
    findings = [_secret_length(config), _data_dir_writable(config), _browser(config), _slots(config)]
    findings += _platform(config, environ)
    if config.publisher_name == "local":
        findings.append(Finding("publisher", INFO, "local: no GITHUB_TOKEN, so apps are served by this service "
                                "under /pages/", "set GITHUB_TOKEN to publish to GitHub Pages"))
    return findings


def _secret_length(config: Config) -> Finding:
    if not config.secret:
        return Finding("secret length", FAIL, "no SECRET", VARIABLES[0].hint)
    if len(config.secret) < MIN_SECRET_LENGTH:
        return Finding("secret length", WARN, f"{len(config.secret)} characters; use at least {MIN_SECRET_LENGTH}",
                       VARIABLES[0].hint)
    return Finding("secret length", OK, f"{len(config.secret)} characters")


def _data_dir_writable(config: Config) -> Finding:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=config.data_dir):
            pass
        return Finding("DATA_DIR writable", OK, f"{config.data_dir} is writable")
    except OSError as exc:
        return Finding("DATA_DIR writable", FAIL, f"{config.data_dir} is not writable ({exc.strerror})",
                       "set DATA_DIR to a folder this user can write (in Docker: a volume owned by uid 1000)")


def _browser(config: Config) -> Finding:
    """Chromium and Playwright for the self-check; failing only when SELF_CHECK=required."""
    from utils.checks.browser import find_chromium

    if config.self_check == "off":
        return Finding("browser", INFO, "SELF_CHECK=off: apps are published without a browser check")
    path = find_chromium(config.chromium_path or None)
    playwright = _importable("playwright")
    if path and playwright:
        return Finding("browser", OK, f"Chromium at {path}, Playwright installed")
    missing = " and ".join(name for name, there in (("Chromium", path), ("Playwright", playwright)) if not there)
    status = FAIL if config.self_check == "required" else WARN
    return Finding("browser", status, f"no {missing}: self-checks are skipped",
                   "install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH; "
                   "Playwright comes with `uv sync`")


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _slots(config: Config) -> Finding:
    detail = (f"{config.max_concurrent_builds} builds at once per worker, {config.web_workers} worker(s) "
              f"x {config.web_threads} threads")
    if config.max_concurrent_builds >= config.web_threads:
        return Finding("build slots", WARN, detail + ": builds can take every thread and /health will wait",
                       "set WEB_THREADS above MAX_CONCURRENT_BUILDS")
    return Finding("build slots", OK, detail)


def _platform(config: Config, environ: Mapping[str, str]) -> list[Finding]:
    """Hints for Hugging Face Spaces and Vercel."""
    findings = []
    if environ.get("SPACE_ID") and config.response_mode == "sync":
        findings.append(Finding("RESPONSE_MODE on Spaces", WARN, "synchronous answers; the Spaces proxy is "
                                "reported to cut requests at about 60 s", "set the Space variable RESPONSE_MODE=early"))
    if environ.get("VERCEL"):
        if config.response_mode == "early":
            findings.append(Finding("RESPONSE_MODE on Vercel", WARN, "early answers: Vercel may freeze the function "
                                    "after the response, stopping the background build", "use RESPONSE_MODE=sync"))
        if config.publisher_name == "local":
            findings.append(Finding("publisher on Vercel", WARN, "local publisher: /tmp is per instance and "
                                    "temporary, so published apps vanish", "set GITHUB_TOKEN"))
    return findings


# --- live checks -------------------------------------------------------------------------------------------------


def github_findings(config: Config, http: requests.Session, timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Verify GITHUB_TOKEN live: login, scopes (classic) or kind (fine-grained), expiry, username."""
    if not config.github_token:
        return []
    url = f"{config.github_api_url}/user"
    headers = {"Authorization": f"Bearer {config.github_token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28", "User-Agent": USER_AGENT}
    started = time.monotonic()
    try:
        response = http.get(url, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return [Finding("GitHub token", FAIL, f"cannot reach {_display(url)}: {type(exc).__name__}",
                        "check GITHUB_API_URL and the network")]
    seconds = round(time.monotonic() - started, 3)
    if response.status_code != 200:
        return [_github_rejected(response, url, seconds)]
    login = str((_json(response) or {}).get("login") or "")
    findings = [Finding("GitHub token", OK, f"authenticated as {login} ({seconds} s)", seconds=seconds),
                _github_scopes(config.github_token, response.headers), _github_expiry(response.headers)]
    if config.github_username and login and config.github_username.lower() != login.lower():
        findings.append(Finding("GitHub username", WARN, f"is {config.github_username} but the token belongs to "
                                f"{login}", "unset GITHUB_USERNAME or use that account's token"))
    return findings


def _github_rejected(response: requests.Response, url: str, seconds: float) -> Finding:
    """The finding for a non-200 answer to GET /user."""
    message = str((_json(response) or {}).get("message") or "")[:200]
    hints = {401: "the token is wrong, revoked or expired: create a new one and set GITHUB_TOKEN",
             403: "the token is blocked (SSO authorization or rate limit): authorize it or wait",
             404: "GITHUB_API_URL does not look like a GitHub API (Enterprise: https://HOST/api/v3)"}
    return Finding("GitHub token", FAIL, f"GET {_display(url)} answered HTTP {response.status_code} {message}".strip(),
                   hints.get(response.status_code, "check GITHUB_TOKEN and GITHUB_API_URL"), seconds)


def _github_scopes(token: str, headers: Mapping[str, str]) -> Finding:
    """Classic tokens list their scopes in X-OAuth-Scopes; fine-grained and app tokens do not."""
    if "X-OAuth-Scopes" not in headers:
        kind = "fine-grained personal access token" if token.startswith("github_pat_") else (
            "GitHub App token" if token.startswith(("ghs_", "ghu_")) else "token without OAuth scopes")
        return Finding("GitHub permissions", INFO, f"{kind}: its permissions cannot be listed",
                       "give it Repository access: All repositories, and Administration, Contents and Pages: "
                       "Read and write")
    scopes = {s.strip() for s in headers["X-OAuth-Scopes"].split(",") if s.strip()}
    shown = ", ".join(sorted(scopes)) or "none"
    if scopes.intersection(GITHUB_SCOPES):
        return Finding("GitHub permissions", OK, f"classic token with scopes: {shown}")
    return Finding("GitHub permissions", FAIL, f"classic token with scopes: {shown}; needs repo (the Pages API requires it)",
                   "edit the token at https://github.com/settings/tokens and tick repo")


def _github_expiry(headers: Mapping[str, str]) -> Finding:
    """Report the token's expiry from the github-authentication-token-expiration header."""
    raw = headers.get("github-authentication-token-expiration", "").strip()
    if not raw:
        return Finding("GitHub token expiry", INFO, "no expiry reported")
    expires = _parse_expiry(raw)
    if expires is None:
        return Finding("GitHub token expiry", INFO, f"expires {raw}")
    days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
    detail = f"expires {expires:%Y-%m-%d %H:%M} UTC (in {days:.0f} days)"
    if days < EXPIRY_WARNING_DAYS:
        return Finding("GitHub token expiry", WARN, detail, "create a new token before it expires")
    return Finding("GitHub token expiry", OK, detail)


def _parse_expiry(raw: str) -> datetime | None:
    """GitHub's expiry header, e.g. '2026-12-01 10:00:00 UTC' or '... +0000'."""
    for pattern, text in (("%Y-%m-%d %H:%M:%S %z", raw), ("%Y-%m-%d %H:%M:%S", raw.removesuffix(" UTC"))):
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def provider_findings(config: Config, http: requests.Session, timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Check every configured provider; failures are warnings while another provider works."""
    if not config.providers:
        return [Finding("LLM providers", FAIL, "none configured", "set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                        "compatible provider), or AIPIPE_TOKEN, GEMINI_API_KEY, OPENROUTER_API_KEY, ANTHROPIC_API_KEY")]
    findings = [check_provider(spec, http, timeout) for spec in config.providers]
    working = [f for f in findings if f.status in (OK, WARN)]
    if working:
        findings = [replace(f, status=WARN) if f.status == FAIL else f for f in findings]
        summary = Finding("LLM providers", OK, f"{len(working)} of {len(findings)} answered")
    else:
        summary = Finding("LLM providers", FAIL, "no provider answered", "fix the keys and base URLs above")
    return [*findings, summary]


def check_provider(spec: ProviderSpec, http: requests.Session, timeout: float = HTTP_TIMEOUT) -> Finding:
    """GET {base_url}/models; if that is not served, a one-token completion. Reports latency."""
    name = f"provider {spec.name}"
    base = spec.base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {spec.api_key}", "User-Agent": USER_AGENT}
    started = time.monotonic()
    try:
        response = http.get(f"{base}/models", headers=headers, timeout=timeout)
        if response.status_code == 200 and isinstance((_json(response) or {}).get("data"), list):
            return _models_finding(name, spec, response, round(time.monotonic() - started, 3))
        started = time.monotonic()
        response = http.post(f"{base}/chat/completions", headers=headers, timeout=timeout, json={
            "model": spec.model, "max_tokens": 1, "messages": [{"role": "user", "content": "Reply with OK."}]})
    except requests.RequestException as exc:
        return Finding(name, FAIL, f"cannot reach {_display(base)}: {type(exc).__name__}",
                       f"check the base URL and the network for {spec.key_variable}")
    return _completion_finding(name, spec, response, round(time.monotonic() - started, 3))


def _models_finding(name: str, spec: ProviderSpec, response: requests.Response, seconds: float) -> Finding:
    """The finding for a models list: is the configured model in it?"""
    ids = [str(m.get("id")) for m in _json(response)["data"] if isinstance(m, dict)]
    if not ids or spec.model in ids or any(i.endswith("/" + spec.model) for i in ids):
        return Finding(name, OK, f"{spec.model} at {_display(spec.base_url)}: models list answered in {seconds} s",
                       seconds=seconds)
    return Finding(name, WARN, f"{spec.model} is not among the {len(ids)} models listed ({seconds} s), "
                   f"e.g. {', '.join(ids[:5])}", f"set the model variable for {spec.name} to a listed model", seconds)


def _completion_finding(name: str, spec: ProviderSpec, response: requests.Response, seconds: float) -> Finding:
    """The finding for a one-token completion."""
    if response.status_code == 200:
        return Finding(name, OK, f"{spec.model} at {_display(spec.base_url)}: one-token completion in {seconds} s",
                       seconds=seconds)
    error = (_json(response) or {}).get("error")
    message = str(error.get("message") if isinstance(error, dict) else error or "")[:200]
    detail = f"{spec.model} at {_display(spec.base_url)}: HTTP {response.status_code} {message}".strip()
    if response.status_code in (401, 403):
        return Finding(name, FAIL, detail, f"the key was rejected: check {spec.key_variable}", seconds)
    if response.status_code == 404:
        return Finding(name, FAIL, detail, "check the base URL (ends in /v1 or its equivalent) and the model name",
                       seconds)
    if response.status_code in (400, 429):
        return Finding(name, WARN, detail + " (the endpoint and key answered)", "", seconds)
    return Finding(name, FAIL, detail, "the provider failed; try again or configure a fallback", seconds)


def _json(response: requests.Response) -> dict | None:
    """The JSON object of a response, or None."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- report ------------------------------------------------------------------------------------------------------


def run_checks(config: Config, environ: Mapping[str, str] | None = None, *, online: bool = True,
               timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Every finding for ``config``: variables, local checks and (``online``) the live ones."""
    environ = os.environ if environ is None else environ
    findings = variable_findings(environ, config) + local_findings(config, environ)
    if not online:
        return findings + [Finding("LLM providers", FAIL if not config.providers else INFO,
                                   "not checked live (--offline)" if config.providers else "none configured")]
    with requests.Session() as http:
        return findings + github_findings(config, http, timeout) + provider_findings(config, http, timeout)


def is_ready(findings: Sequence[Finding]) -> bool:
    """True when nothing failed."""
    return all(f.status != FAIL for f in findings)


def render(findings: Sequence[Finding], as_json: bool) -> str:
    """The report as text lines or as JSON."""
    ready = is_ready(findings)
    if as_json:
        return json.dumps({"ready": ready, "checks": [asdict(f) for f in findings]}, indent=2)
    lines = []
    for f in findings:
        lines.append(f"[{MARKS[f.status]}] {f.name}: {f.detail}")
        if f.hint and f.status in (WARN, FAIL):
            lines.append(f"       fix: {f.hint}")
    lines.append("ready to serve" if ready else "NOT ready: fix the FAIL lines above")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Print the report; exit 0 only when the service can serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--offline", action="store_true", help="skip the live GitHub and provider checks")
    parser.add_argument("--timeout", type=float, default=HTTP_TIMEOUT, help="seconds per live request")
    args = parser.parse_args(argv)
    config = load_config(environ)
    findings = run_checks(config, os.environ if environ is None else environ, online=not args.offline,
                          timeout=args.timeout)
    print(JsonFormatter(config.secret_values()).redact(render(findings, args.json)))
    return 0 if is_ready(findings) else 1


if __name__ == "__main__":
    sys.exit(main())
