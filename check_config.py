"""Preflight: check the service's configuration before the first graded request.

Uses the service's own loader (``utils.config.load_config``, platform defaults
included) and reports every variable of its ``SETTINGS`` table with its status
and a fix hint, then checks live what a variable alone cannot show: the GitHub
token (``GET {GITHUB_API_URL}/user``: its login, classic scopes, fine-grained
tokens, expiry), every model provider through the service's own ``ModelClient``
(a models list, or a one-token completion, with latency), that ``DATA_DIR`` is
writable, that the secret is long enough, whether a browser is there for
self-checks, and the build store (``DATABASE_URL``: it connects, reports the
server and schema version, and whether its user can apply the migrations).

Exit code 0 only when the service can serve (no ``fail``); ``--json`` for machines.

``--round-trip URL [--task FILE]`` instead sends a task to a running
deployment and grades what it published as graders do (``utils.grading``):
exit 0 only when every check holds.
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
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from utils.checks.availability import playwright_installed
from utils.checks.browser import find_chromium
from utils.config import (
    PROVIDER_KEYS_HINT,
    SETTINGS,
    SETTINGS_BY_NAME,
    Config,
    ProviderSpec,
    Setting,
    load_config,
    variable_value,
)
from utils.errors import GitHubCallFailed
from utils.logs import JsonFormatter
from utils.model.llm import ModelClient, Probe
from utils.publishers.github_api import GitHubTransport
from utils.store.backends import POSTGRES_SCHEMES, describe_store
from utils.store.postgres import SCHEMA_VERSION

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


def variable_findings(environ: Mapping[str, str], config: Config) -> list[Finding]:
    """Every setting: set or default, malformed values flagged, secrets shown only by length."""
    problems = {name: problem for problem in config.problems for name in [_problem_variable(problem)]}
    findings = []
    for setting in SETTINGS:
        value = variable_value(environ, setting)[1]
        default = str(getattr(config, setting.attribute) if setting.attribute else setting.default)
        findings.append(_variable_finding(setting, value, problems.get(setting.name), default))
    return findings


def _variable_finding(setting: Setting, value: str, problem: str | None, default: str = "") -> Finding:
    """One variable's line."""
    if problem:
        return Finding(setting.name, WARN, problem, setting.hint)
    if setting.name == "SECRET" and not value:
        return Finding(setting.name, FAIL, "missing", setting.hint)
    if not value:
        return Finding(setting.name, INFO, f"unset (using {default})" if default else "unset", setting.hint)
    shown = f"set ({len(value)} characters)" if setting.secret else _display(value)
    return Finding(setting.name, OK, shown)


def _problem_variable(problem: str) -> str:
    """The variable a config problem names (its first word, up to '=')."""
    return problem.split("=", 1)[0].split(" ", 1)[0]


def _display(value: str) -> str:
    """A non-secret value for the report; URLs lose any user:password and query string (a malformed port too
    is shown as written, never read: reading it would raise)."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket; it may hold credentials, so it is not shown
        return "a malformed URL"
    if parts.scheme in ("http", "https") and parts.netloc:
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    return value


def local_findings(config: Config, environ: Mapping[str, str]) -> list[Finding]:
    """Checks that need no network: secret length, DATA_DIR, browser, serving settings, platform hints."""
    # a missing SECRET is reported once, by its variable's line; its length is checked only when it is set
    findings = [_secret_length(config)] if config.secret else []
    findings += [_data_dir_writable(config), _browser(config), _slots(config), _store_location(config, environ)]
    findings += _platform(config, environ)
    if not config.github_token:
        findings.append(Finding("publisher", INFO, "local: no GITHUB_TOKEN, so apps are served by this service "
                                "under /pages/", "set GITHUB_TOKEN to publish to GitHub Pages"))
    return findings


def _secret_length(config: Config) -> Finding:
    hint = SETTINGS_BY_NAME["SECRET"].hint
    if not config.secret:
        return Finding("secret length", FAIL, "no SECRET", hint)
    if len(config.secret) < MIN_SECRET_LENGTH:
        return Finding("secret length", WARN, f"{len(config.secret)} characters; use at least {MIN_SECRET_LENGTH}",
                       hint)
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
    """Chromium and Playwright for the self-check and computed derive blocks; failing only when
    SELF_CHECK=required."""
    path = find_chromium(config.chromium_path or None)
    playwright = playwright_installed()
    if config.self_check == "off":
        computes = "computed derive blocks still run in it" if path and playwright else (
            "computed derive blocks (`js:`) are unavailable without Chromium and Playwright")
        return Finding("browser", INFO, f"SELF_CHECK=off: apps are published without a browser check; {computes}")
    if path and playwright:
        return Finding("browser", OK, f"Chromium at {path}, Playwright installed")
    missing = " and ".join(name for name, there in (("Chromium", path), ("Playwright", playwright)) if not there)
    status = FAIL if config.self_check == "required" else WARN
    return Finding("browser", status, f"no {missing}: self-checks are skipped and computed derive blocks (`js:`) "
                   "are unavailable",
                   "install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH; "
                   "Playwright is the `browser` extra: `uv run --extra browser main.py`")


def _slots(config: Config) -> Finding:
    detail = (f"{config.max_concurrent_builds} builds at once per worker, {config.web_workers} worker(s) "
              f"x {config.web_threads} threads")
    if slots_warning := config.slots_warning():
        return Finding("build slots", WARN, f"{detail}; {slots_warning}", "set WEB_THREADS above MAX_CONCURRENT_BUILDS")
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
        if not config.github_token:
            findings.append(Finding("publisher on Vercel", WARN, "local publisher: /tmp is per instance and "
                                    "temporary, so published apps vanish", "set GITHUB_TOKEN"))
    return findings


# --- live checks -------------------------------------------------------------------------------------------------


def github_findings(config: Config, timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Check GITHUB_TOKEN with one GET /user through the service's transport: login, scopes, expiry, username."""
    if not config.github_token:
        return []
    github = GitHubTransport(config.github_token, config.github_api_url, timeout=timeout, attempts=1,
                             user_agent=USER_AGENT)
    url = f"{github.api_url}/user"
    started = time.monotonic()
    try:
        answer = github.request("GET", "/user", what="read the token's user", expect=("login",))
    except GitHubCallFailed as failure:
        return [_github_failed(failure, url, round(time.monotonic() - started, 3))]
    seconds = round(time.monotonic() - started, 3)
    login = str(answer.data["login"])
    findings = [Finding("GitHub token", OK, f"authenticated as {login} ({seconds} s)", seconds=seconds),
                _github_scopes(config.github_token, answer.headers), _workflow_permission(answer.headers),
                _github_expiry(answer.headers)]
    if config.github_username and config.github_username.lower() != login.lower():
        findings.append(Finding("GitHub username", WARN, f"is {config.github_username} but the token belongs to "
                                f"{login}", "unset GITHUB_USERNAME or use that account's token"))
    return findings


def _github_failed(failure: GitHubCallFailed, url: str, seconds: float) -> Finding:
    """The finding for a GET /user that got no usable answer."""
    status = failure.github_status
    if status is None:
        return Finding("GitHub token", FAIL, f"cannot reach {_display(url)}: {failure.github_message}",
                       "check GITHUB_API_URL and the network")
    hints = {401: "the token is wrong, revoked or expired: create a new one and set GITHUB_TOKEN",
             403: "the token is blocked (SSO authorization or rate limit): authorize it or wait",
             404: "GITHUB_API_URL does not look like a GitHub API (Enterprise: https://HOST/api/v3)"}
    detail = f"GET {_display(url)} answered HTTP {status} {failure.github_message[:200]}".strip()
    return Finding("GitHub token", FAIL, detail, hints.get(status, "check GITHUB_TOKEN and GITHUB_API_URL"), seconds)


def _github_scopes(token: str, headers: Mapping[str, str]) -> Finding:
    """Classic tokens list their scopes in X-OAuth-Scopes; fine-grained and app tokens do not."""
    if "X-OAuth-Scopes" not in headers:
        kind = "fine-grained personal access token" if token.startswith("github_pat_") else (
            "GitHub App token" if token.startswith(("ghs_", "ghu_")) else "token without OAuth scopes")
        return Finding("GitHub permissions", INFO, f"{kind}: its permissions cannot be listed",
                       "give it Repository access: All repositories, and Administration, Contents, Pages and "
                       "Workflows: Read and write")
    scopes = {s.strip() for s in headers["X-OAuth-Scopes"].split(",") if s.strip()}
    shown = ", ".join(sorted(scopes)) or "none"
    if scopes.intersection(GITHUB_SCOPES):
        return Finding("GitHub permissions", OK, f"classic token with scopes: {shown}")
    return Finding("GitHub permissions", FAIL,
                   f"classic token with scopes: {shown}; needs repo (the Pages API requires it)",
                   "edit the token at https://github.com/settings/tokens and tick repo")


def _workflow_permission(headers: Mapping[str, str]) -> Finding:
    """Whether the token may push workflow files (briefs asking for a GitHub Actions workflow need it)."""
    name = "GitHub workflow permission"
    if "X-OAuth-Scopes" not in headers:
        return Finding(name, INFO, "cannot be listed for this token; briefs asking for a workflow need "
                       "Workflows: Read and write", "grant the fine-grained permission Workflows: Read and write")
    scopes = {s.strip() for s in headers["X-OAuth-Scopes"].split(",") if s.strip()}
    if "workflow" in scopes:
        return Finding(name, OK, "classic token with the workflow scope: workflow files can be published")
    return Finding(name, WARN, "classic token without the workflow scope: a brief asking for a GitHub Actions "
                   "workflow fails with 502 before anything is created",
                   "edit the token at https://github.com/settings/tokens and tick workflow")


def _github_expiry(headers: Mapping[str, str]) -> Finding:
    """Report the token's expiry from the github-authentication-token-expiration header."""
    raw = headers.get("github-authentication-token-expiration", "").strip()
    if not raw:
        return Finding("GitHub token expiry", INFO, "no expiry reported")
    expires = _parse_expiry(raw)
    if expires is None:
        return Finding("GitHub token expiry", INFO, f"expires {raw}")
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
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
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def provider_findings(config: Config, timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Probe every configured provider through the service's model client; failures warn while another works."""
    if not config.providers:
        return [Finding("LLM providers", FAIL, "none configured", f"set {PROVIDER_KEYS_HINT}")]
    client = ModelClient(config.providers, timeout=timeout, max_tokens=1)
    findings = [provider_finding(spec, client.probe(spec)) for spec in config.providers]
    working = [f for f in findings if f.status in (OK, WARN)]
    if working:
        findings = [replace(f, status=WARN) if f.status == FAIL else f for f in findings]
        summary = Finding("LLM providers", OK, f"{len(working)} of {len(findings)} answered")
    else:
        summary = Finding("LLM providers", FAIL, "no provider answered", "fix the keys and base URLs above")
    return [*findings, summary]


def provider_finding(spec: ProviderSpec, probe: Probe) -> Finding:
    """The finding for one provider's probe: a models list, or a one-token completion, with latency."""
    name, at, seconds = f"provider {spec.name}", f"{spec.model} at {_display(spec.base_url)}", probe.seconds
    if probe.status == OK and probe.listed is not None:
        return _models_finding(name, spec, probe.listed, seconds)
    if probe.status in (OK, "empty reply"):  # the endpoint, key and model answered 200
        return Finding(name, OK, f"{at}: one-token completion in {seconds} s", seconds=seconds)
    if probe.status in ("timeout", "connection error"):
        return Finding(name, FAIL, f"cannot reach {_display(spec.base_url)}: {probe.status}",
                       f"check the base URL and the network for {spec.key_variable}", seconds)
    detail = f"{at}: {probe.status}"
    if probe.status.startswith(("401", "403")):
        return Finding(name, FAIL, detail, f"the key was rejected: check {spec.key_variable}", seconds)
    if probe.status.startswith("404"):
        return Finding(name, FAIL, detail, "check the base URL (ends in /v1 or its equivalent) and the model name",
                       seconds)
    if probe.status.startswith(("400", "429")):
        return Finding(name, WARN, detail + " (the endpoint and key answered)", "", seconds)
    return Finding(name, FAIL, detail, "the provider failed; try again or configure a fallback", seconds)


def _models_finding(name: str, spec: ProviderSpec, listed: tuple[str, ...], seconds: float) -> Finding:
    """The finding for a models list: is the configured model in it?"""
    if not listed or spec.model in listed or any(i.endswith("/" + spec.model) for i in listed):
        return Finding(name, OK, f"{spec.model} at {_display(spec.base_url)}: models list answered in {seconds} s",
                       seconds=seconds)
    return Finding(name, WARN, f"{spec.model} is not among the {len(listed)} models listed ({seconds} s), "
                   f"e.g. {', '.join(listed[:5])}", f"set the model variable for {spec.name} to a listed model",
                   seconds)


# --- the build store (issue 15) ----------------------------------------------------------------------------------


def _store_location(config: Config, environ: Mapping[str, str]) -> Finding:
    """Where builds are stored, and whether this deployment needs DATABASE_URL (several instances)."""
    hint = SETTINGS_BY_NAME["DATABASE_URL"].hint
    if config.database_url and not config.database_url.startswith(POSTGRES_SCHEMES):
        return Finding("build store", FAIL, "DATABASE_URL is not a postgresql:// URL", hint)
    if config.database_url:
        return Finding("build store", OK, f"PostgreSQL at {describe_store(config)}")
    if environ.get("VERCEL"):
        return Finding("build store", WARN, "SQLite under /tmp: each Vercel instance has its own, so a request "
                       "retried on another instance builds again and a crashed build is never resumed", hint)
    return Finding("build store", INFO, f"SQLite at {describe_store(config)} (one machine; set DATABASE_URL for "
                   "several containers or instances)")


def store_findings(config: Config, timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Connect to DATABASE_URL: server version, latency, schema version, and whether migrations can be applied."""
    if not config.database_url:
        return []
    import psycopg  # why: psycopg is loaded only when DATABASE_URL is set

    started = time.monotonic()
    try:
        with psycopg.connect(config.database_url, connect_timeout=max(1, int(timeout))) as db:
            def first(sql: str) -> Any:
                row = db.execute(sql).fetchone()
                return row[0] if row else None

            server = first("SHOW server_version")
            found = first("SELECT to_regclass('schema_migrations') IS NOT NULL")
            version = first("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") if found else 0
            can_create = first("SELECT has_schema_privilege(current_user, current_schema(), 'CREATE')")
    except psycopg.Error as exc:
        seconds = round(time.monotonic() - started, 3)
        return [Finding("database", FAIL, f"cannot use DATABASE_URL: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}",
                        "check the host, port, database, user and password in DATABASE_URL, and that the server "
                        "accepts this client", seconds)]
    seconds = round(time.monotonic() - started, 3)
    detail = f"PostgreSQL {server}, schema version {version} of {SCHEMA_VERSION} ({seconds} s)"
    if version >= SCHEMA_VERSION:
        return [Finding("database", OK, detail, seconds=seconds)]
    if can_create:
        return [Finding("database", OK, f"{detail}; the rest is applied on start", seconds=seconds)]
    return [Finding("database", FAIL, f"{detail}; this user cannot create tables to apply the rest",
                    "GRANT CREATE ON SCHEMA public TO the service's user, or migrate once as the owner", seconds)]


# --- report ------------------------------------------------------------------------------------------------------


def run_checks(config: Config, environ: Mapping[str, str] | None = None, *, online: bool = True,
               timeout: float = HTTP_TIMEOUT) -> list[Finding]:
    """Every finding for ``config``: variables, local checks and (``online``) the live ones."""
    environ = os.environ if environ is None else environ
    findings = variable_findings(environ, config) + local_findings(config, environ)
    if not online:
        if not config.providers:
            return findings + [Finding("LLM providers", FAIL, "none configured", f"set {PROVIDER_KEYS_HINT}")]
        return findings + [Finding("LLM providers", INFO, "not checked live (--offline)")]
    return findings + store_findings(config, timeout) + github_findings(config, timeout) + \
        provider_findings(config, timeout)


def is_ready(findings: Sequence[Finding]) -> bool:
    """True when nothing failed."""
    return all(f.status != FAIL for f in findings)


def render(findings: Sequence[Finding], as_json: bool, verbose: bool = False) -> str:
    """The report as text lines or as JSON (``verbose``: the unset variables by name, not only their count)."""
    ready = is_ready(findings)
    if as_json:
        return json.dumps({"ready": ready, "checks": [asdict(f) for f in findings]}, indent=2)
    failing = [f for f in findings if f.status == FAIL]
    warnings = [f for f in findings if f.status == WARN]
    unset = [f.name for f in findings
             if f.status == INFO and f.detail.startswith("unset") and f.name in SETTINGS_BY_NAME]
    rest = [f for f in findings if f.status in (OK, INFO) and f.name not in unset]
    lines = [f"NOT ready: {len(failing)} problem(s) to fix" if failing else "Ready to serve"
             + (f", with {len(warnings)} warning(s)" if warnings else "")]
    for f in failing + warnings:  # what fails and how to fix it comes first
        lines.append(f"[{MARKS[f.status]}] {f.name}: {f.detail}")
        if f.hint:
            lines.append(f"       fix: {f.hint}")
    lines += ["", "Details:"] + [f"[{MARKS[f.status]}] {f.name}: {f.detail}" for f in rest]
    if unset and verbose:
        lines.append(f"[info] unset, so their defaults apply (docs/configuration.md): {', '.join(unset)}")
    elif unset:
        lines.append(f"[info] {len(unset)} variables unset, so their defaults apply (--verbose names them; "
                     "docs/configuration.md)")
    lines.append("ready to serve" if ready else "NOT ready: fix the FAIL lines above")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Print the report; exit 0 only when the service can serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--offline", action="store_true", help="skip the live GitHub and provider checks")
    parser.add_argument("--timeout", type=float, default=HTTP_TIMEOUT, help="seconds per live request")
    parser.add_argument("--verbose", action="store_true", help="name the unset variables whose defaults apply")
    parser.add_argument("--round-trip", metavar="URL", help="send a task to the deployment at URL and grade what "
                        "it published (exit 0 only when every check holds)")
    parser.add_argument("--task", metavar="FILE", help="with --round-trip: a request body as graders send it "
                        "(default: the built-in sample)")
    args = parser.parse_args(argv)
    if args.task and not args.round_trip:
        parser.error("--task goes with --round-trip URL")
    if args.round_trip and (args.json or args.offline or args.verbose):
        parser.error("--json, --offline and --verbose are for the preflight report, not --round-trip")
    if args.round_trip and not args.round_trip.startswith(("http://", "https://")):
        parser.error("--round-trip takes the deployment's base URL, e.g. https://USER-SPACE.hf.space")
    config = load_config(environ)
    if args.round_trip:
        from utils.grading.round_trip import run_round_trip  # why: only --round-trip loads the grader (dulwich)

        trip = run_round_trip(args.round_trip, args.task, config)
        print(JsonFormatter(config.secret_values()).redact(trip.text))
        return trip.code
    findings = run_checks(config, os.environ if environ is None else environ, online=not args.offline,
                          timeout=args.timeout)
    print(JsonFormatter(config.secret_values()).redact(render(findings, args.json, args.verbose)))
    return 0 if is_ready(findings) else 1


if __name__ == "__main__":
    sys.exit(main())
