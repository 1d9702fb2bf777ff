"""The preflight `check_config.py` against local fakes: a GitHub `GET /user`, the scripted model, and more.

GitHub is the shared fake GitHub (only `GET /user` matters to the preflight),
the model is the scripted OpenAI-compatible server; both are real HTTP servers
on loopback. No check reaches the internet, and no secret may appear in the report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, jsonify, request

import check_config
from tests.conftest import MODEL_KEY, SECRET
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from utils.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
CLASSIC_TOKEN = "ghp_preflightClassicToken0123456789abcd"
FINE_GRAINED_TOKEN = "github_pat_11AAPREFLIGHT_fineGrainedToken0123456789"


class CompletionsOnly(LocalServer):
    """An OpenAI-compatible endpoint without /models: only chat completions, recording their bodies."""

    def __init__(self, key: str):
        self.bodies: list[dict] = []
        app = Flask("completions_only")

        @app.post("/v1/chat/completions")
        def chat():
            if request.headers.get("Authorization") != f"Bearer {key}":
                return jsonify(error={"message": "Incorrect API key provided."}), 401
            self.bodies.append(request.get_json())
            return jsonify(id="x", object="chat.completion", choices=[{"index": 0, "finish_reason": "length",
                           "message": {"role": "assistant", "content": "OK"}}])

        super().__init__(app)


@pytest.fixture
def github_token() -> str:
    """The token the shared fake GitHub accepts here (a test parametrizes it for another kind of token)."""
    return CLASSIC_TOKEN


@pytest.fixture
def github(github: FakeGitHub) -> FakeGitHub:
    """The shared fake GitHub answering GET /user as octo-student, a classic token with the repo scope."""
    github.login, github.oauth_scopes = "octo-student", "repo, workflow"
    return github


@pytest.fixture
def environ(tmp_path: Path, model: ScriptedModel) -> dict[str, str]:
    """A complete, working environment pointing at the fakes (GitHub added per test)."""
    return {"SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model.base_url,
            "LLM_MODEL": "scripted-model", "DATA_DIR": str(tmp_path / "data"), "SELF_CHECK": "off"}


def run(environ: dict[str, str], capsys, *args: str) -> tuple[int, dict]:
    """Run the preflight in-process with --json; return its exit code and report."""
    code = check_config.main(["--json", *args], environ=environ)
    output = capsys.readouterr().out
    return code, json.loads(output)


def finding(report: dict, name: str) -> dict:
    """The report's finding called ``name``."""
    matches = [c for c in report["checks"] if c["name"] == name]
    assert matches, f"no finding {name!r} in {[c['name'] for c in report['checks']]}"
    return matches[0]


def test_a_complete_setup_is_ready_and_prints_no_secret(environ, github, tmp_path):
    environ = {**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, str(ROOT / "check_config.py"), "--json"], cwd=tmp_path, env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] is True
    assert "octo-student" in finding(report, "GitHub token")["detail"]
    assert finding(report, "GitHub permissions") == {**finding(report, "GitHub permissions"), "status": "ok"}
    provider = finding(report, "provider openai")
    assert provider["status"] == "ok" and provider["seconds"] is not None and "scripted-model" in provider["detail"]
    assert finding(report, "SECRET")["detail"] == f"set ({len(SECRET)} characters)"
    for secret in (SECRET, MODEL_KEY, CLASSIC_TOKEN):
        assert secret not in result.stdout and secret not in result.stderr
    assert github.calls and github.calls[0].accept == "application/vnd.github+json"


def test_every_documented_variable_is_reported_with_a_hint(environ, capsys):
    code, report = run(environ, capsys, "--offline")
    names = {c["name"] for c in report["checks"]}
    assert {s.name for s in SETTINGS} <= names
    unset = finding(report, "GITHUB_TOKEN")
    assert unset["status"] == "info" and "classic: repo" in unset["hint"]
    assert code == 0


def test_text_report_has_a_fix_line_for_each_failure(environ, capsys):
    code = check_config.main([], environ={k: v for k, v in environ.items() if k != "SECRET"})
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] SECRET: missing" in out and "fix: set SECRET" in out
    assert out.rstrip().endswith("NOT ready: fix the FAIL lines above")


@pytest.mark.parametrize("github_token", [FINE_GRAINED_TOKEN])
def test_fine_grained_token_is_recognised(environ, github, capsys):
    github.oauth_scopes = None
    code, report = run({**environ, "GITHUB_TOKEN": FINE_GRAINED_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    permissions = finding(report, "GitHub permissions")
    assert code == 0 and permissions["status"] == "info"
    assert "fine-grained" in permissions["detail"] and "Pages" in permissions["hint"]


def test_classic_token_without_repo_scope_fails(environ, github, capsys):
    github.oauth_scopes = "read:user, gist"
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    permissions = finding(report, "GitHub permissions")
    assert code == 1 and permissions["status"] == "fail"
    assert "gist, read:user" in permissions["detail"] and "tick repo" in permissions["hint"]


def test_classic_token_with_only_public_repo_fails_because_pages_needs_repo(environ, github, capsys):
    github.oauth_scopes = "public_repo"
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    permissions = finding(report, "GitHub permissions")
    assert code == 1 and permissions["status"] == "fail"


def test_rejected_token_fails_with_a_hint(environ, github, capsys):
    code, report = run({**environ, "GITHUB_TOKEN": "ghp_wrongtoken", "GITHUB_API_URL": github.api_url}, capsys)
    token = finding(report, "GitHub token")
    assert code == 1 and token["status"] == "fail"
    assert "401" in token["detail"] and "Bad credentials" in token["detail"] and "new one" in token["hint"]


@pytest.mark.parametrize("days, status", [(90, "ok"), (3, "warn")])
def test_token_expiry_is_reported(environ, github, capsys, days, status):
    expires = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S UTC")
    github.token_expiration = expires
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    expiry = finding(report, "GitHub token expiry")
    assert expiry["status"] == status and expires[:10] in expiry["detail"]
    assert code == 0


def test_unreachable_github_fails(environ, capsys):
    with FakeGitHub(token=CLASSIC_TOKEN) as fake:
        url = fake.api_url
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": url}, capsys, "--timeout", "3")
    assert code == 1 and "cannot reach" in finding(report, "GitHub token")["detail"]


def test_username_that_is_not_the_tokens_owner_warns(environ, github, capsys):
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url,
                        "GITHUB_USERNAME": "someone-else"}, capsys)
    assert finding(report, "GitHub username")["status"] == "warn" and code == 0


def test_wrong_model_key_fails(environ, capsys):
    code, report = run({**environ, "OPENAI_API_KEY": "sk-wrong"}, capsys)
    provider = finding(report, "provider openai")
    assert code == 1 and provider["status"] == "fail" and "OPENAI_API_KEY" in provider["hint"]
    assert finding(report, "LLM providers")["status"] == "fail"


def test_a_broken_provider_only_warns_when_another_works(environ, model, capsys):
    code, report = run({**environ, "AIPIPE_TOKEN": "aipipe-wrong", "AIPIPE_BASE_URL": model.base_url,
                        "AIPIPE_MODEL": "scripted-model"}, capsys)
    assert code == 0
    assert finding(report, "provider aipipe")["status"] == "warn"
    assert finding(report, "LLM providers")["detail"] == "1 of 2 answered"


def test_model_missing_from_the_list_warns(environ, capsys):
    code, report = run({**environ, "LLM_MODEL": "gpt-nonexistent"}, capsys)
    provider = finding(report, "provider openai")
    assert provider["status"] == "warn" and "scripted-model" in provider["detail"] and code == 0


def test_provider_without_models_list_gets_a_one_token_completion(environ, capsys):
    with CompletionsOnly("sk-completions-only") as server:
        code, report = run({**environ, "OPENAI_API_KEY": "sk-completions-only",
                            "OPENAI_BASE_URL": f"{server.url}/v1"}, capsys)
    provider = finding(report, "provider openai")
    assert code == 0 and provider["status"] == "ok" and "one-token completion" in provider["detail"]
    assert server.bodies[0]["max_tokens"] == 1


def test_no_provider_fails(environ, capsys):
    code, report = run({k: v for k, v in environ.items() if k != "OPENAI_API_KEY"}, capsys)
    assert code == 1 and "OPENAI_API_KEY" in finding(report, "LLM providers")["hint"]


def test_short_secret_and_malformed_values_warn(environ, capsys):
    code, report = run({**environ, "SECRET": "short-secret-1", "PORT": "http"}, capsys, "--offline")
    assert finding(report, "secret length")["status"] == "warn"
    port = finding(report, "PORT")
    assert port["status"] == "warn" and "not a number" in port["detail"]
    assert code == 0


def test_unwritable_data_dir_fails(environ, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, report = run({**environ, "DATA_DIR": str(blocker / "data")}, capsys, "--offline")
    assert code == 1 and finding(report, "DATA_DIR writable")["status"] == "fail"


def test_required_self_check_without_a_browser_fails(environ, capsys):
    code, report = run({**environ, "SELF_CHECK": "required", "CHROMIUM_PATH": "/nonexistent/chromium"},
                       capsys, "--offline")
    assert code == 1 and finding(report, "browser")["status"] == "fail"
    assert "computed derive blocks (`js:`) are unavailable" in finding(report, "browser")["detail"]


def test_with_the_self_check_off_the_report_says_what_becomes_of_computed_derives(environ, capsys):
    _, report = run({**environ, "SELF_CHECK": "off", "CHROMIUM_PATH": "/nonexistent/chromium"}, capsys, "--offline")
    assert finding(report, "browser")["detail"] == ("SELF_CHECK=off: apps are published without a browser check; "
                                                    "computed derive blocks (`js:`) are unavailable without Chromium "
                                                    "and Playwright")


def test_platform_hints_for_spaces_and_vercel(environ, capsys):
    _, spaces = run({**environ, "SPACE_ID": "someone/llm-deploy"}, capsys, "--offline")
    assert "RESPONSE_MODE=early" in finding(spaces, "RESPONSE_MODE on Spaces")["hint"]
    _, vercel = run({**environ, "VERCEL": "1", "RESPONSE_MODE": "early"}, capsys, "--offline")
    assert finding(vercel, "RESPONSE_MODE on Vercel")["status"] == "warn"
    assert finding(vercel, "publisher on Vercel")["status"] == "warn"


def test_urls_are_shown_without_credentials(environ, capsys):
    _, report = run({**environ, "PUBLIC_URL": "https://user:hunter2@deploy.example.com/base?token=abc"},
                    capsys, "--offline")
    assert finding(report, "PUBLIC_URL")["detail"] == "https://deploy.example.com/base"


def test_without_configuration_the_report_leads_with_what_fails_and_how_to_fix_it(tmp_path, capsys):
    code = check_config.main(["--offline"], environ={"DATA_DIR": str(tmp_path / "data"), "SELF_CHECK": "off"})
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert code == 1 and lines[0] == "NOT ready: 2 problem(s) to fix"
    assert lines[1] == "[FAIL] SECRET: missing" and "python3 -c" in lines[2] and "python -c" not in out
    assert lines[3] == "[FAIL] LLM providers: none configured" and "OPENAI_API_KEY" in lines[4]
    assert lines[5:7] == ["", "Details:"]
    assert sum("SECRET" in line and "[FAIL]" in line for line in lines) == 1, "a missing SECRET is reported once"
    assert len(lines) < 20, "unset variables with defaults take one line, not one each"
    unset = next(line for line in lines if "unset, so their defaults apply" in line)
    assert re.match(r"\[info\] \d+ variables unset", unset) and "--verbose" in unset, unset
    assert "DEADLINE_SECONDS" not in out, "the names come with --verbose only"
    check_config.main(["--offline", "--verbose"], environ={"DATA_DIR": str(tmp_path / "data"), "SELF_CHECK": "off"})
    named = next(line for line in capsys.readouterr().out.splitlines() if "unset, so their defaults apply" in line)
    assert "OPENAI_BASE_URL" in named and "DEADLINE_SECONDS" in named
    assert int(unset.split()[1]) == len(named.split(": ", 1)[1].split(", "))


def test_a_ready_report_says_so_first(environ, capsys):
    code = check_config.main(["--offline"], environ=environ)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0] == "Ready to serve" and lines[-1] == "ready to serve"


def test_classic_token_without_workflow_scope_warns(environ, github, capsys):
    github.oauth_scopes = "repo"
    code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    workflow = finding(report, "GitHub workflow permission")
    assert code == 0 and workflow["status"] == "warn"
    assert "502" in workflow["detail"] and "tick workflow" in workflow["hint"]


def test_classic_token_with_workflow_scope_is_ok(environ, github, capsys):
    github.oauth_scopes = "repo, workflow"
    _, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    assert finding(report, "GitHub workflow permission")["status"] == "ok"


@pytest.mark.parametrize("github_token", [FINE_GRAINED_TOKEN])
def test_fine_grained_token_is_told_about_workflows(environ, github, capsys):
    github.oauth_scopes = None
    _, report = run({**environ, "GITHUB_TOKEN": FINE_GRAINED_TOKEN, "GITHUB_API_URL": github.api_url}, capsys)
    workflow = finding(report, "GitHub workflow permission")
    assert workflow["status"] == "info" and "Workflows: Read and write" in workflow["hint"]


def test_github_api_url_that_redirects_elsewhere_fails_with_a_finding(environ, capsys):
    """An API URL answering 301 to another host or protocol (http:// for an https API) is a finding, not a crash."""
    app = Flask("redirecting_api")

    @app.get("/<path:anything>")
    def moved(anything: str):
        return "", 301, {"Location": f"https://localhost/{anything}"}

    with LocalServer(app) as api:
        code, report = run({**environ, "GITHUB_TOKEN": CLASSIC_TOKEN, "GITHUB_API_URL": api.url + "/api/v3"},
                           capsys, "--timeout", "3")
    github = finding(report, "GitHub token")
    assert code == 1 and github["status"] == "fail" and "301" in github["detail"], github
    assert CLASSIC_TOKEN not in json.dumps(report)


def test_urls_with_a_malformed_port_are_reported_without_credentials(environ, capsys):
    """A URL whose port is not a number is shown (without user:password), not a crash of the preflight."""
    code, report = run({**environ, "PUBLIC_URL": "https://user:hunter2@deploy.example.com:abc/base?token=abc",
                        "OPENAI_BASE_URL": "http://key:hunter3@127.0.0.1:99999999/v1"}, capsys, "--offline")
    assert finding(report, "PUBLIC_URL")["detail"] == "https://deploy.example.com:abc/base"
    assert "hunter2" not in json.dumps(report) and "hunter3" not in json.dumps(report)
    assert code in (0, 1)
