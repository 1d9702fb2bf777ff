"""README and docs/ say what the code does: every setting documented, commands that run as printed, links that
resolve, one table of platform defaults that matches the loader, and a .env that both entry points read.

The docs are read as text; the commands they print are checked against the
real parsers and files; `.env` is tried by running the preflight and importing
the service from a copy of the code next to one, never by writing into the
repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_process import ROOT
from utils.config import SETTINGS, SETTINGS_BY_NAME, load_config

README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}
PLATFORMS = {"Docker on a VPS": {}, "Hugging Face Spaces": {"SYSTEM": "spaces", "SPACE_ID": "u/s",
                                                             "SPACE_HOST": "u-s.hf.space"},
             "Vercel": {"VERCEL": "1"}}


def bash_lines(text: str) -> list[str]:
    """The commands of a Markdown text's bash blocks, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_every_setting_is_documented_in_the_configuration_reference():
    table = DOCS["configuration.md"]
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in table]
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_the_readme_is_short_and_the_reference_lives_in_docs():
    assert len(README.splitlines()) < 250, "the reference belongs in docs/"
    for page in ("configuration.md", "security.md", "operations.md", "how-it-works.md"):
        assert f"(docs/{page})" in README
    assert "(bench/README.md)" in README


def test_readme_commands_run_as_printed():
    commands = bash_lines(README)
    assert "uv run main.py" in commands and "uv run --dev pytest" in commands, "the Quick start's two commands"
    assert not any("~/.uv/bin/uv" in c or c.startswith("~/") for c in commands), "uv is on PATH after the install"
    assert any(c.startswith("curl -LsSf https://astral.sh/uv/install.sh") for c in commands)
    help_text = subprocess.run([sys.executable, str(ROOT / "check_config.py"), "--help"], capture_output=True,
                               text=True, timeout=60, cwd=ROOT).stdout
    every_text = README + "".join(DOCS.values())
    for command in re.findall(r"uv run [^`\n]*", every_text):
        words = command.split()
        script = next((w for w in words[2:] if w.endswith(".py")), None)
        if script:
            assert (ROOT / script).is_file(), command
        if script == "check_config.py":
            for flag in (w for w in words if w.startswith("--") and w not in ("--dev", "--extra")):
                assert flag in help_text, f"{command}: check_config.py has no {flag}"


def test_the_spaces_steps_name_every_setting_a_grader_facing_deployment_needs():
    steps = README.split("### Hugging Face Spaces", 1)[1].split("### Vercel", 1)[0]
    for needed in ("`repo`", "`workflow`", "Public", "write access", "`SECRET`", "`OPENAI_API_KEY`",
                   "`GITHUB_TOKEN`", "`DATABASE_URL`", "`DATA_DIR=/data`", "`ROUND_REPO=same`", "Logs",
                   "`RESPONSE_MODE` is `early`", "--round-trip https://USER-SPACE.hf.space", "/api-endpoint"):
        assert needed in steps, needed
    assert "WITH_BROWSER" not in steps, "the default image has the browser: nothing to set"


def test_the_platform_table_matches_the_loaders_defaults():
    table = DOCS["configuration.md"].split("## Recommended settings per platform", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    header = next(line for line in table.splitlines() if line.startswith("| setting"))
    columns = [c.strip(" |") for c in header.split(" | ")]
    checked = 0
    for row in rows:
        name = row[0].strip("| `")
        if name not in SETTINGS_BY_NAME or not SETTINGS_BY_NAME[name].attribute:
            continue
        for column, cell in zip(columns[1:], row[1:], strict=True):
            default = re.search(r"default \(`([^`]+)`", cell)
            if default and column in PLATFORMS:
                value = getattr(load_config(PLATFORMS[column], dotenv=False), SETTINGS_BY_NAME[name].attribute)
                shown = default.group(1).replace("$SPACE_HOST", PLATFORMS[column].get("SPACE_HOST", ""))
                assert str(value).removesuffix(".0") in (shown, shown.rstrip("/")) or (
                    name == "DATA_DIR" and column == "Docker on a VPS"), f"{name} on {column}: {value} vs {shown}"
                checked += 1
    assert checked >= 6, "the table names the platform defaults"


def test_links_in_the_readme_and_docs_resolve():
    pages = {ROOT / "README.md": README, **{ROOT / "docs" / name: text for name, text in DOCS.items()}}
    for page, text in pages.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text()), f"{page.name}: {target} has no such heading"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown text's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_readme_front_matter_matches_the_image():
    assert README.startswith("---\n")
    fields = dict(line.split(":", 1) for line in README.split("---\n", 2)[1].strip().splitlines())
    assert fields["sdk"].strip() == "docker" and fields["app_port"].strip() == "5000"
    operations = DOCS["operations.md"]
    for heading in ("### Local", "### Docker", "## Troubleshooting"):
        assert heading in operations
    assert "docker run -p 5000:5000" in README and "docker run -p 5000:5000" in operations


def test_env_example_names_only_settings_and_holds_no_secret():
    text = (ROOT / ".env.example").read_text()
    assigned = re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=(.*)$", text, re.M)
    assert {"SECRET", "OPENAI_API_KEY", "GITHUB_TOKEN", "ROUND_REPO", "RESPONSE_MODE"} <= {n for n, _ in assigned}
    for name, value in assigned:
        assert name in SETTINGS_BY_NAME, f".env.example sets {name}, which the service does not read"
        if SETTINGS_BY_NAME[name].secret:
            assert value == "" or "USER:PASSWORD" in value, f"{name} has a value in .env.example"


@pytest.fixture
def project_with_env(tmp_path: Path) -> Path:
    """A copy of the code (python-dotenv looks for .env from the code's folder up), holding a .env made from
    .env.example with the two values filled in."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("main.py", "check_config.py"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "utils", folder / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    env = (ROOT / ".env.example").read_text()
    env = env.replace("\nSECRET=\n", "\nSECRET=from-dotenv-0123456789abcdef\n")
    env = env.replace("\nOPENAI_API_KEY=\n", "\nOPENAI_API_KEY=sk-from-dotenv\n")
    env += f"DATA_DIR={tmp_path / 'data'}\nSELF_CHECK=off\n"
    (folder / ".env").write_text(env)
    return folder


def test_the_service_and_the_preflight_both_read_dotenv(project_with_env):
    environ = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    report = subprocess.run([sys.executable, "check_config.py", "--offline", "--json"], cwd=project_with_env,
                            env=environ, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stdout + report.stderr
    checks = {c["name"]: c for c in json.loads(report.stdout)["checks"]}
    assert checks["SECRET"]["detail"] == "set (28 characters)" and checks["OPENAI_API_KEY"]["status"] == "ok"
    served = subprocess.run([sys.executable, "-c", "import main; c = main.app.extensions['deploy'].config; "
                             "print(len(c.secret), [p.name for p in c.providers])"], cwd=project_with_env,
                            env=environ, capture_output=True, text=True, timeout=60)
    assert served.stdout.strip() == "28 ['openai']", served.stdout + served.stderr


def test_every_module_is_in_the_module_table():
    table = DOCS["how-it-works.md"]
    modules = [path for path in (ROOT / "utils").rglob("*.py") if path.name != "__init__.py"]
    missing = [str(path.relative_to(ROOT)) for path in modules
               if f"`{path.relative_to(ROOT).as_posix()}`" not in table and f"`{path.name}`" not in table]
    assert not missing, f"docs/how-it-works.md's module table lacks {missing}"
