"""End to end: exact figures from data too large for the prompt, through computed derive blocks.

A local data site plays the SEC's companyconcept API with 3,000 filings (about
450 KB): the prompt can show only part of them, and the true minimum sits in
the part it leaves out. The scripted model knows only its prompt: when the
prompt offers `js:` functions it sends one, otherwise it reads the figures off
the rows it was shown, as a model would. The published files must hold the
exact figures, computed by the service from every row. The service runs with
``FETCH_ALLOW_PRIVATE=true`` because the site is on loopback.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import defaultdict

import pytest
import requests

from tests.browser_support import chromium_or_skip
from tests.conftest import data_uri, task_request
from tests.fakes.data_site import DataSite, Document
from utils.model.derived import NO_SCRIPTS

pytestmark = pytest.mark.browser

CIK = "CIK0000875045"
CONCEPT_PATH = f"/api/xbrl/companyconcept/{CIK}/dei/EntityCommonStockSharesOutstanding.json"
COMPUTES = "it receives every row, also any left out below"  # the prompt's words when `js:` is available
PAGE = ("index.html\n```html\n<!doctype html><html><head><title>Biogen Inc.</title></head><body>"
        "<p id=\"share-max-value\"></p><p id=\"share-min-value\"></p><script>"
        "fetch('./data.json').then(r => r.json()).then(d => {"
        "document.querySelector('#share-max-value').textContent = d.max.val;"
        "document.querySelector('#share-min-value').textContent = d.min.val; });"
        "</script></body></html>\n```\n\n")
README = "README.md\n````markdown\n# Shares\n\nFigures computed from the data.\n\n## License\n\nMIT\n````\n"
SHARE_SCRIPT = """(doc) => {
    const rows = doc.units.shares.filter(r => String(r.fy) > "2020" && typeof r.val === "number");
    const max = rows.reduce((a, b) => (b.val > a.val ? b : a));
    const min = rows.reduce((a, b) => (b.val < a.val ? b : a));
    return {entityName: doc.entityName, max: {val: max.val, fy: String(max.fy)},
            min: {val: min.val, fy: String(min.fy)}};
  }"""


def filings(count: int = 3000, seed: int = 11) -> list[dict]:
    """SEC-shaped share filings; the smallest value after 2020 is placed in the middle, where prompts cut."""
    pick = random.Random(seed)
    rows = [{"end": f"{2009 + n * 16 // count}-{n % 12 + 1:02d}-28", "val": pick.randrange(100_000_000, 999_999_999),
             "accn": f"0000875045-{n:08d}", "fy": 2009 + n * 16 // count, "fp": pick.choice(["Q1", "Q2", "Q3", "FY"]),
             "form": pick.choice(["10-Q", "10-K"]), "filed": f"{2009 + n * 16 // count}-11-01",
             "frame": f"CY{2009 + n * 16 // count}Q{n % 4 + 1}I"} for n in range(count)]
    after = [n for n, row in enumerate(rows) if row["fy"] > 2020]
    middle = after[len(after) // 3]
    rows[middle]["val"] = 12_345_678  # the true minimum, far from the head and tail of the table
    return rows


FILINGS = filings()
DOCUMENT = {"cik": 875045, "taxonomy": "dei", "tag": "EntityCommonStockSharesOutstanding",
            "label": "Entity Common Stock, Shares Outstanding", "entityName": "Biogen Inc.",
            "units": {"shares": FILINGS}}


def expected_figures() -> dict:
    recent = [row for row in FILINGS if row["fy"] > 2020]
    high, low = max(recent, key=lambda r: r["val"]), min(recent, key=lambda r: r["val"])
    return {"entityName": "Biogen Inc.", "max": {"val": high["val"], "fy": str(high["fy"])},
            "min": {"val": low["val"], "fy": str(low["fy"])}}


def user_prompt(body: dict) -> str:
    return "\n".join(str(m["content"]) for m in body["messages"] if m["role"] == "user")


def system_prompt(body: dict) -> str:
    return "\n".join(str(m["content"]) for m in body["messages"] if m["role"] == "system")


def derive_block(target: str, source: str, script: str) -> str:
    body = "\n".join("  " + line for line in script.splitlines())
    return f"{target}\n```derive\nfrom: {source}\njs: |\n{body}\n```\n\n"


def share_model(url: str):
    """A model that computes with `js:` when its prompt offers it, else types what it can read off the table."""

    def reply(body: dict) -> str:
        prompt = user_prompt(body)
        if COMPUTES in prompt:
            return PAGE + derive_block("data.json", url, SHARE_SCRIPT) + README
        table = re.search(r"Array `\$\.units\.shares`[^\n]*\n```csv\n(.*?)\n```", prompt, re.S)
        rows = [r for r in csv.DictReader(io.StringIO(table.group(1)))
                if (r["fy"] or "").isdigit() and int(r["fy"]) > 2020]  # not the "… items left out …" line
        high, low = max(rows, key=lambda r: int(r["val"])), min(rows, key=lambda r: int(r["val"]))
        typed = {"entityName": "Biogen Inc.", "max": {"val": int(high["val"]), "fy": high["fy"]},
                 "min": {"val": int(low["val"]), "fy": low["fy"]}}
        return PAGE + f"data.json\n```json\n{json.dumps(typed)}\n```\n\n" + README

    return reply


@pytest.fixture
def site():
    with DataSite({CONCEPT_PATH: Document(json.dumps(DOCUMENT).encode(), needs_contact=True)}) as server:
        yield server


def share_brief(url: str) -> str:
    return (f"Fetch {url} (set a descriptive User-Agent). Filter `.units.shares[]` for entries whose `fy` > "
            '"2020" and a numeric `val`. Save data.json as {"entityName", "max": {"val", "fy"}, "min": {"val", '
            '"fy"}} and show the values in #share-max-value and #share-min-value.')


def test_a_share_volume_task_over_3000_filings_publishes_the_exact_max_and_min(start_service, model, site):
    url = site.url + CONCEPT_PATH
    service = start_service(FETCH_ALLOW_PRIVATE="true", CHROMIUM_PATH=chromium_or_skip())
    model.default_reply = share_model(url)
    response = service.post(task_request(brief=share_brief(url), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []
    published = requests.get(response.json()["pages_url"] + "data.json", timeout=10)
    assert published.json() == expected_figures()
    assert published.text == json.dumps(expected_figures(), indent=2) + "\n"

    prompt = user_prompt(model.history[0].json)
    assert "items left out" in prompt and COMPUTES in prompt  # which rows were cut, and that the function sees all
    assert "12345678" not in prompt  # the true minimum was never shown to the model
    assert "js: |" in system_prompt(model.history[0].json)
    assert len(model.history) == 1


def test_without_the_function_the_same_task_publishes_a_wrong_minimum(start_service, model, site):
    """What the computed derive is for: the model can only read the rows its prompt shows."""
    url = site.url + CONCEPT_PATH
    service = start_service(FETCH_ALLOW_PRIVATE="true", CHROMIUM_PATH="/nonexistent/chromium")
    model.default_reply = share_model(url)
    response = service.post(task_request(brief=share_brief(url), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    published = requests.get(response.json()["pages_url"] + "data.json", timeout=10).json()
    assert published["min"] != expected_figures()["min"]  # the true minimum was in the rows left out
    assert "cannot compute files from data" in system_prompt(model.history[0].json)
    assert COMPUTES not in user_prompt(model.history[0].json)


def test_without_a_browser_a_function_is_refused_and_the_re_ask_names_the_browser_extra(start_service, model, site):
    url = site.url + CONCEPT_PATH
    service = start_service(FETCH_ALLOW_PRIVATE="true", CHROMIUM_PATH="/nonexistent/chromium")
    model.enqueue(PAGE + derive_block("data.json", url, SHARE_SCRIPT) + README,
                  PAGE + derive_block("data.json", url, SHARE_SCRIPT) + README)
    response = service.post(task_request(brief=share_brief(url), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    assert f"'data.json': {NO_SCRIPTS}" in user_prompt(model.history[1].json)
    warnings = response.json()["warnings"]
    assert warnings == ["a derive block was still not honoured after the re-ask, so its file was not written: "
                        f"'data.json': {NO_SCRIPTS}"]
    assert requests.get(response.json()["pages_url"] + "data.json", timeout=10).status_code == 404


def test_an_unknown_key_and_a_throwing_function_are_re_asked_never_copied(start_service, model, site):
    """The silent copy of issue 22: `from: <SEC URL>` plus a key the service did not know published the source."""
    url = site.url + CONCEPT_PATH
    service = start_service(FETCH_ALLOW_PRIVATE="true", CHROMIUM_PATH=chromium_or_skip())
    unknown = f"data.json\n```derive\nfrom: {url}\nfilter: fy > 2020\n```\n\n"
    throwing = derive_block("summary.json", url, "(doc) => doc.units.shares.at(-1).val.toFixed()")
    throwing = throwing.replace("doc.units.shares", "doc.facts.shares")
    model.enqueue(PAGE + unknown + throwing + README)
    model.default_reply = share_model(url)
    response = service.post(task_request(brief=share_brief(url), attachments=[], checks=[]))
    assert response.status_code == 200, response.text
    reask = user_prompt(model.history[1].json)
    assert ("the derive block for 'data.json' has the key `filter`, which the service does not know; the keys are "
            "`from`, `sheet`, `js`") in reask
    assert ("'summary.json': the function threw TypeError: Cannot read properties of undefined (reading 'shares')"
            in reask)
    pages = response.json()["pages_url"]
    assert requests.get(pages + "data.json", timeout=10).json() == expected_figures()
    assert requests.get(pages + "summary.json", timeout=10).status_code == 404
    assert response.json()["warnings"] == []


def sales(rows: int = 1000, seed: int = 5) -> tuple[bytes, list[dict]]:
    pick = random.Random(seed)
    records = [{"order": n + 1, "product": f"P-{pick.randrange(40):02d}", "category": pick.choice("ABCDEFG"),
                "amount": pick.randrange(1, 50_000)} for n in range(rows)]
    text = "order,product,category,amount\n" + "".join(
        f"{r['order']},{r['product']},{r['category']},{r['amount']}\n" for r in records)
    return text.encode(), records


def test_a_1000_row_csv_total_and_top_3_by_group_are_published_exactly(start_service, model):
    data, records = sales()
    script = """(rows) => {
    const byCategory = {};
    for (const row of rows) byCategory[row.category] = (byCategory[row.category] || 0) + row.amount;
    const top3 = Object.entries(byCategory).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([category, amount]) => ({category, amount}));
    return {total: rows.reduce((sum, row) => sum + row.amount, 0), top3};
  }"""
    page = PAGE.replace("Biogen Inc.", "Sales")
    model.default_reply = lambda body: (page + derive_block("summary.json", "sales.csv", script) + README
                                        if "js: |" in system_prompt(body) else page + README)
    service = start_service(CHROMIUM_PATH=chromium_or_skip())
    response = service.post(task_request(
        brief="Publish summary.json with the total amount of sales.csv and the top 3 categories by amount.",
        attachments=[{"name": "sales.csv", "url": data_uri(data)}], checks=[]))
    assert response.status_code == 200, response.text
    by_category: dict[str, int] = defaultdict(int)
    for record in records:
        by_category[record["category"]] += record["amount"]
    top3 = sorted(by_category.items(), key=lambda item: -item[1])[:3]
    published = requests.get(response.json()["pages_url"] + "summary.json", timeout=10).json()
    assert published == {"total": sum(r["amount"] for r in records),
                         "top3": [{"category": c, "amount": a} for c, a in top3]}
    prompt = user_prompt(model.history[0].json)
    assert "1,000 data rows" in prompt and "1000,P-" not in prompt  # the prompt showed only the CSV's first rows
