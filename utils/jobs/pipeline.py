"""The build pipeline: claim the nonce, generate, publish, wait for Pages, notify, record.

    claim (store) -> prepare -> fetch (URLs the brief names) -> generation -> self_check -> publish -> pages
    -> notify -> store

Each stage is timed and logged with its outcome ("error" when it raised or,
like a notification the receiver never accepted, failed without raising), and
a running build's current stage and links are written to the build store as they
become known, for the dashboard. Duplicates of a nonce replay the first result. Never logs or stores the
secret or attachment contents, and
never commits a file that contains a configured secret value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from utils.checks.availability import usable_chromium
from utils.checks.browser import CheckResult
from utils.checks.repo_checks import RepoChecks, parsed_sources
from utils.checks.sandbox import Sandbox
from utils.checks.selfcheck import CheckSubject, SelfCheckOptions, check_live, self_check
from utils.checks.writer import CheckWriting, WrittenChecks, check_key, plain_checks, reuse_written
from utils.config import Config
from utils.deadline import Deadline
from utils.errors import BuildInProgress, NotConfigured, PipelineError
from utils.intake.brief import read_brief
from utils.intake.fetch import FetchedDocument, fetch_brief_urls, urls_in_brief
from utils.jobs.job import Outcome
from utils.jobs.notify import notification_payload, notify
from utils.jobs.published_site import (
    RepairContext,
    SiteOutcome,
    local_workflow_warnings,
    require_workflow_permission,
    wait_for_site,
)
from utils.jobs.published_tree import PublishedTree, TreeInputs, build_tree
from utils.model.base import Model
from utils.model.derived import Source, derive_sources
from utils.model.generate import generate_app
from utils.model.llm import ModelClient
from utils.model.prompt_parts import file_context, omitted_note
from utils.model.source_data import document_warnings, fetch_warnings, render_source_data
from utils.publishers.base import Publisher, commit_message, repo_name_for
from utils.publishers.github import GitHubPublisher
from utils.publishers.github_api import GitHubTransport
from utils.publishers.round_cache import RoundCache
from utils.publishers.secret_scan import refuse_secrets
from utils.records import Attachments, Check, PreviousRound, PublishedCommit, TaskRequest, WrittenCheck
from utils.store.backends import open_store
from utils.store.base import FINAL, BuildRow, BuildStore, Claim, lease_seconds

log = logging.getLogger(__name__)

PREVIOUS_FILES_BYTES = 40_000  # round N-1's files shown to the check writer


@dataclass
class Services:
    """Long-lived collaborators of the pipeline, built once per app."""

    config: Config
    store: BuildStore  # the build store: SQLite under DATA_DIR, or PostgreSQL with DATABASE_URL
    model: Model
    make_publisher: Callable[[str], Publisher]


def create_services(config: Config) -> Services:
    """The store, model client and publisher factory for ``config``."""
    store = open_store(config)
    model = ModelClient.from_config(config)
    if config.github_token:
        transport = GitHubTransport(config.github_token, config.github_api_url,
                                    write_interval=config.github_write_interval)
        github = GitHubPublisher(transport, config.github_username, poll_interval=config.github_poll_interval,
                                 cache=RoundCache(config.data_dir / "github-rounds"))
        return Services(config, store, model, lambda _public_url: github)
    return Services(config, store, model, lambda public_url: _local_publisher(config, public_url))


def _local_publisher(config: Config, public_url: str) -> Publisher:
    """The embedded publisher: repositories under DATA_DIR, served by this service at ``public_url``."""
    from utils.publishers.local import LocalPublisher  # why: dulwich is loaded only by the local publisher

    return LocalPublisher(config.data_dir / "repos", public_url)


@dataclass
class _StageOutcome:
    """How a stage ended: "ok", or "error" with what went wrong (set by ``fail`` or by an exception)."""

    outcome: str = "ok"
    error: str = ""

    def fail(self, error: str) -> None:
        """Mark the stage failed although it did not raise (e.g. a notification that was never accepted)."""
        self.outcome, self.error = "error", error


@dataclass
class _BuildState:
    """What one build has learned so far, and how long each stage took."""

    request: TaskRequest
    deadline: Deadline
    chromium: str | None = None  # the browser located once for this build (None: no self-check)
    report_progress: Callable[[dict[str, Any]], None] = lambda _progress: None  # the store's record of a running build
    timings: dict[str, float] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # repo_url, pages_url, commit_sha once known
    warnings: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    self_check: dict[str, Any] | None = None
    live_check: dict[str, Any] | None = None
    written: WrittenChecks | None = None  # the check writer's executable checks (issue 12)
    screenshot: bytes | None = None  # PNG of the app as the self-check saw it, saved once the scan passed
    workflow_run: dict[str, Any] | None = None
    brief_reading: dict[str, Any] | None = None  # what the brief asks for (workflow, page, attachments) and why
    unmet: list[dict[str, Any]] = field(default_factory=list)  # checks still failing when published, last value
    reused: list[WrittenCheck] = field(default_factory=list)  # round N-1's written checks used again
    sources: dict[str, Source] = field(default_factory=dict)  # attachments and fetched documents (files checks)

    @contextmanager
    def stage(self, name: str) -> Iterator[_StageOutcome]:
        """Time a stage, record it as the build's current stage, and log its outcome."""
        self.report_progress({"stage": name, "timings": dict(self.timings), **self.links})
        started = time.monotonic()
        result = _StageOutcome()
        try:
            yield result
        except BaseException:
            result.outcome = "error"
            raise
        finally:
            seconds = round(time.monotonic() - started, 3)
            self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)
            extra = {"stage": name, "seconds": seconds, "outcome": result.outcome,
                     "task": self.request.task, "round": self.request.round}
            if result.error:
                extra["error"] = result.error
            log.log(logging.ERROR if result.error else logging.INFO, "stage finished", extra=extra)


def run(request: TaskRequest, attachments: Attachments, services: Services, *, public_url: str,
        deadline: Deadline, request_id: str, claim: Claim | None = None) -> Outcome:
    """Build ``request`` once per nonce and answer; duplicates get the first result (``claim``: already claimed).

    Every failure of a claimed state, a missing required browser included, is recorded as its result.
    """
    if claim is None:
        claim = _claim(request, services, deadline, request_id, attachments, public_url)
    if claim.state == "done" and claim.row is not None:  # a done claim always carries its row
        return _replay(claim.row, request, services, deadline)
    try:
        chromium = _locate_browser(services.config)  # before any model call
        outcome = _run_stages(request, attachments, services, public_url, deadline, chromium, earlier=claim.row,
                         report_progress=lambda progress: services.store.progress(request.nonce, progress))
    except PipelineError as exc:
        services.store.finish(request.nonce, "error", {"http_status": exc.status, "body": exc.to_body()})
        raise
    except Exception:
        body = {"status": "error", "error": {"stage": "internal", "message": "unexpected error; see the service log"}}
        services.store.finish(request.nonce, "error", {"http_status": 500, "body": body})
        raise
    services.store.finish(request.nonce, "success", {"http_status": 200, "body": outcome.body},
                           notified=outcome.body["notified"])
    return outcome


def _claim(request: TaskRequest, services: Services, deadline: Deadline, request_id: str,
           attachments: Attachments, public_url: str) -> Claim:
    """Claim the nonce (storing the build for a resume); a duplicate of a running build waits for its result."""
    def claim_now() -> Claim:
        return services.store.claim(request, request_id, lease_seconds(services.config.deadline_seconds),
                                     attachments=attachments, public_url=public_url,
                                     deadline_at=time.time() + deadline.remaining())

    claim = claim_now()
    if claim.state != "running":
        return claim
    log.info("duplicate of a running build; waiting for it", extra={"nonce": request.nonce})
    row = services.store.wait_for(request.nonce, until=deadline.at)
    if row is not None and row.status in FINAL and row.status != "expired":
        return Claim("done", row)  # it ended (success or error): answer with its result
    claim = claim_now()
    if claim.state == "running":
        raise BuildInProgress("a build for this nonce is still running; retry later")
    return claim


def _run_stages(request: TaskRequest, attachments: Attachments, services: Services, public_url: str,
           deadline: Deadline, chromium: str | None, earlier: BuildRow | None = None,
           report_progress: Callable[[dict[str, Any]], None] | None = None) -> Outcome:
    """Run every stage of a new build (``earlier``: the build store row of an attempt that did not finish)."""
    state = _BuildState(request, deadline, chromium)
    if report_progress is not None:
        state.report_progress = report_progress
    publisher = services.make_publisher(public_url)
    same_repo = services.config.round_repo == "same"  # round N > 1 commits to round 1's repository
    files: dict[str, bytes] = {}
    reading = read_brief(request.brief, [a.path for a in attachments.files])
    state.brief_reading = reading.to_report()
    kept_attachments = [a.path for a in attachments.files if not reading.may_change(a.path)]
    derived: tuple[str, ...] = ()  # files made from derive blocks: a CI repair keeps them as made
    with state.stage("prepare"):
        previous = _previous_round(request, publisher, services.store, state, same_repo)
        require_workflow_permission(request, previous, publisher, deadline)  # before any model call or creation
        target = publisher.prepare(repo_name_for(request.task, 1 if same_repo else request.round),
                                   _description(request.brief), nonce=request.nonce, deadline=deadline,
                                   existing=same_repo and previous is not None)
        commit_sha = publisher.find_commit(target, request.nonce, deadline=deadline)
    state.links.update(repo_url=target.repo_url, pages_url=target.pages_url)
    already_notified = bool(commit_sha and earlier and earlier.notified)
    if commit_sha:
        state.warnings.append("this request's commit already existed (an earlier attempt); reused it")
    else:
        fetched = _fetch_brief_data(request, services.config, state)
        writing = _start_check_writing(request, attachments, fetched, previous, services, state)
        with state.stage("generation"), _script_sandbox(services.config, state) as scripts:
            app = generate_app(request, attachments, target, previous, services.model, deadline, fetched, scripts)
            state.usage = asdict(app.usage)
        state.warnings.extend(app.warnings)
        state.warnings.extend(document_warnings(attachments))  # read once already: remembered by content
        services.store.mark_milestone(request.nonce, "generated")
        inputs = TreeInputs(request, attachments, reading, target, services.config.github_username or request.email,
                            derived=app.derived, previous_files=previous.files if previous else None)
        tree = build_tree(app.files, inputs)  # what the self-check, the judge, the scan and the publisher see
        derived = inputs.derived
        state.sources = derive_sources(attachments, fetched)
        with state.stage("self_check"):
            state.written = _written_checks(writing, state)
            with _check_sandbox(state) as repo_checks:
                checked = _self_check(tree, (inputs, repo_checks), previous, services, state)
        files = _final_tree(tree, checked, inputs, services.config, state)
        if state.screenshot:  # only once the secret scan passed the files it shows
            services.store.save_screenshot(request.nonce, state.screenshot)
        state.warnings.extend(local_workflow_warnings(files, publisher.capabilities))
        with state.stage("publish"):
            title = f"Round {request.round}: {_description(request.brief, 60)}"
            message = commit_message(title, request.task, request.round, request.nonce)
            commit_sha = publisher.commit(target, files, message, previous, deadline=deadline)
    services.store.mark_milestone(request.nonce, "committed")
    state.links["commit_sha"] = commit_sha
    with state.stage("pages"), _check_sandbox(state) as repo_checks:  # ends a reserve before the deadline
        repair = RepairContext(request, services.model, tuple(kept_attachments), tuple(services.config.secret_values()),
                               run_checks=_scripts(state, "run"), evaluate=repo_checks.run_result, derived=derived)
        site = wait_for_site(publisher, target, commit_sha, files, deadline, repair)
    commit_sha, live, state.workflow_run = site.commit_sha, site.live, site.report()
    state.warnings.extend(site.warnings)
    _note_unmet([c for c in site.checks if c.passed is False], "run", state)
    state.links["commit_sha"] = commit_sha  # a CI repair commit replaces it
    published = PublishedCommit(target.repo_url, target.pages_url, commit_sha, live)
    if already_notified:
        state.warnings.append("an earlier attempt's notification was accepted; not sent again")
    notified = already_notified or _notify(request, published, deadline, state, services.store)
    page = live and publisher.capabilities.live_check and _has_page_checks(state, previous)
    if state.chromium is not None and (page or _scripts(state, "files") or site.checks):
        with state.stage("live_check"), _check_sandbox(state) as repo_checks:
            state.live_check = _check_live(published, (files, site), previous, state, repo_checks, page=page)
    return Outcome(200, _success_body(request, published, notified, state))


def _written_checks(writing: CheckWriting | None, state: _BuildState) -> WrittenChecks | None:
    """This round's written checks: round N-1's reused ones, then what the check writer wrote (if it ran)."""
    written = writing.result(state.deadline) if writing else WrittenChecks()
    if not state.reused and writing is None:
        return None
    return WrittenChecks([*state.reused, *written.checks], written.problems, written.calls)


def _fetch_brief_data(request: TaskRequest, config: Config, state: _BuildState) -> list[FetchedDocument]:
    """Fetch the http(s) URLs the brief names (none: no stage); failures become warnings, never errors."""
    urls = urls_in_brief(request.brief)
    if not urls:
        return []
    with state.stage("fetch"):
        fetched = fetch_brief_urls(urls, email=request.email, config=config, deadline=state.deadline)
    state.warnings.extend(fetch_warnings(fetched))
    return fetched


def _self_check(tree: PublishedTree, given: tuple[TreeInputs, RepoChecks], previous: PreviousRound | None,
                services: Services, state: _BuildState) -> dict[str, bytes]:
    """Run the graders' checks in Chromium on the published tree before publishing and let the model repair
    failures (attachments kept as attached, derived files and LICENSE stay exactly as they are)."""
    inputs, repo_checks = given
    request, config = state.request, services.config
    subject = CheckSubject(request.checks, previous.checks if previous else (), request.brief, state.written,
                           protected=inputs.protected)
    options = SelfCheckOptions(config.self_check, state.chromium, config.self_check_repairs, screenshot=True,
                               repo_checks=repo_checks)
    files, report = self_check(tree.files, subject, repo_name=inputs.target.name, model=services.model,
                               deadline=state.deadline, options=options)
    state.self_check = report.to_dict()
    state.screenshot = report.screenshot
    state.warnings.extend(report.problems)
    for unmet in report.unmet():
        state.unmet.append(unmet)
        state.warnings.append(f"check still failing when published: {unmet['check']} (last value or reason: "
                              f"{unmet['value'] or 'none'})")
    return files


def _note_unmet(failing: Sequence[CheckResult], kind: str, state: _BuildState) -> None:
    """Record checks that fail on what was published (here: the workflow run) as unmet, with a warning each."""
    for result in failing:
        value = str(result.error or result.value or "")[:200]
        state.unmet.append({"check": result.check, "kind": kind, "value": value})
        state.warnings.append(f"check still failing when published: {result.check} (last value or reason: "
                              f"{value or 'none'})")


def _start_check_writing(request: TaskRequest, attachments: Attachments, fetched: Sequence[FetchedDocument],
                         previous: PreviousRound | None, services: Services, state: _BuildState) -> CheckWriting | None:
    """Reuse round N-1's written checks, and start the check-writing call beside generation for the
    plain-English checks still to write; it sees the fetched data, attachment tables and round N-1's files, so
    written checks can compare published figures with them ("ashravan.txt is unchanged from round 1")."""
    if state.chromium is None:
        return None
    if previous is not None:
        state.reused = reuse_written(previous.written, request.checks, previous.checks)
    reused = {check_key(w.check) for w in state.reused if not w.previous}
    to_write = [c for c in request.checks if c.js or check_key(c.text) not in reused]
    if not plain_checks(to_write):
        return None
    context = render_source_data(fetched, attachments, request.brief)
    if previous is not None:
        shown, omitted = file_context(previous.files, request.brief, PREVIOUS_FILES_BYTES, license_text=True)
        context += (f"\n\n### Round {request.round - 1}'s files (as published; this round changes them)\n\n"
                    f"{shown}\n\n{omitted_note(omitted)}")
    return CheckWriting(to_write, request.brief, attachments, services.model, state.deadline, extra_context=context)


@contextmanager
def _script_sandbox(config: Config, state: _BuildState) -> Iterator[Sandbox | None]:
    """The sandbox that computes derive blocks' `js:` functions during generation (one Chromium, launched only if
    a reply has one); None without a usable browser. It uses the self-check's browser, or finds one when
    SELF_CHECK=off: turning the check off does not turn computing off."""
    chromium = state.chromium or usable_chromium(config.chromium_path or None)
    if chromium is None:
        yield None
        return
    with Sandbox(chromium) as sandbox:
        yield sandbox


def _locate_browser(config: Config) -> str | None:
    """The build's Chromium, located once (None if off or absent); 503 if required and absent, before any model call."""
    chromium = usable_chromium(config.chromium_path or None) if config.self_check != "off" else None
    if config.self_check == "required" and chromium is None:
        raise NotConfigured("SELF_CHECK=required but no usable browser was found: install chromium (or set "
                            "CHROMIUM_PATH) and Playwright (`uv run --extra browser main.py`)",
                            field="CHROMIUM_PATH")
    return chromium


def _check_live(published: PublishedCommit, committed: tuple[dict[str, bytes], SiteOutcome],
                previous: PreviousRound | None, state: _BuildState, repo_checks: RepoChecks, *,
                page: bool) -> dict[str, Any]:
    """After notifying, run every check that can run now: js on the live page (``page``), files on the
    committed tree, run on the finished run; the report (never blocks the callback)."""
    files, site = committed
    request = state.request
    report: dict[str, Any] = {"ran": False, "checks": []}
    if page:
        written_js = {w.check: w.js for w in (state.written.checks if state.written else []) if w.kind == "js"}
        report = check_live(published.pages_url, [*request.checks, *(Check(t, js) for t, js in written_js.items())],
                            chromium_path=state.chromium, deadline=state.deadline,
                            previous_checks=previous.checks if previous else (), brief=request.brief).to_dict()
        for row in report.get("checks", []):
            row["kind"] = "written JS" if row["check"] in written_js else row["kind"]
    rows = [_row(repo_checks.files_result(label, script, files), "files") for label, script in
            (_scripts(state, "files") if files else ())]
    rows += [_row(result, "run") for result in site.checks]
    return {**report, "checks": [*report.get("checks", []), *rows]}


def _has_page_checks(state: _BuildState, previous: PreviousRound | None) -> bool:
    """Whether any check of this build runs in the page (given JavaScript, round N-1's too, or written)."""
    written = state.written.checks if state.written else []
    given = [*state.request.checks, *(previous.checks if previous else ())]
    return any(c.js for c in given) or any(w.kind == "js" for w in written)


def _row(result: CheckResult, kind: str) -> dict[str, Any]:
    """A files or run check's result as a report row."""
    return {"check": result.check, "kind": kind, "before": None, "after": result.passed, "value": result.value,
            "error": result.error, "suspect": False}


def _scripts(state: _BuildState, kind: str) -> tuple[tuple[str, str], ...]:
    """(label, expression) of this build's written checks of ``kind`` ("files" or "run")."""
    written = state.written.checks if state.written else []
    return tuple((("(previous round) " if w.previous else "") + w.check, w.js or "") for w in written
                 if w.kind == kind)


@contextmanager
def _check_sandbox(state: _BuildState) -> Iterator[RepoChecks]:
    """What evaluates this build's files and run checks: a sandbox in the build's Chromium, launched on first
    use and closed after the stage (no browser, or no such checks: they are unverified)."""
    if state.chromium is None or not (_scripts(state, "files") or _scripts(state, "run")):
        yield RepoChecks(None, {})
        return
    with Sandbox(state.chromium) as sandbox:
        yield RepoChecks(sandbox, parsed_sources(state.sources))


def _previous_round(request: TaskRequest, publisher: Publisher, store: BuildStore,
                    state: _BuildState, same_repo: bool = False) -> PreviousRound | None:
    """Round N-1's app (with its checks when the build store knows them), or None for round 1."""
    if request.round == 1:
        return None
    name = repo_name_for(request.task, 1 if same_repo else request.round - 1)
    previous = publisher.load_round(name, deadline=state.deadline)
    if previous is None:
        state.warnings.append(f"round {request.round - 1} repository '{name}' was not found; built from scratch")
        log.warning("previous round not found; building from scratch", extra={"repo": name})
        return None
    checks = store.previous_checks(request.task, request.round - 1)
    written = tuple(store.previous_written(request.task, request.round - 1))
    return PreviousRound(previous.repo_name, previous.commit_sha, previous.files, checks, written)


def _final_tree(tree: PublishedTree, checked: dict[str, bytes], inputs: TreeInputs, config: Config,
                state: _BuildState) -> dict[str, bytes]:
    """The tree to commit: the checked files (the same tree unless a repair changed it), scanned for secrets."""
    files = build_tree(tree.model_files(checked), inputs).files if checked != tree.files else tree.files
    state.warnings.extend(w for w in tree.warnings if w not in state.warnings)
    # attachments kept as attached are the user's own data: only the configured-value match applies to them
    refuse_secrets(files, config.secret_values(), user_supplied=frozenset(inputs.kept_attachments))
    return files


def _notify(request: TaskRequest, published: PublishedCommit, deadline: Deadline, state: _BuildState,
            store: BuildStore) -> bool:
    """Send the notification if the request has an evaluation URL; record success at once, warn on failure."""
    if not request.evaluation_url:
        return False
    with state.stage("notify") as stage:
        payload = notification_payload({**asdict(request), **asdict(published)})
        result = notify(request.evaluation_url, payload, deadline)
        accepted = result.ok
        if not accepted:
            stage.fail(f"not accepted after {result.attempts} attempt(s); last: {result.last_error}")
            state.warnings.append(
                f"the evaluation URL did not accept the notification ({result.attempts} attempt(s), last: "
                f"{result.last_error}); send the same request again to re-send it")
    if accepted:  # recorded before the live check, so a crash after this point never re-notifies
        store.mark_notified(request.nonce)
    return accepted


def _replay(row: BuildRow, request: TaskRequest, services: Services, deadline: Deadline) -> Outcome:
    """Answer a duplicate with the first result, re-sending a notification that had not succeeded."""
    stored = row.result or {}
    body = dict(stored.get("body") or {})
    if row.status == "success" and not row.notified and request.evaluation_url:
        payload = notification_payload({**asdict(request), **body})
        body["notified"] = notify(request.evaluation_url, payload, deadline).ok
        services.store.finish(row.nonce, "success", {**stored, "body": body}, notified=body["notified"])
    log.info("duplicate request answered from the build store", extra={"nonce": row.nonce, "status": row.status})
    return Outcome(stored.get("http_status", 200), {**body, "replayed": True})


def _success_body(request: TaskRequest, published: PublishedCommit, notified: bool,
                  state: _BuildState) -> dict[str, Any]:
    return {
        "status": "success", "task": request.task, "round": request.round, "nonce": request.nonce,
        "repo_url": published.repo_url, "pages_url": published.pages_url, "commit_sha": published.commit_sha,
        "pages_live": published.pages_live, "notified": notified, "timings": state.timings,
        "model": state.usage, "self_check": state.self_check,
        "live_check": state.live_check, "workflow_run": state.workflow_run, "warnings": state.warnings,
        "brief_reading": state.brief_reading, "unmet_checks": state.unmet,
        "written_checks": [w.to_dict() for w in (state.written.checks if state.written else []) if not w.previous],
    }


def _description(brief: str, limit: int = 300) -> str:
    """The first line of the brief, bounded, for repository descriptions and commit titles."""
    first = " ".join(brief.strip().splitlines()[0].split()) if brief.strip() else "Generated app"
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"

