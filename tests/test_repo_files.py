"""Tests for utils.publishers.repo_files: the MIT license text and the README guarantees."""

from __future__ import annotations

import re

import pytest

from utils.publishers.repo_files import ensure_readme, mit_license
from utils.records import AttachmentRef, RepoTarget, TaskRequest

TARGET = RepoTarget("sales-summary-r1", "https://github.com/alice/sales-summary-r1",
                    "https://alice.github.io/sales-summary-r1/")
REQUEST = TaskRequest(
    email="student@example.com", task="sales-summary-3f2a", round=1, nonce="nonce-secretish",
    brief="Publish a page that sums the sales column of data.csv.\n\nShow the total in #total-sales.",
    evaluation_url="https://grader.example.com/notify?token=abc",
    attachments=(AttachmentRef("data.csv", "data:text/csv;base64,YQ=="),
                 AttachmentRef("../evil.csv", "data:text/csv;base64,YQ=="),
                 AttachmentRef("photo", "https://example.org/p.jpg")),
)


def headings(text: str) -> list[str]:
    return re.findall(r"^#{1,6} .*$", text, flags=re.MULTILINE)


# ---------------------------------------------------------------- LICENSE

def test_mit_license_is_the_standard_text() -> None:
    text = mit_license("alice", 2025)
    assert text.startswith("MIT License\n\nCopyright (c) 2025 alice\n\nPermission is hereby granted, free of charge,")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    assert text.endswith("OTHER DEALINGS IN THE\nSOFTWARE.\n")
    assert len(text.splitlines()) == 21


@pytest.mark.parametrize("holder,expected", [("  Alice\nSmith ", "Alice Smith"), ("", "the authors")])
def test_mit_license_holder_on_one_line(holder: str, expected: str) -> None:
    assert f"Copyright (c) 2024 {expected}\n" in mit_license(holder, 2024)


# ---------------------------------------------------------------- README written from the brief

@pytest.mark.parametrize("readme", [None, "", "   \n\n"])
def test_readme_written_when_missing(readme: str | None) -> None:
    text = ensure_readme(readme, REQUEST, TARGET)
    assert text.startswith("# Sales Summary\n\nPublish a page that sums the sales column of data.csv.\n")
    assert TARGET.pages_url in text
    assert TARGET.repo_url in text
    assert headings(text) == ["# Sales Summary", "## What it does", "## Setup", "## Usage", "## How it works",
                              "## Files", "## License"]
    assert "Show the total in #total-sales." in text
    assert "- `data.csv`" in text
    assert "evil" not in text and "photo" not in text
    assert "MIT License" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_written_readme_holds_nothing_private() -> None:
    text = ensure_readme(None, REQUEST, TARGET)
    for private in [REQUEST.email, REQUEST.nonce, "grader.example.com", "token"]:
        assert private not in text


def test_written_readme_of_a_repository_task_describes_its_files_not_a_page() -> None:
    request = TaskRequest(email="s@example.com", task="analyze-9", round=1, nonce="n", brief=(
        "Fix the error in execute.py and commit it. Add a CI workflow that runs ruff and execute.py."),
        attachments=(AttachmentRef("execute.py", "data:text/x-python;base64,YQ=="),))
    published = [".github/workflows/ci.yml", "data.csv", "execute.py"]
    text = ensure_readme(None, request, TARGET, attachment_paths=["execute.py"], published=published)
    assert "index.html" not in text and "plain HTML" not in text
    assert "- `.github/workflows/ci.yml`: the GitHub Actions workflow." in text
    assert "- `data.csv`: part of the task's deliverables." in text
    assert "- `execute.py`: provided with the task." in text
    assert "The workflow `.github/workflows/ci.yml` runs on GitHub Actions" in text
    assert headings(text)[-1] == "## License"


def test_written_readme_of_a_page_lists_its_other_files_too() -> None:
    text = ensure_readme(None, REQUEST, TARGET, attachment_paths=["data.csv"],
                         published=["app.js", "data.csv", "index.html"])
    assert "- `index.html`: the app (open it in a browser; no build step)." in text
    assert "- `app.js`: part of the task's deliverables." in text
    assert "plain HTML, CSS and JavaScript" in text


@pytest.mark.parametrize("task,title", [
    ("sales-summary-3f2a", "Sales Summary"),
    ("markdown_to_html", "Markdown To Html"),
    ("captcha-solver-42", "Captcha Solver"),
    ("LLMQuiz", "LLMQuiz"),
    ("x", "X"),
])
def test_title_from_task(task: str, title: str) -> None:
    request = TaskRequest("e", task, 1, "n", "Do it.")
    assert ensure_readme(None, request, TARGET).startswith(f"# {title}\n")


# ---------------------------------------------------------------- guarantees on the model's README

GOOD = f"""# Sales Dashboard

A page that sums sales. Live: {TARGET.pages_url}

## Usage

Open it.

## License

MIT
"""


def test_complete_readme_is_kept_as_is() -> None:
    assert ensure_readme(GOOD, REQUEST, TARGET) == GOOD


def test_live_link_without_trailing_slash_counts() -> None:
    readme = GOOD.replace(TARGET.pages_url, TARGET.pages_url.rstrip("/"))
    assert ensure_readme(readme, REQUEST, TARGET) == readme


def test_missing_title_is_prepended() -> None:
    readme = "Some intro.\n\n## Usage\n\nOpen it.\n\n## License\n\nMIT\n" + TARGET.pages_url + "\n"
    text = ensure_readme(readme, REQUEST, TARGET)
    assert text.startswith("# Sales Summary\n\nSome intro.\n")


def test_h2_before_h1_means_no_title() -> None:
    readme = f"## Overview\n\n# Later\n\n{TARGET.pages_url}\n\n## License\n\nMIT\n"
    assert ensure_readme(readme, REQUEST, TARGET).startswith("# Sales Summary\n\n## Overview")


def test_setext_title_is_accepted() -> None:
    readme = f"Sales Dashboard\n===============\n\nIntro {TARGET.pages_url}\n\n## License\n\nMIT License.\n"
    assert ensure_readme(readme, REQUEST, TARGET) == readme


def test_missing_live_link_is_inserted_under_title() -> None:
    readme = GOOD.replace(f" Live: {TARGET.pages_url}", "")
    text = ensure_readme(readme, REQUEST, TARGET)
    assert text.startswith(f"# Sales Dashboard\n\n**Live demo:** [{TARGET.pages_url}]({TARGET.pages_url})\n\n"
                           "A page that sums sales.\n")


def test_missing_license_section_is_appended() -> None:
    readme = f"# App\n\n{TARGET.pages_url}\n\n## Usage\n\nOpen it.\n"
    text = ensure_readme(readme, REQUEST, TARGET)
    assert text.endswith("Open it.\n\n## License\n\nThis project is released under the [MIT License](LICENSE).\n")


def test_license_section_without_mit_gets_it() -> None:
    readme = f"# App\n\n{TARGET.pages_url}\n\n## License\n\nSee the LICENSE file.\n\n## Credits\n\nMe.\n"
    text = ensure_readme(readme, REQUEST, TARGET)
    assert ("## License\n\nSee the LICENSE file.\n\nThis project is released under the [MIT License](LICENSE)."
            "\n\n## Credits\n\nMe.\n") in text
    assert text.count("## License") == 1


def test_headings_inside_code_blocks_do_not_count() -> None:
    readme = f"Intro {TARGET.pages_url}\n\n```markdown\n# Not a title\n## License\nMIT\n```\n"
    text = ensure_readme(readme, REQUEST, TARGET)
    assert text.startswith("# Sales Summary\n\nIntro")
    assert text.endswith("```\n\n## License\n\nThis project is released under the [MIT License](LICENSE).\n")


def test_crlf_readme_is_normalized() -> None:
    text = ensure_readme(GOOD.replace("\n", "\r\n"), REQUEST, TARGET)
    assert text == GOOD


@pytest.mark.parametrize("readme", ["x", "# T", "## License\nMIT", "```\nunclosed", GOOD])
def test_guarantees_hold_for_any_readme(readme: str) -> None:
    text = ensure_readme(readme, REQUEST, TARGET)
    assert TARGET.pages_url in text or TARGET.pages_url.rstrip("/") in text
    assert re.search(r"^#{1,6}\s*License", text, flags=re.MULTILINE | re.IGNORECASE)
    assert "MIT" in text
    assert text.endswith("\n")
    assert ensure_readme(text, REQUEST, TARGET) == text


def test_a_written_readme_lists_the_attachments_where_they_were_committed(service, model):
    """Two attachments with one name are committed as data.csv and a renamed copy; the README lists both."""
    import requests

    from tests.conftest import data_uri, task_request

    model.enqueue("index.html\n```html\n<!doctype html><title>Sales</title><p id=\"total-sales\">42</p>\n```\n")
    csv = data_uri(b"product,sales\nA,10\nB,32\n")
    response = service.post(task_request(nonce="readme-paths", attachments=[
        {"name": "data.csv", "url": csv}, {"name": "data.csv", "url": csv}]))
    assert response.status_code == 200, response.text
    pages = response.json()["pages_url"]
    readme = requests.get(pages + "README.md", timeout=10).text
    listed = [line.split("`")[1] for line in readme.splitlines() if line.startswith("- `data")]
    assert len(set(listed)) == 2 and listed[0] == "data.csv", listed
    for path in listed:
        assert requests.get(pages + path, timeout=10).status_code == 200, path
