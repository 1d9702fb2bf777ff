"""Exact derived files: derive blocks in a reply, and conversions that equal their source value by value.

The workbook is written by openpyxl and read back by openpyxl to judge the CSV
the service made with another library (python-calamine), so a spelling shared
by both sides cannot hide a wrong value.
"""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest

from tests.conftest import MODEL_KEY, data_uri
from tests.sample_documents import assert_cell_equals, workbook_bytes
from utils.config import ProviderSpec
from utils.deadline import Deadline
from utils.intake.attachments import decode_attachments
from utils.model.derived import Source, derive_files, derive_sources
from utils.model.generate import generate_app
from utils.model.llm import ModelClient
from utils.model.replies import parse_reply
from utils.records import Attachment, AttachmentRef, Attachments, RepoTarget, TaskRequest

XLSX = workbook_bytes()
CSV_TEXT = b"id,name,score,zip\n1,Ada,9.5,02139\n2,Linus,,10001\n3,\"Grace, R.\",-7,\n"


def attachment(path: str, data: bytes, media_type: str = "application/octet-stream", name: str = "") -> Attachment:
    return Attachment(name=name or path, path=path, data=data, media_type=media_type, preview="")


SOURCES = derive_sources(Attachments(files=(
    attachment("data.xlsx", XLSX, name="Data Sheet.xlsx"), attachment("scores.csv", CSV_TEXT, "text/csv"),
    attachment("rows.json", b'[{"a": 1, "b": "x"}, {"b": "y", "c": [1, 2]}, {"a": null}]'),
)))


def derived(reply: str, sources: dict[str, Source] = SOURCES) -> tuple[dict[str, bytes], list[str]]:
    """The files the reply's derive blocks make, and the problems."""
    return derive_files(parse_reply(reply).derived, sources, protected=["data.xlsx", "scores.csv", "rows.json"])


def block(target: str, *lines: str) -> str:
    return f"{target}\n```derive\n" + "\n".join(lines) + "\n```\n"


@pytest.mark.parametrize("sheet", ["Sales", "Targets"])
def test_an_xlsx_sheet_becomes_a_csv_equal_to_it_value_by_value(sheet):
    files, problems = derived(block("out.csv", "from: data.xlsx", f"sheet: {sheet}"))
    assert problems == []
    rows = list(csv.reader(io.StringIO(files["out.csv"].decode("utf-8"))))
    expected = [[cell.value for cell in row] for row in openpyxl.load_workbook(io.BytesIO(XLSX))[sheet].iter_rows()]
    assert len(rows) == len(expected)
    for got_row, want_row in zip(rows, expected, strict=False):
        assert len(got_row) == len(want_row)
        for text, value in zip(got_row, want_row, strict=False):
            assert_cell_equals(text, value)


def test_the_first_sheet_is_the_default_and_the_sent_name_works_as_source():
    files, problems = derived(block("data.csv", "from: Data Sheet.xlsx"))
    assert problems == []
    assert files["data.csv"].decode().splitlines()[:2] == [
        "date,region,units,price,note,paid,shipped_at", "2024-01-05,North,12,19.99,,TRUE,2024-01-06 09:30:00"]


def test_a_sheet_becomes_json_records_with_typed_values():
    files, problems = derived(block("targets.json", "from: ./data.xlsx", "sheet: targets"))
    assert problems == []
    assert json.loads(files["targets.json"]) == [
        {"region": "North", "target": 100}, {"region": "South", "target": 250.75}, {"region": "West", "target": None}]


def test_csv_becomes_json_with_number_columns_typed_and_codes_kept_as_text():
    files, problems = derived(block("scores.json", "from: scores.csv"))
    assert problems == []
    assert json.loads(files["scores.json"]) == [
        {"id": 1, "name": "Ada", "score": 9.5, "zip": "02139"},
        {"id": 2, "name": "Linus", "score": None, "zip": "10001"},
        {"id": 3, "name": "Grace, R.", "score": -7, "zip": ""}]


def test_json_records_become_csv_and_copies_are_byte_for_byte():
    files, problems = derived(block("rows.csv", "from: rows.json") + block("copy/scores.csv", "from scores.csv"))
    assert problems == []
    assert files["rows.csv"].decode() == 'a,b,c\n1,x,\n,y,"[1, 2]"\n,,\n'
    assert files["copy/scores.csv"] == CSV_TEXT


@pytest.mark.parametrize("reply, problem", [
    (block("out.csv", "from: nowhere.xlsx"), "'nowhere.xlsx', which is not an attachment"),
    (block("out.csv", "from: data.xlsx", "sheet: Missing"), "no sheet 'Missing' (its sheets: 'Sales', 'Targets')"),
    (block("out.png", "from: data.xlsx"), "not a supported conversion"),
    (block("scores.csv", "from: data.xlsx"), "'scores.csv' is an attachment"),
    (block("out.csv", "sheet: Sales"), "names no source"),
])
def test_requests_that_cannot_be_met_are_problems_for_the_re_ask(reply, problem):
    files, problems = derived(reply)
    assert files == {}
    assert len(problems) == 1 and problem in problems[0]


def test_a_broken_workbook_is_reported_not_raised():
    sources = {"bad.xlsx": Source("bad.xlsx", b"PK\x03\x04 not really a workbook")}
    files, problems = derived(block("out.csv", "from: bad.xlsx"), sources)
    assert files == {} and "not a readable spreadsheet" in problems[0]


def test_derive_blocks_sit_beside_whole_files_in_one_reply():
    reply = ("index.html\n```html\n<!doctype html><title>t</title><script>fetch('./data.csv')</script>\n```\n\n"
             + block("data.csv", "from: data.xlsx"))
    parsed = parse_reply(reply)
    assert list(parsed.files) == ["index.html"] and parsed.derived == [("data.csv", "from: data.xlsx\n")]
    assert parsed.problems == []


def test_generation_makes_derived_files_and_re_asks_about_a_request_it_cannot_meet(model):
    page = "index.html\n```html\n<!doctype html><title>t</title><script>fetch('./data.csv')</script>\n```\n\n"
    model.enqueue(page + block("data.csv", "from: data.xlsx", "sheet: Totals"),
                  page + block("data.csv", "from: data.xlsx", "sheet: Targets"))
    client = ModelClient([ProviderSpec("openai", model.base_url, MODEL_KEY, "scripted-model", "OPENAI_API_KEY")],
                         timeout=5.0, max_tokens=256)
    request = TaskRequest(email="a@b.test", task="t", round=1, nonce="n", brief="Publish data.csv from data.xlsx.",
                          attachments=(AttachmentRef("data.xlsx", data_uri(XLSX, "application/octet-stream")),))
    app = generate_app(request, decode_attachments(request.attachments), RepoTarget("t", "http://r", "http://p/"),
                       None, client, Deadline(30))
    assert app.derived == ("data.csv",)
    assert app.files["data.csv"] == b"region,target\nNorth,100\nSouth,250.75\nWest,\n"
    reask = model.history[1].json["messages"][-1]["content"]
    assert "no sheet 'Totals' (its sheets: 'Sales', 'Targets')" in reask
    assert "Sheet `Sales`" in model.history[0].json["messages"][1]["content"]
