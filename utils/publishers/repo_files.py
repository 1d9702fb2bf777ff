"""The files every published repository carries besides the app: LICENSE and README.md.

``mit_license`` writes the standard MIT text; ``ensure_readme`` keeps the model's
README but guarantees a title, a live link to the Pages URL and an MIT license
section, or writes a professional README from the brief when the model sent none.
Pure text functions: they never touch the filesystem or the network, and never
write anything from the request but the brief, the task id and attachment names
(no email, nonce, evaluation URL or secret).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from utils.paths import UnsafePath, safe_relative_path
from utils.records import RepoTarget, TaskRequest

_MIT_BODY = """\
Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

LICENSE_SECTION = "## License\n\nThis project is released under the [MIT License](LICENSE).\n"

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_H1 = re.compile(r"^\s{0,3}#(?!#)\s*\S")
_SETEXT_H1 = re.compile(r"^\s{0,3}=+\s*$")
_ANY_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_LICENSE_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*licen[cs]e\b", re.IGNORECASE)
_HASHY_TAIL = re.compile(r"^(?=.*\d)[0-9a-f]{3,}$|^\d+$", re.IGNORECASE)


def mit_license(holder: str, year: int) -> str:
    """The standard MIT license text for ``holder`` and ``year``."""
    name = " ".join(str(holder).split()) or "the authors"
    return f"MIT License\n\nCopyright (c) {year} {name}\n\n{_MIT_BODY}"


def ensure_readme(readme: str | None, request: TaskRequest, target: RepoTarget,
                  attachment_paths: Sequence[str] | None = None, published: Sequence[str] | None = None) -> str:
    """The model's README with a guaranteed title, live link and MIT license section (or a new one).

    ``attachment_paths``: where the attachments are committed (as decoded, duplicates renamed); by default
    worked out again from the request's names. ``published``: the paths of the files published beside the
    README (the app's and the attachments'), so a README written here describes them; by default a page app."""
    if readme is None or not readme.strip():
        paths = _attachment_paths(request) if attachment_paths is None else list(attachment_paths)
        return _write_readme(request, target, paths, published)
    lines = _close_open_fence(readme.replace("\r\n", "\n").strip("\n").split("\n"))
    lines = _ensure_title(lines, _title(request))
    lines = _ensure_live_link(lines, target.pages_url)
    lines = _ensure_license(lines)
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- reading the README

def _outside_fences(lines: list[str]) -> list[bool]:
    """For each line, whether it is outside any fenced code block."""
    return _scan_fences(lines)[0]


def _close_open_fence(lines: list[str]) -> list[str]:
    """Close a code block left open at the end, so that appended sections are not swallowed by it."""
    still_open = _scan_fences(lines)[1]
    return [*lines, still_open] if still_open else lines


def _scan_fences(lines: list[str]) -> tuple[list[bool], str | None]:
    """(per line: outside any fence, the fence still open at the end or None)."""
    flags: list[bool] = []
    fence: str | None = None
    for line in lines:
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            flags.append(False)
        elif fence is not None:
            if line.strip() and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
                fence = None
            flags.append(False)
        else:
            flags.append(True)
    return flags, fence


def _title_index(lines: list[str]) -> int | None:
    """Index of the line holding the README's title (an H1 before any other heading)."""
    outside = _outside_fences(lines)
    for index, line in enumerate(lines):
        if not outside[index]:
            continue
        if _H1.match(line):
            return index
        if index + 1 < len(lines) and line.strip() and _SETEXT_H1.match(lines[index + 1]) and outside[index + 1]:
            return index + 1
        if _ANY_HEADING.match(line):
            return None
    return None


def _ensure_title(lines: list[str], title: str) -> list[str]:
    """Prepend ``# title`` when the README has no H1 title."""
    if _title_index(lines) is not None:
        return lines
    return [f"# {title}", "", *lines]


def _ensure_live_link(lines: list[str], pages_url: str) -> list[str]:
    """Insert the live link right under the title when the README does not contain it."""
    text = "\n".join(lines)
    if not pages_url or pages_url in text or pages_url.rstrip("/") in text:
        return lines
    at = (_title_index(lines) or 0) + 1
    return [*lines[:at], "", f"**Live demo:** [{pages_url}]({pages_url})", *_blank_unless_blank(lines[at:])]


def _blank_unless_blank(rest: list[str]) -> list[str]:
    """``rest``, starting with exactly one blank line when it is not empty."""
    if not rest:
        return []
    return rest if not rest[0].strip() else ["", *rest]


def _ensure_license(lines: list[str]) -> list[str]:
    """Append a MIT ``## License`` section, or name MIT in an existing license section."""
    outside = _outside_fences(lines)
    start = next((i for i, line in enumerate(lines) if outside[i] and _LICENSE_HEADING.match(line)), None)
    if start is None:
        return [*lines, "", *LICENSE_SECTION.rstrip("\n").split("\n")]
    end = next((i for i in range(start + 1, len(lines)) if outside[i] and _ANY_HEADING.match(lines[i])), len(lines))
    if re.search(r"\bMIT\b", "\n".join(lines[start:end])):
        return lines
    section = lines[start:end]
    while section and not section[-1].strip():
        section.pop()
    addition = ["", "This project is released under the [MIT License](LICENSE)."]
    tail = lines[end:]
    return [*lines[:start], *section, *addition, *([""] if tail else []), *tail]


# ---------------------------------------------------------------- writing one

def _title(request: TaskRequest) -> str:
    """A readable title from the task id (``sales-summary-3f2a`` -> ``Sales Summary``)."""
    words = [w for w in re.split(r"[-_\s]+", request.task) if w]
    if len(words) > 1 and _HASHY_TAIL.match(words[-1]):
        words = words[:-1]
    title = " ".join(w if any(c.isupper() for c in w) else w.capitalize() for w in words)
    return title or "Web App"


def _summary(brief: str) -> str:
    """The brief's first paragraph, as the README's summary."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", brief.strip()) if p.strip()]
    return paragraphs[0] if paragraphs else "A static web app."


def _attachment_paths(request: TaskRequest) -> list[str]:
    """Where the request's attachments are committed (names that pass the sanitizer)."""
    paths = []
    for attachment in request.attachments:
        if attachment.url.startswith(("http://", "https://")):
            continue
        try:
            paths.append(safe_relative_path(attachment.name))
        except UnsafePath:
            continue
    return paths


def _write_readme(request: TaskRequest, target: RepoTarget, attachment_paths: Sequence[str],
                  published: Sequence[str] | None) -> str:
    """A professional README written from the brief when the model sent none: a page app, or (when
    ``published`` has no ``index.html``) a repository of the files the task asks for."""
    page = published is None or "index.html" in published
    brief = request.brief.strip() or ("A static web app." if page else "The files this task asks for.")
    summary = _summary(brief)
    details = ["## What it does", brief] if brief != summary else []
    sections = [f"# {_title(request)}", summary, f"**Live demo:** [{target.pages_url}]({target.pages_url})",
                *details, *(_page_sections(target) if page else _repository_sections(target, published or ())),
                "## Files", "\n".join(_file_lines(attachment_paths, published, page)),
                LICENSE_SECTION.rstrip("\n")]
    return "\n\n".join(sections) + "\n"


def _page_sections(target: RepoTarget) -> list[str]:
    """Setup, usage and how it works for a static page app."""
    return ["## Setup", "Nothing to install: the app is plain HTML, CSS and JavaScript served as static files.",
            "## Usage", (f"Open the live demo at {target.pages_url}. To run it locally, clone "
                         f"{target.repo_url}, run `python -m http.server 8000` in the folder and open "
                         "http://localhost:8000/."),
            "## How it works", ("`index.html` holds the page; its scripts run in the browser and load any data "
                                "files by relative URL, so the app works under any sub-path.")]


def _repository_sections(target: RepoTarget, published: Sequence[str]) -> list[str]:
    """Setup, usage and how it works for a repository of files (scripts, data, a workflow), without a page."""
    scripts = [path for path in published if path.endswith(".py")]
    workflows = [path for path in published if path.startswith(".github/workflows/")]
    setup = (f"Python 3 runs the scripts: `python {scripts[0]}`." if scripts
             else "Nothing to install: the deliverables are the files listed below.")
    how = ("The repository holds the files the task asks for. "
           + (f"The workflow `{workflows[0]}` runs on GitHub Actions at every push and publishes its output "
              "with GitHub Pages." if workflows else "The live link lists the published files."))
    return ["## Setup", setup,
            "## Usage", f"Clone {target.repo_url} and use the files below, or read them at {target.pages_url}.",
            "## How it works", how]


def _file_lines(attachment_paths: Sequence[str], published: Sequence[str] | None, page: bool) -> list[str]:
    """One line per published file, with what it is."""
    attached = set(attachment_paths)
    others = [path for path in (published or ()) if path not in attached
              and path not in ("index.html", "README.md", "LICENSE")]
    lines = ["- `index.html`: the app (open it in a browser; no build step)."] if page else []
    for path in others:
        if path.startswith(".github/workflows/"):
            lines.append(f"- `{path}`: the GitHub Actions workflow.")
        elif path.endswith(".py"):
            lines.append(f"- `{path}`: a Python script (`python {path}`).")
        else:
            lines.append(f"- `{path}`: part of the task's deliverables.")
    provided = ("data provided with the task, loaded by the app by its relative path" if page
                else "provided with the task")
    lines += [f"- `{path}`: {provided}." for path in attachment_paths]
    return [*lines, "- `README.md`: this file.", "- `LICENSE`: the MIT license."]
