"""The one reading of the brief (utils/intake/brief.py): workflows, pages and attachments to change, negations."""

from __future__ import annotations

import pytest

from utils.intake.brief import read_brief

ANALYZE = ("Fix the error in the attached execute.py and commit it. Convert data.xlsx to data.csv. Add a CI "
           "workflow (.github/workflows/ci.yml) that runs ruff and execute.py and publishes result.json with "
           "GitHub Pages; do not commit result.json.")


@pytest.mark.parametrize("brief, asked", [
    (ANALYZE, True),
    ("Add a GitHub Actions workflow that deploys the site with Pages.", True),
    ("Don't forget to add a GitHub Actions workflow that deploys Pages.", True),
    ("Create .github/workflows/test.yml running pytest.", True),
    ("A static page. No CI, no workflows.", False),
    ("Do not use GitHub Actions. Create a web page showing the sales total.", False),
    ("Never add workflows; publish a page.", False),
    ("Fetch https://example.com/github-actions/ci/workflows.yml and save it as data.json", False),
    ("Describe your workflow as a designer in about.md.", False),
])
def test_a_workflow_only_on_an_explicit_request(brief, asked):
    reading = read_brief(brief)
    assert reading.asks_for_workflow is asked
    assert bool(reading.because.get("workflow")) is asked


@pytest.mark.parametrize("brief, asked", [
    ("Create a single-page app that shows the total of sales.csv.", True),
    ("Build a dashboard that displays data.csv; do not modify data.csv.", True),
    ("Publish a page with the title 'Sales Summary'.", True),
    ("Write index.html with a form.", True),
    (ANALYZE, False),
    ("Write a Python script analyze.py and commit it with results.md.", False),
    ("Publish uid.txt as-is and a LICENSE.", False),
])
def test_a_page_only_when_one_is_asked_for(brief, asked):
    assert read_brief(brief).asks_for_page is asked


@pytest.mark.parametrize("brief, attachments, changeable", [
    (ANALYZE, ["execute.py", "data.xlsx"], ("execute.py",)),
    ("Commit execute.py after fixing it.", ["execute.py"], ("execute.py",)),
    ("Update data.csv to add a total row, but keep uid.txt unchanged.", ["data.csv", "uid.txt"], ("data.csv",)),
    ("Publish uid.txt as-is and modify nothing else.", ["uid.txt"], ()),
    ("Do not modify data.csv; build a dashboard that displays it.", ["data.csv"], ()),
    ("Convert data.xlsx to data.csv.", ["data.xlsx"], ()),
    ("Fix the typo in the page title.", ["data.csv"], ()),
    ("Fix src/app.py so that it runs.", ["src/app.py"], ("src/app.py",)),
    ("Fix the import in app.py.", ["src/app.py"], ("src/app.py",)),  # named by its file name
    ("Fix app.python's header.", ["app.py"], ()),  # another name that merely starts with it
])
def test_attachments_change_only_when_the_brief_asks(brief, attachments, changeable):
    reading = read_brief(brief, attachments)
    assert reading.changeable == changeable
    assert all(reading.may_change(path) and reading.because[path] for path in changeable)


def test_the_report_says_what_was_decided_and_why():
    report = read_brief(ANALYZE, ["execute.py", "data.xlsx"]).to_report()
    assert report["workflow"] is True and report["page"] is False
    assert report["attachments_to_change"] == ["execute.py"]
    assert "execute.py" in report["because"]["execute.py"] and "workflow" in report["because"]["workflow"]


@pytest.mark.parametrize("brief", ["", "   ", "." * 200_000, "no " * 50_000, "\n;,but " * 10_000, "\x00\ud800"])
def test_any_text_is_read_without_error(brief):
    reading = read_brief(brief, ["a.txt"])
    assert reading.changeable == ()
