"""Grade what a deployment published, as graders do: from its own clone, its own browser and its own receiver.

Each verdict is a ``Row`` (what was checked, pass / fail / unverified, and
why). The repository is cloned with dulwich (GitHub's smart HTTP, or the local
publisher's dumb HTTP) and read at the reported commit: LICENSE is MIT,
README.md exists, every file the brief asks for is there. Every JavaScript check
of the task runs on ``pages_url`` in this machine's Chromium through
Playwright. A plain-English check is graded through the expression the
deployment's check writer made of it (run here, on the live page: the
deployment's own verdict is never taken). A check only a reader can judge, or
a plain-English one the deployment made nothing executable of, is judged here
by this machine's own model when one is configured (the same judging call as
the service's, over the files of the clone), else ``unverified``, as is one of
a kind this grader cannot run. The notification must carry exactly the
contract's keys and the published values.

Never trusts the deployment's verdicts, and never writes outside the
temporary folder it is given.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from dulwich import porcelain
from dulwich.object_store import iter_tree_contents
from dulwich.objects import Commit

from utils.checks.browser import run_checks
from utils.checks.judge import JudgeItem, judge
from utils.deadline import Deadline
from utils.intake.brief import asks, brief_clauses
from utils.records import Check

if TYPE_CHECKING:
    from utils.model.base import Model

PASS, FAIL, UNVERIFIED = "pass", "fail", "unverified"
NOTIFICATION_KEYS = {"email", "task", "round", "nonce", "repo_url", "commit_sha", "pages_url"}
PAGE_WAIT_SECONDS = 60.0
JUDGE_SECONDS = 180.0
JUDGEABLE = ("judged", "plain English")  # the kinds of unverified rows this machine's model may judge
MIT_MARKS = ("MIT License", "Permission is hereby granted, free of charge")
_FILE_NAME = re.compile(r"(?<![\w/.@-])((?:\.?[\w-]+/)*[\w-][\w.-]*\.(?:html?|js|mjs|css|json|csv|tsv|md|txt|svg|png"
                        r"|jpe?g|gif|webp|py|ya?ml|xml|toml|ipynb|xlsx?|pdf|sh))(?![\w/-])", re.IGNORECASE)
_LIBRARIES = {"chart.js", "three.js", "d3.js", "node.js", "vue.js", "react.js", "next.js", "nuxt.js", "p5.js",
              "anime.js", "moment.js", "express.js", "alpine.js", "leaflet.js", "marked.js", "highlight.js"}
_WHOLE_CLAUSE = re.compile(r"\Z")  # asks(clause, this): no negation anywhere in the clause


@dataclass(frozen=True)
class Row:
    """One line of the table: what was checked, its kind, the verdict and why."""

    check: str
    kind: str
    verdict: str  # pass, fail or unverified
    detail: str = ""


def files_the_brief_names(brief: str) -> list[str]:
    """Paths the brief asks to publish: file names in clauses without a negation ("x.json is NOT committed" and
    library names such as Chart.js are left out)."""
    named: dict[str, None] = {}
    for clause in brief_clauses(brief):
        if not asks(clause, _WHOLE_CLAUSE):
            continue
        for match in _FILE_NAME.finditer(clause):
            name = match.group(1)
            if name.lower() not in _LIBRARIES and not (name.endswith(".js") and name[:1].isupper()):
                named[name] = None
    return list(named)


def clone_files(repo_url: str, commit_sha: str, folder: Path) -> dict[str, bytes]:
    """Every file of ``commit_sha`` in a fresh clone of ``repo_url`` (raises on a failed clone or a missing commit)."""
    repo = porcelain.clone(repo_url, str(folder), bare=True, checkout=False, errstream=io.BytesIO())
    try:
        commit = repo[commit_sha.encode("ascii")]
        if not isinstance(commit, Commit):
            raise ValueError(f"{commit_sha} is not a commit")
        return {entry.path.decode("utf-8", "replace"): repo.object_store[entry.sha].as_raw_string()
                for entry in iter_tree_contents(repo.object_store, commit.tree)}
    finally:
        repo.close()


def repository_rows(repo_url: str, commit_sha: str, brief: str, folder: Path) -> tuple[list[Row], dict[str, bytes]]:
    """The repository's rows (clone, LICENSE, README, the files the brief names) and its files."""
    try:
        files = clone_files(repo_url, commit_sha, folder)
    except Exception as exc:  # dulwich raises many kinds (HTTP, protocol, missing object): each is a failed clone
        return [Row(f"clone {repo_url} at {commit_sha[:10]}", "repository", FAIL,
                    f"{type(exc).__name__}: {str(exc)[:200]}")], {}
    rows = [Row(f"clone {repo_url} at {commit_sha[:10]}", "repository", PASS, f"{len(files)} files")]
    license_text = files.get("LICENSE", b"").decode("utf-8", "replace")
    rows.append(Row("LICENSE is MIT", "repository", PASS if any(m in license_text for m in MIT_MARKS) else FAIL,
                    "" if license_text else "no LICENSE at the top of the repository"))
    readme = files.get("README.md", b"")
    rows.append(Row("README.md exists", "repository", PASS if readme.strip() else FAIL,
                    f"{len(readme)} bytes" if readme.strip() else "no README.md, or an empty one"))
    for name in files_the_brief_names(brief):
        there = name in files
        rows.append(Row(f"{name} is published", "repository", PASS if there else FAIL,
                        "" if there else "the brief names it; the commit has no such file"))
    return rows, files


def page_row(pages_url: str, wait_seconds: float = PAGE_WAIT_SECONDS) -> Row:
    """Whether ``pages_url`` answers 200 (waiting a little: a Pages deployment may still be settling)."""
    deadline, last = time.monotonic() + wait_seconds, ""
    while True:
        try:
            status = requests.get(pages_url, timeout=15).status_code
            last = f"HTTP {status}"
            if status == 200:
                return Row(f"{pages_url} answers", "page", PASS, last)
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            return Row(f"{pages_url} answers", "page", FAIL, last)
        time.sleep(2)


def browser_rows(pages_url: str, checks: Sequence[tuple[Check, str]], chromium: str | None) -> list[Row]:
    """Run every (check, kind) on ``pages_url`` in this machine's Chromium; unverified without one."""
    if not checks:
        return []
    if not chromium:
        return [Row(check.text, kind, UNVERIFIED, "no Chromium with Playwright here: install chromium and run "
                    "`uv run --extra browser check_config.py --round-trip ...`") for check, kind in checks]
    report = run_checks(pages_url, [check for check, _ in checks], chromium_path=chromium, check_timeout=15,
                        total_timeout=90)
    rows = []
    for (check, kind), result in zip(checks, report.results, strict=True):
        detail = result.error or (f"returned {result.value}" if result.value not in ("", "true") else "")
        rows.append(Row(check.text, kind, PASS if result.passed else FAIL, (detail or "")[:200]))
    return rows


def check_plan(checks: Sequence[Check], report_rows: Sequence[dict[str, Any]]) -> tuple[list[tuple[Check, str]],
                                                                                         list[Row]]:
    """The checks to run here (the task's JavaScript, and the expressions the deployment wrote for plain-English
    ones) and the rows of those that cannot be run here."""
    written = {str(row.get("check")): row for row in report_rows if isinstance(row, dict)}
    runnable: list[tuple[Check, str]] = []
    unverified: list[Row] = []
    for check in checks:
        if check.js:
            runnable.append((check, "js"))
            continue
        row = written.get(check.text) or {}
        kind = str(row.get("kind") or "")
        if kind == "written JS" and row.get("js"):
            runnable.append((Check(check.text, str(row["js"])), "written js"))
        elif kind == "judged":
            after = row.get("after")
            said = "pass" if after is True else "fail" if after is False else "no verdict"
            unverified.append(Row(check.text, "judged", UNVERIFIED, f"only a reader can judge it; the "
                                  f"deployment's judge said {said} (not counted)"))
        elif kind and kind != "unjudged":
            unverified.append(Row(check.text, kind, UNVERIFIED, f"checks of kind {kind!r} are not run by this "
                                  "round trip yet"))
        else:
            unverified.append(Row(check.text, "plain English", UNVERIFIED, "the deployment wrote no executable "
                                  "check for it (is its browser self-check on?)"))
    return runnable, unverified


def judged_here(rows: Sequence[Row], files: dict[str, bytes], brief: str, model: Model | None) -> list[Row]:
    """``rows`` with the unverified checks a reader must judge judged by ``model`` over the clone's files (one
    judging call); unchanged without a model or files, and for a check the model gave no verdict on."""
    todo = [row for row in rows if row.verdict == UNVERIFIED and row.kind in JUDGEABLE]
    if not todo or model is None or not files:
        return list(rows)
    items = [JudgeItem(row.check, f"From the published files, confirm that this holds: {row.check}") for row in todo]
    results = {result.check: result for result in judge(items, files, brief, model, Deadline(JUDGE_SECONDS)).results}
    judged = []
    for row in rows:
        result = results.get(row.check) if row in todo else None
        if result is None or result.passed is None:
            judged.append(row)
            continue
        judged.append(Row(row.check, "judged here", PASS if result.passed else FAIL,
                          f"this machine's model: {result.value}"[:200]))
    return judged


def notification_row(payloads: Sequence[Any], request_body: dict[str, Any], result: dict[str, Any]) -> Row:
    """Whether exactly one notification arrived for this nonce, with exactly the contract's keys and values."""
    mine = [p for p in payloads if isinstance(p, dict) and p.get("nonce") == request_body["nonce"]]
    if not mine:
        return Row("notification received", "notification", FAIL, "nothing arrived at this program's receiver")
    payload = mine[-1]
    if set(payload) != NOTIFICATION_KEYS:
        return Row("notification received", "notification", FAIL,
                   f"keys {sorted(payload)}; expected exactly {sorted(NOTIFICATION_KEYS)}")
    expected = {"email": request_body["email"], "task": request_body["task"], "round": request_body["round"],
                "nonce": request_body["nonce"], **{k: result.get(k) for k in ("repo_url", "commit_sha", "pages_url")}}
    wrong = [key for key, value in expected.items() if str(payload.get(key)) != str(value)]
    if wrong:
        return Row("notification received", "notification", FAIL, f"{', '.join(wrong)} differ from the build's")
    return Row("notification received", "notification", PASS, f"{len(mine)} received, the contract's 7 keys")
