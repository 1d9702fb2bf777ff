"""The self-check stage: judge the app in headless Chromium before publishing, repair, keep the best.

Pages are served from memory on loopback; CDN URLs are routed to the
hand-written stand-ins in tests/fixtures/cdn and every other host is cut off,
so no test reaches the internet. The model is the scripted local server.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.conftest import MODEL_KEY
from tests.fakes.openai_server import ScriptedModel
from tests.fixtures import cdn_routes
from utils.checks.model_json import CallRecord
from utils.checks.plan import implied_seconds, plan_checks, query_parameters, sample_value, waived_by_brief
from utils.checks.selfcheck import CheckSubject, SelfCheckOptions, check_live, publish_reserve, self_check
from utils.checks.site_server import StaticSite
from utils.checks.writer import WrittenChecks
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.errors import NotConfigured
from utils.model.edits import apply_reply
from utils.model.llm import ModelClient
from utils.records import Check

CHECK_SECONDS = 1.5
REPO = "demo-app-1"

COUNTER_INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Counter</title></head>
<body><h1>Counter</h1><div id="count">0</div><script src="app.js"></script></body></html>
"""
BROKEN_SCRIPT = b"document.querySelector('#cont').textContent = '3';\n"
COUNT_CHECK = Check("The count shows 3", "document.querySelector('#count').textContent === '3'")
FIX_REPLY = """The selector had a typo.

app.js
```js
<<<<<<< SEARCH
document.querySelector('#cont').textContent = '3';
=======
document.querySelector('#count').textContent = '3';
>>>>>>> REPLACE
```
"""
WORSE_REPLY = """app.js
```js
console.error('still broken');
throw new Error('worse than before');
```
"""
UNAPPLICABLE_REPLY = """app.js
```js
<<<<<<< SEARCH
this line is not in the file
=======
neither is this one
>>>>>>> REPLACE
```
"""

SALES_INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sales</title></head>
<body><p>Total: <span id="total">...</span></p>
<script>
fetch('./data.csv').then(r => r.text()).then(text => {
  const total = text.trim().split('\\n').slice(1).reduce((sum, row) => sum + Number(row.split(',')[1]), 0);
  setTimeout(() => { document.querySelector('#total').textContent = String(total); }, 300);
});
</script></body></html>
"""
SALES_CSV = b"region,sales\nnorth,30\nsouth,12\n"

GREETER_INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Greeter</title></head>
<body><p id="greeting"></p>
<script>
const name = new URLSearchParams(location.search).get('name') || 'world';
document.querySelector('#greeting').textContent = 'Hello, ' + name + '!';
</script></body></html>
"""

CDN_INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Libraries</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css">
<script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js"></script>
<script src="https://unpkg.com/marked@12.0.2/marked.min.js"></script>
<script src="https://cdnjs.cloudflare.com/ajax/libs/Chart.js/4.4.1/chart.umd.min.js"></script>
<script src="https://cdn.jsdelivr.net/npm/not-copied@1.0.0/missing.js"></script>
<script src="https://example.com/tracker.js"></script>
</head>
<body><button class="btn">OK</button><canvas id="chart"></canvas>
<script>new Chart(document.getElementById('chart'), {type: 'bar', data: {labels: [], datasets: []}});</script>
</body></html>
"""
CDN_CHECKS = [
    Check("Bootstrap's JavaScript is loaded", "typeof bootstrap.Tooltip === 'function'"),
    Check("Bootstrap's CSS is applied", "getComputedStyle(document.querySelector('.btn')).display === 'inline-block'"),
    Check("marked renders Markdown", "marked.parse('# Hi').includes('<h1>')"),
    Check("A chart was drawn", "Chart.instances.length === 1"),
]


@pytest.fixture
def client(model: ScriptedModel) -> ModelClient:
    """A model client for the scripted server."""
    spec = ProviderSpec("openai", model.base_url, MODEL_KEY, "scripted-model", "OPENAI_API_KEY")
    return ModelClient([spec], timeout=30, max_tokens=4000)


@pytest.fixture
def chromium() -> str:
    """The installed Chromium (skipped locally without one, failing under CI)."""
    return chromium_or_skip()


def run(files: dict[str, bytes], checks: list[Check], model: ModelClient, chromium_path: str | None,
        deadline: Deadline | None = None, previous_checks: list[Check] | None = None, brief: str = "", **options):
    """self_check with the test defaults: offline CDN routes, short polling, a roomy deadline."""
    settings = SelfCheckOptions(**{"mode": "auto", "chromium_path": chromium_path, "route_cdn": cdn_routes(),
                                   "check_timeout": CHECK_SECONDS, **options})
    return self_check(files, CheckSubject(checks, previous_checks or [], brief), repo_name=REPO, model=model,
                      deadline=deadline or Deadline(600), options=settings)


def prompt_of(model: ScriptedModel, index: int) -> str:
    """The user message of the model request number ``index``."""
    return model.history[index].json["messages"][-1]["content"]


# ---------------------------------------------------------------- repairing

@pytest.mark.browser
def test_broken_app_is_repaired_and_the_request_names_the_failure(
        chromium: str, client: ModelClient, model: ScriptedModel, caplog: pytest.LogCaptureFixture) -> None:
    """A page error and a failing check go to the model; its fix is kept and passes."""
    model.enqueue(FIX_REPLY)
    original = {"index.html": COUNTER_INDEX, "app.js": BROKEN_SCRIPT}
    with caplog.at_level(logging.INFO, logger="utils.checks.selfcheck"):
        files, report = run(original, [COUNT_CHECK], client, chromium)
    assert files["app.js"] == FIX_REPLY.split("=======\n")[1].split(">>>>>>>")[0].encode()
    assert (report.before, report.after, report.repairs, report.chosen) == ((0, 1), (1, 0), 1, 1)
    assert report.failing == [] and report.errors == [] and report.errors_before == 1
    assert report.stop_reason == "passed"
    request = prompt_of(model, 0)
    assert COUNT_CHECK.js in request and "returned: `false`" in request
    assert "TypeError: Cannot set properties of null" in request
    assert "#count: 1 match(es)" in request and '<div id="count">0</div>' in request  # the DOM excerpt
    assert "document.querySelector('#cont')" in request  # the current files
    [line] = [r for r in caplog.records if r.getMessage() == "self-check finished"]
    assert (line.before_passed, line.before_failed, line.after_passed, line.after_failed) == (0, 1, 1, 0)
    assert line.seconds > 0 and COUNT_CHECK.js not in json.dumps(vars(line), default=str)


@pytest.mark.browser
def test_unfixable_app_keeps_the_best_version_and_names_failing_checks(
        chromium: str, client: ModelClient, model: ScriptedModel) -> None:
    """A worse repair is examined but not kept, an unusable one is reported to the next request."""
    model.enqueue(WORSE_REPLY, UNAPPLICABLE_REPLY)
    original = {"index.html": COUNTER_INDEX, "app.js": BROKEN_SCRIPT}
    files, report = run(original, [COUNT_CHECK], client, chromium, repairs=2)
    assert files == original
    assert (report.chosen, report.repairs, report.stop_reason) == (0, 2, "repairs exhausted")
    assert report.failing == ["The count shows 3"] and (report.before, report.after) == ((0, 1), (0, 1))
    assert [v["errors"] for v in report.versions] == [1, 2]  # the unapplicable reply was never examined
    assert "worse than before" in prompt_of(model, 1) and "Earlier repair attempts" in prompt_of(model, 1)
    assert len(model.history) == 2


@pytest.mark.browser
def test_no_repair_starts_without_time_beyond_the_publishing_reserve(
        chromium: str, client: ModelClient, model: ScriptedModel) -> None:
    """With a short deadline the app is judged once and returned as it is."""
    original = {"index.html": COUNTER_INDEX, "app.js": BROKEN_SCRIPT}
    files, report = run(original, [COUNT_CHECK], client, chromium, deadline=Deadline(14))
    assert files == original and report.ran and report.stop_reason == "no time left"
    assert model.history == [] and report.failing == ["The count shows 3"]


# ---------------------------------------------------------------- what is judged

@pytest.mark.browser
def test_promise_and_attachment_fetch_checks_pass(chromium: str, client: ModelClient, model: ScriptedModel) -> None:
    """A promise is awaited, a check true only after the attachment is fetched passes by polling."""
    checks = [Check("data.csv is served", "fetch('./data.csv').then(r => r.text()).then(t => t.includes('north'))"),
              Check("The total is 42", "document.querySelector('#total').textContent === '42'"),
              Check("The page looks tidy")]
    files, report = run({"index.html": SALES_INDEX, "data.csv": SALES_CSV}, checks, client, chromium)
    assert (report.before, report.after, report.errors) == ((2, 0), (2, 0), [])
    assert report.unjudged == ["The page looks tidy"] and report.repairs == 0 and model.history == []
    assert files == {"index.html": SALES_INDEX, "data.csv": SALES_CSV}


@pytest.mark.browser
def test_query_string_check_is_judged_on_a_page_loaded_with_the_parameter(
        chromium: str, client: ModelClient) -> None:
    """A check that mentions ?name=Ada is judged with it; the others on the plain URL."""
    checks = [Check("Opening ?name=Ada greets Ada",
                    "document.querySelector('#greeting').textContent === 'Hello, Ada!'"),
              Check("Without a name it greets the world",
                    "document.querySelector('#greeting').textContent === 'Hello, world!'")]
    _, report = run({"index.html": GREETER_INDEX}, checks, client, chromium)
    assert report.urls == ["./", "./?name=Ada"]
    assert report.after == (2, 0) and report.errors == []


@pytest.mark.browser
def test_previous_round_check_broken_by_the_revision_counts_as_failing(
        chromium: str, client: ModelClient) -> None:
    """Round 2 must keep round 1's checks, except those the new brief explicitly changes."""
    revision = b"<!doctype html><title>New Sales</title><canvas id='chart'></canvas>"
    previous = [Check("The total is shown", "document.querySelector('#total') !== null"),
                Check("The title is Sales", "document.title === 'Sales'")]
    brief = "Add a chart #chart. Change the page title to New Sales."
    _, report = run({"index.html": revision}, [Check("Chart", "document.querySelector('#chart') !== null")],
                    client, chromium, previous_checks=previous, brief=brief, repairs=0)
    assert report.failing == ["(previous round) The total is shown"]
    assert report.waived == ["The title is Sales"]
    assert (report.before, report.stop_reason) == ((1, 1), "no repairs allowed")


@pytest.mark.browser
def test_cdn_libraries_are_routed_to_local_copies(chromium: str, client: ModelClient, model: ScriptedModel) -> None:
    """jsdelivr, unpkg and cdnjs come from tests/fixtures/cdn; nothing else leaves the machine.

    Console errors alone (here the two blocked scripts) are reported but start no repair.
    """
    _, report = run({"index.html": CDN_INDEX}, CDN_CHECKS, client, chromium)
    assert report.after == (4, 0) and report.stop_reason == "passed" and model.history == []
    assert any("not-copied@1.0.0/missing.js" in e for e in report.errors)  # a 404 from the routes
    assert any("example.com/tracker.js" in e and "INTERNET_DISCONNECTED" in e for e in report.errors)


@pytest.mark.browser
def test_check_live_judges_a_published_page(chromium: str) -> None:
    """After deploy the checks run against the live URL, without repairs."""
    with StaticSite("live-repo", {"index.html": COUNTER_INDEX}) as site:
        report = check_live(site.url, [COUNT_CHECK, Check("Has a heading", "!!document.querySelector('h1')")],
                            chromium_path=chromium, deadline=Deadline(60), check_timeout=CHECK_SECONDS)
    assert report.ran and report.after == (1, 1) and report.failing == ["The count shows 3"]
    assert report.model == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}


# ---------------------------------------------------------------- modes

def test_mode_off_skips(client: ModelClient, model: ScriptedModel) -> None:
    """SELF_CHECK=off returns the files untouched with the reason."""
    files = {"index.html": COUNTER_INDEX}
    result, report = run(files, [COUNT_CHECK], client, "/usr/bin/chromium", mode="off")
    assert result is files and (report.ran, report.skipped_reason) == (False, "SELF_CHECK=off")
    assert model.history == []


@pytest.mark.parametrize("chromium_path", [None, "/nonexistent/chromium"])
def test_mode_auto_without_a_browser_skips_and_logs(chromium_path: str | None, client: ModelClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """auto without a usable browser skips and says which variable to set."""
    with caplog.at_level(logging.INFO, logger="utils.checks.selfcheck"):
        _, report = run({"index.html": COUNTER_INDEX}, [COUNT_CHECK], client, chromium_path)
    assert not report.ran and "CHROMIUM_PATH" in (report.skipped_reason or "")
    assert any(r.getMessage() == "self-check skipped" and r.levelno == logging.WARNING for r in caplog.records)
    assert json.loads(json.dumps(report.to_dict()))["before"] == [0, 0]


def test_mode_required_without_a_browser_is_503(client: ModelClient) -> None:
    """required without a browser refuses with NotConfigured naming CHROMIUM_PATH."""
    with pytest.raises(NotConfigured) as caught:
        run({"index.html": COUNTER_INDEX}, [COUNT_CHECK], client, None, mode="required")
    assert caught.value.status == 503 and "CHROMIUM_PATH" in caught.value.message


def test_a_skipped_stage_still_reports_the_check_writing_call() -> None:
    """The check-writing call ran beside generation: its tokens and problems are reported even when the stage
    then skips (here: no time left), so the build's per-call usage is complete."""
    call = CallRecord("check writing", "openai", "scripted-model", 120, 40, 1.5, "unparseable")
    written = WrittenChecks(problems=["check writing reply unusable after one retry: not JSON"], calls=[call])
    files, report = self_check({"index.html": COUNTER_INDEX}, CheckSubject([COUNT_CHECK], written=written),
                               repo_name=REPO, model=ModelClient([], timeout=1, max_tokens=1), deadline=Deadline(1),
                               options=SelfCheckOptions("auto", chromium_path=sys.executable))
    assert not report.ran and report.skipped_reason == "not enough time left before the deadline"
    assert report.calls == [call.to_dict()] and report.problems == written.problems


def test_check_live_without_a_browser_skips() -> None:
    """The after-deploy check never raises; without a browser it reports why it did not run."""
    report = check_live("http://127.0.0.1:9/x/", [COUNT_CHECK], chromium_path=None, deadline=Deadline(60))
    assert not report.ran and "CHROMIUM_PATH" in (report.skipped_reason or "")


# ---------------------------------------------------------------- pieces

def test_static_site_serves_only_the_given_files_under_the_repo_path() -> None:
    """Like Pages: /<repo>/ is the root, folders redirect to their slash, nothing else is reachable."""
    files = {"index.html": b"<p>home</p>", "app.js": b"1", "docs/index.html": b"docs", "404.html": b"gone"}
    with StaticSite("my-repo", files) as site:
        base = site.url.removesuffix("my-repo/")
        home = requests.get(site.url, timeout=5)
        assert (home.status_code, home.text) == (200, "<p>home</p>")
        assert requests.get(site.url + "app.js", timeout=5).headers["Content-Type"].startswith("text/javascript")
        assert requests.get(base + "my-repo", allow_redirects=False, timeout=5).headers["Location"] == "/my-repo/"
        assert requests.get(site.url + "docs", allow_redirects=False, timeout=5).status_code == 301
        for path in ("my-repo/../../etc/passwd", "my-repo/%2e%2e/secret", "other/", "my-repo/missing.js"):
            missing = requests.get(base + path, timeout=5)
            assert (missing.status_code, missing.text) == (404, "gone")


def test_previous_checks_are_waived_only_when_the_brief_changes_them() -> None:
    """A sentence must both name what the check looks at and say that it changes."""
    total = Check("Total", "document.querySelector('#total-sales').textContent.length > 0")
    assert waived_by_brief(total, "Replace #total-sales with a chart.")
    assert waived_by_brief(total, "The total-sales element should now show the average instead.")
    assert not waived_by_brief(total, "Add a table #product-sales. Change the colours.")
    assert not waived_by_brief(total, "Keep #total-sales as it is and add a footer.")


def test_query_parameters_and_sample_values() -> None:
    """Concrete values are used as written; placeholders get a sample suited to the name."""
    checks = [Check("Loading ?city=Paris&days=<n> shows Paris")]
    found = query_parameters(checks, "The page accepts ?url=https://example.com/captcha.png and ?q=...")
    assert found == {"city": "Paris", "days": "", "url": "https://example.com/captcha.png", "q": ""}
    files = {"index.html": b"", "app.js": b"", "sample.png": b"png"}
    assert sample_value("days", "<n>", files, "http://h/r/") == "3"
    assert sample_value("url", "", files, "http://h/r/") == "http://h/r/sample.png"
    assert sample_value("q", "...", files, "http://h/r/") == "sample"
    plan = plan_checks([Check("Title", "document.title === 'X'")], [], "Supports ?theme=dark.", files)
    assert [(v.query, v.indices) for v in plan.visits] == [("", (0,)), ("?theme=dark", (0,))]


def test_polling_time_follows_what_the_check_says() -> None:
    """'within 20 seconds' polls for 20 s; nothing said means the default; never over 60 s."""
    assert implied_seconds("Shows the answer within 20 seconds") == 20
    assert implied_seconds("Updates after 500 ms") == 0.5
    assert plan_checks([Check("ready within 20 s", "x")], [], "", {}).check_timeout == 20
    assert plan_checks([Check("x", "x")], [], "", {}, check_timeout=15).check_timeout == 15
    assert plan_checks([Check("within 300 seconds", "x")], [], "", {}).check_timeout == 60


def test_publish_reserve() -> None:
    """A quarter of the deadline is kept for publishing, at least 60 s unless the deadline is short."""
    assert publish_reserve(Deadline(600)) == 150
    assert publish_reserve(Deadline(120)) == 60
    assert publish_reserve(Deadline(60)) == 30


def test_repair_reply_cannot_change_protected_files() -> None:
    """Attachments and LICENSE stay as given whatever the reply says; unusable replies say why."""
    base = {"index.html": b"<p>x</p>", "data.csv": b"a,b\n1,2\n"}
    reply = "data.csv\n```csv\na,b\n9,9\n```\n\nindex.html\n```html\n<p>y</p>\n```\n"
    applied = apply_reply(reply, base, ["data.csv"])
    files, problems = applied.files, applied.blocking
    assert files == {"index.html": b"<p>y</p>\n", "data.csv": b"a,b\n1,2\n"} and problems == []
    assert apply_reply(UNAPPLICABLE_REPLY, base, []).blocking
