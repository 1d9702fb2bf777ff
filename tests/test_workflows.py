"""Workflow files, .nojekyll, the round cache and the notification reserve (issue 14), without a server."""

from __future__ import annotations

import pytest

from utils.deadline import Deadline, notify_reserve
from utils.intake.brief import read_brief
from utils.paths import UnsafePath, is_workflow_path, safe_relative_path
from utils.publishers.round_cache import RoundCache
from utils.publishers.workflow_lint import workflow_problems
from utils.publishers.workflows import (
    deploys_pages,
    site_files,
    wants_workflows,
    without_unasked_workflows,
)

SHA = "a" * 40
PAGES_WORKFLOW = b"jobs:\n  deploy:\n    steps:\n      - uses: actions/deploy-pages@v4\n"


@pytest.mark.parametrize("brief", [
    "Add .github/workflows/ci.yml that runs ruff in CI",
    "Set up GitHub Actions to publish the site",
    "Write a CI workflow that runs the tests",
    "Add a workflow file ci.yml",
])
def test_briefs_asking_for_a_workflow(brief: str) -> None:
    assert read_brief(brief).asks_for_workflow


@pytest.mark.parametrize("brief", [
    "Describe your data analysis workflow on the page",
    "A page listing CIA facts",
    "Show the total of data.csv",
])
def test_briefs_not_asking_for_a_workflow(brief: str) -> None:
    assert not read_brief(brief).asks_for_workflow


def test_a_workflow_of_round_one_stays_wanted_in_round_two() -> None:
    assert wants_workflows(False, {".github/workflows/ci.yml": b"on: push"})
    assert not wants_workflows(False, {"index.html": b""})


def test_model_paths_may_name_workflows_attachments_may_not() -> None:
    assert safe_relative_path(".github/workflows/ci.yml", allow_workflows=True) == ".github/workflows/ci.yml"
    assert is_workflow_path(".github/workflows/pages.yaml") and not is_workflow_path("workflows/ci.yml")
    for name, allow in ((".github/workflows/ci.yml", False), (".github/CODEOWNERS", True),
                        (".github/workflows/a/b.yml", True), (".gitmodules", True), ("lib/.gitmodules", False),
                        (".git/workflows/ci.yml", True), ("%2egithub/workflows/ci.yml", False)):
        with pytest.raises(UnsafePath):
            safe_relative_path(name, allow_workflows=allow)


def test_unasked_workflows_are_dropped_and_legacy_sites_get_nojekyll() -> None:
    files = {"index.html": b"x", ".github/workflows/ci.yml": b"on: push"}
    kept, dropped = without_unasked_workflows(files, wanted=False)
    assert dropped == [".github/workflows/ci.yml"] and kept == {"index.html": b"x"}
    assert site_files(kept) == {"index.html": b"x", ".nojekyll": b""}
    deployed = {**kept, ".github/workflows/pages.yml": PAGES_WORKFLOW}
    assert deploys_pages(deployed) and site_files(deployed) == deployed


def test_round_cache_keeps_commits_and_misses_cleanly(tmp_path) -> None:
    cache = RoundCache(tmp_path)
    files = {"index.html": b"<p>x</p>", "data.bin": bytes(range(256)), ".nojekyll": b""}
    cache.save_commit("https://api.example", "o/r", SHA, files, {"sha": SHA, "tree": "t"})
    assert cache.load_commit("https://api.example", "o/r", SHA) == (files, {"sha": SHA, "tree": "t"})
    assert cache.load_commit("https://api.example", "o/other", SHA) is None
    assert cache.load_commit("https://other.example", "o/r", SHA) is None
    assert cache.load_commit("https://api.example", "o/r", "../../etc") is None
    (next(tmp_path.iterdir()) / f"{SHA}.json").write_text("{not json")
    assert cache.load_commit("https://api.example", "o/r", SHA) is None
    assert RoundCache(None).load_repo("https://api.example", "r") is None


def test_notification_reserve_scales_with_the_deadline() -> None:
    assert notify_reserve(600) == 30 and notify_reserve(280) == 14 and notify_reserve(40) == 3
    assert notify_reserve(6) == 2  # never more than a third of a tiny deadline
    deadline = Deadline(40)
    assert deadline.ahead_by(3).at == pytest.approx(deadline.at - 3)


def test_round_cache_write_that_fails_leaves_no_temporary_file(tmp_path) -> None:
    cache = RoundCache(tmp_path)
    cache.save_commit("https://api.example", "o/r", SHA, {"index.html": b"x"}, {"sha": SHA})
    [folder] = tmp_path.iterdir()
    (folder / f"{SHA}.json").unlink()
    (folder / f"{SHA}.json").mkdir()  # the rename onto it fails
    cache.save_commit("https://api.example", "o/r", SHA, {"index.html": b"y"}, {"sha": SHA})
    assert sorted(p.name for p in folder.iterdir()) == [f"{SHA}.json"]
    assert cache.load_commit("https://api.example", "o/r", SHA) is None


# --- issue 23, finding 7: the negation-aware reading and the lint of a committed workflow ------------------------

@pytest.mark.parametrize("brief", [
    "A static page. No CI, no workflows.",
    "Do not use GitHub Actions; just publish index.html.",
    "Read https://example.com/github-actions/guide.html and summarise it on the page.",
])
def test_negations_and_urls_do_not_ask_for_a_workflow(brief: str) -> None:
    assert not read_brief(brief).asks_for_workflow


PAGES = b"""on:
  push: {branches: [main]}
  workflow_dispatch:
permissions: {contents: read, pages: write, id-token: write}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps: [{uses: actions/deploy-pages@v4}]
"""
PAGES_BRIEF = "Add a GitHub Actions workflow that publishes the site with Pages."


def lint(data: bytes, brief: str = PAGES_BRIEF) -> str:
    reading = read_brief(brief)
    problems = workflow_problems({".github/workflows/ci.yml": data}, schedule=reading.asks_for_schedule,
                                 writes=reading.asks_for_writes)
    return problems.get(".github/workflows/ci.yml", "")


def test_a_pages_deploy_with_read_contents_passes() -> None:
    assert lint(PAGES) == ""


@pytest.mark.parametrize("change, problem", [
    ((b"  workflow_dispatch:\n", b"  workflow_dispatch:\n  schedule: [{cron: '0 0 * * *'}]\n"),
     "is triggered by schedule"),
    ((b"  workflow_dispatch:\n", b"  pull_request_target:\n"), "is triggered by pull_request_target"),
    ((b"contents: read", b"contents: write"), "write permission on contents"),
    ((b"{contents: read, pages: write, id-token: write}", b"write-all"), "write permission on all"),
    ((b"    runs-on: ubuntu-latest\n", b"    runs-on: ubuntu-latest\n    permissions: {issues: write}\n"),
     "write permission on issues"),
    ((b"permissions:", b"anchor: &a {x: 1}\nother: *a\npermissions:"), "uses YAML aliases"),
    ((b"jobs:", b"jobs: [unclosed"), "is not valid YAML"),
])
def test_a_workflow_asking_for_more_than_the_brief_is_refused(change: tuple[bytes, bytes], problem: str) -> None:
    assert problem in lint(PAGES.replace(*change))


def test_what_the_brief_asks_for_is_allowed_and_a_negated_ask_is_not() -> None:
    scheduled = PAGES.replace(b"  workflow_dispatch:\n", b"  workflow_dispatch:\n  schedule: [{cron: '0 0 * * *'}]\n")
    assert lint(scheduled, PAGES_BRIEF + " Rebuild it daily on a schedule.") == ""
    assert "schedule" in lint(scheduled, PAGES_BRIEF + " Do not run it on a schedule.")
    writing = PAGES.replace(b"contents: read", b"contents: write")
    assert lint(writing, PAGES_BRIEF + " The workflow commits data.json back to the repository.") == ""


def test_a_huge_workflow_is_refused_unparsed() -> None:
    assert "larger than 64 KB" in lint(PAGES + b"# " + b"x" * 70_000 + b"\n")
