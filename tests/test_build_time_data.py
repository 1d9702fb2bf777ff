"""End to end: tasks whose results depend on data the model cannot see without the service.

A local data site plays a public JSON API (SEC-like: it refuses a User-Agent
without a contact) and a CSV endpoint; the brief names them. The scripted model
knows only what its prompt says: it computes the figures from the data the
prompt carries, and invents them when the data is missing, so the published
figures are right only when the fetch reached the prompt. The service runs with
``FETCH_ALLOW_PRIVATE=true`` because the site is on loopback.
"""

from __future__ import annotations

import csv
import io
import json
import re

import openpyxl
import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.check_lanes import CHECK_WRITING
from tests.conftest import data_uri, task_request
from tests.fakes.data_site import DataSite, Document
from tests.sample_documents import assert_cell_equals, workbook_bytes

CONCEPT_PATH = "/api/xbrl/companyconcept/CIK0000320193/dei/EntityCommonStockSharesOutstanding.json"
SHARES = [{"end": f"{2015 + n // 25}-{n % 12 + 1:02d}-28", "val": 15_000_000_000 + (n * 7_919_113) % 2_000_000_007,
           "accn": f"0000320193-{n:06d}", "fy": 2015 + n // 25, "fp": "FY", "form": "10-K",
           "filed": f"{2015 + n // 25}-11-01"} for n in range(250)]
CONCEPT = {"cik": 320193, "taxonomy": "dei", "tag": "EntityCommonStockSharesOutstanding", "entityName": "Apple Inc.",
           "units": {"shares": SHARES}}
PRICES = b"day,close\n2024-01-02,185.64\n2024-01-03,184.25\n2024-01-04,181.91\n"
INVENTED = {"max": {"val": 1, "fy": 1999}, "min": {"val": 0, "fy": 1999}}


@pytest.fixture
def site():
    with DataSite({CONCEPT_PATH: Document(json.dumps(CONCEPT).encode(), needs_contact=True),
                   "/prices.csv": Document(PRICES, "text/csv")}) as server:
        yield server


def sec_brief(site: DataSite) -> str:
    return (f"Fetch {site.url}{CONCEPT_PATH} (set a descriptive User-Agent per SEC guidance). Filter units.shares "
            "to entries with fy > 2020. Save data.json with the max and min val as "
            '{"max": {"val", "fy"}, "min": {"val", "fy"}}. Also fetch '
            f"{site.url}/prices.csv and show the total of its close column in #total.")


def fenced_after(prompt: str, heading: str) -> str | None:
    """The body of the first fenced block after ``heading`` in the prompt, if the heading is there."""
    match = re.search(re.escape(heading) + r"[^\n]*\n```\w*\n(.*?)\n```", prompt, re.S)
    return match.group(1) if match else None


def user_prompt(body: dict) -> str:
    return "\n".join(str(m["content"]) for m in body["messages"] if m["role"] == "user")


def sec_model(body: dict) -> str:
    """A model that knows only its prompt: figures from the data shown, invented ones when none is."""
    prompt = user_prompt(body)
    table = fenced_after(prompt, "Array `$.units.shares`")
    figures = INVENTED
    if table:
        rows = [r for r in csv.DictReader(io.StringIO(table)) if r["end"] and int(r["fy"]) > 2020]
        high = max(rows, key=lambda r: int(r["val"]))
        low = min(rows, key=lambda r: int(r["val"]))
        figures = {"max": {"val": int(high["val"]), "fy": int(high["fy"])},
                   "min": {"val": int(low["val"]), "fy": int(low["fy"])}}
    prices = fenced_after(prompt, "CSV, ")
    total = round(sum(float(r["close"]) for r in csv.DictReader(io.StringIO(prices))), 2) if prices else 0
    return ("index.html\n```html\n<!doctype html><html><head><title>Shares</title></head><body>"
            f"<p id=\"total\">{total}</p><script>fetch('./data.json')</script></body></html>\n```\n\n"
            f"data.json\n```json\n{json.dumps(figures)}\n```\n\n"
            "README.md\n````markdown\n# Shares\n\nFigures from the fetched data.\n\n## License\n\nMIT\n````\n")


def test_a_sec_like_task_publishes_the_true_figures(start_service, model, site):
    service = start_service(FETCH_ALLOW_PRIVATE="true")
    model.default_reply = sec_model
    response = service.post(task_request(brief=sec_brief(site), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warnings"] == [] and "fetch" in body["timings"]

    recent = [s for s in SHARES if s["fy"] > 2020]
    high, low = max(recent, key=lambda s: s["val"]), min(recent, key=lambda s: s["val"])
    published = requests.get(body["pages_url"] + "data.json", timeout=10).json()
    assert published == {"max": {"val": high["val"], "fy": high["fy"]}, "min": {"val": low["val"], "fy": low["fy"]}}
    page = requests.get(body["pages_url"], timeout=10).text
    assert '<p id="total">551.8</p>' in page

    agents = {seen.headers.get("User-Agent") for seen in site.requests}
    assert len(site.requests) == 2 and all("student@example.com" in agent for agent in agents)
    prompt = user_prompt(model.history[0].json)
    assert f"<{site.url}{CONCEPT_PATH}>" in prompt and "HTTP status 200" in prompt


@pytest.mark.browser
def test_the_check_writing_call_sees_the_fetched_data_too(start_service, model, site):
    """Written checks can compare published figures with the source: the check writer is shown the data."""
    service = start_service(FETCH_ALLOW_PRIVATE="true", SELF_CHECK="auto", CHROMIUM_PATH=chromium_or_skip(),
                            SELF_CHECK_REPAIRS="0")
    model.default_reply = sec_model
    check = "data.json holds the max and min shares outstanding for fiscal years after 2020"
    response = service.post(task_request(brief=sec_brief(site), attachments=[], checks=[check]))
    assert response.status_code == 200, response.text
    writer_prompt = user_prompt(model.lane(CHECK_WRITING).history[0].json)
    assert check in writer_prompt
    assert fenced_after(writer_prompt, "Array `$.units.shares`") == fenced_after(
        user_prompt(model.history[0].json), "Array `$.units.shares`") is not None


def test_a_fetch_that_fails_is_shown_to_the_model_and_warned_about_and_the_build_goes_on(start_service, model, site):
    service = start_service(FETCH_ALLOW_PRIVATE="true", FETCH_USER_AGENT="anonymous-bot/1.0")
    model.default_reply = sec_model
    response = service.post(task_request(brief=sec_brief(site), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    warnings = response.json()["warnings"]
    assert warnings == [f"build-time fetch of {site.url}{CONCEPT_PATH} failed: HTTP 403 FORBIDDEN"]
    prompt = user_prompt(model.history[0].json)
    assert "The fetch FAILED (`HTTP 403 FORBIDDEN`)" in prompt
    published = requests.get(response.json()["pages_url"] + "data.json", timeout=10).json()
    assert published == INVENTED  # the model had nothing to compute from: what a grader would catch


def test_with_the_policy_as_shipped_a_loopback_url_is_refused_and_never_contacted(start_service, model, site):
    service = start_service()
    model.default_reply = sec_model
    response = service.post(task_request(brief=sec_brief(site), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    assert all("refused: 127.0.0.1 is loopback" in w for w in response.json()["warnings"])
    assert len(response.json()["warnings"]) == 2 and site.requests == []


def xlsx_model(body: dict) -> str:
    """Asks for data.csv with a derive block when the prompt shows the workbook's Sales sheet."""
    prompt = user_prompt(body)
    rows = re.search(r"Sheet `Sales`: ([\d,]+) rows", prompt)
    derive = "data.csv\n```derive\nfrom: data.xlsx\nsheet: Sales\n```\n\n" if rows else ""
    count = int(rows.group(1)) - 1 if rows else 0
    return ("index.html\n```html\n<!doctype html><html><head><title>Rows</title></head><body>"
            f"<p id=\"rows\">{count}</p><script>fetch('./data.csv')</script></body></html>\n```\n\n" + derive +
            "README.md\n````markdown\n# Rows\n\nConverted data.\n\n## License\n\nMIT\n````\n")


def test_an_xlsx_to_csv_task_publishes_an_exact_csv(start_service, model):
    service = start_service()
    model.default_reply = xlsx_model
    xlsx = workbook_bytes()
    response = service.post(task_request(
        brief="Publish data.csv converted from data.xlsx (sheet Sales) and show its data row count in #rows.",
        attachments=[{"name": "data.xlsx", "url": data_uri(xlsx, "application/vnd.openxmlformats-officedocument"
                                                                 ".spreadsheetml.sheet")}], checks=[]))
    assert response.status_code == 200, response.text
    pages = response.json()["pages_url"]
    assert requests.get(pages + "data.xlsx", timeout=10).content == xlsx
    published = requests.get(pages + "data.csv", timeout=10).content.decode("utf-8")
    rows = list(csv.reader(io.StringIO(published)))
    expected = [[cell.value for cell in row] for row in openpyxl.load_workbook(io.BytesIO(xlsx))["Sales"].iter_rows()]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=False):
        for text, value in zip(got, want, strict=True):
            assert_cell_equals(text, value)
    assert '<p id="rows">5</p>' in requests.get(pages, timeout=10).text
    prompt = user_prompt(model.history[0].json)
    assert "date,region,units,price,note,paid,shipped_at" in prompt and "Sheet `Targets`" in prompt
