"""What the model sees of fetched documents and of attachments it cannot read (render_source_data)."""

from __future__ import annotations

import json

from tests.sample_documents import docx_bytes, pdf_bytes, workbook_bytes
from utils.intake.fetch import FetchedDocument
from utils.model.prompt import build_messages
from utils.model.source_data import fetch_warnings, render_source_data
from utils.records import Attachment, Attachments, RepoTarget, TaskRequest

URL = "https://data.example.org/api/concept.json"
NO_ATTACHMENTS = Attachments()


def fetched(data: bytes, content_type: str = "application/json", url: str = URL, **fields) -> FetchedDocument:
    return FetchedDocument(url=url, final_url=url, status=200, content_type=content_type, data=data, **fields)


def concept(entries: int) -> dict:
    """A document shaped like the SEC's company-concept API."""
    return {"cik": 320193, "taxonomy": "dei", "tag": "EntityCommonStockSharesOutstanding", "entityName": "Apple Inc.",
            "units": {"shares": [{"end": f"{2000 + n // 4}-{3 * (n % 4) + 1:02d}-15", "val": 1_000_000 + 7919 * n,
                                  "accn": f"0000320193-{n:06d}", "fy": 2000 + n // 4, "fp": f"Q{n % 4 + 1}",
                                  "form": "10-Q", "filed": f"{2000 + n // 4}-12-01"} for n in range(entries)]}}


def test_a_small_json_document_is_shown_whole_with_its_url_status_and_type():
    text = render_source_data([fetched(b'{"max": 5, "rows": [1, 2]}')], NO_ATTACHMENTS, "brief")
    assert f"<{URL}>" in text and "HTTP status 200" in text and "`application/json`" in text and "26 bytes" in text
    assert '{"max": 5, "rows": [1, 2]}' in text


def test_a_large_json_document_shows_structure_its_records_and_what_was_left_out():
    document = concept(3000)
    text = render_source_data([fetched(json.dumps(document, indent=1).encode())], NO_ATTACHMENTS,
                              "Filter units.shares for fy after 2020 and save the max val")
    assert "$.units.shares: array of 3,000 (object)" in text
    assert "$.units.shares[].val: number" in text
    assert "Array `$.units.shares`: 3,000 items as a table" in text
    assert "end,val,accn,fy,fp,form,filed" in text
    first, last = document["units"]["shares"][0], document["units"]["shares"][-1]
    assert f"{first['end']},{first['val']},{first['accn']}" in text  # the head ...
    assert f"{last['end']},{last['val']},{last['accn']}" in text  # ... and the tail
    assert "items left out" in text
    assert len(text) < 130_000


def test_a_record_array_that_fits_is_shown_in_full():
    document = concept(250)
    text = render_source_data([fetched(json.dumps(document).encode())], NO_ATTACHMENTS, "units shares")
    assert "items left out" not in text
    assert all(f",{entry['val']}," in text for entry in document["units"]["shares"])


def test_csv_is_whole_when_small_and_head_and_tail_when_large():
    small = render_source_data([fetched(b"day,close\n1,10.5\n2,11\n", "text/csv")], NO_ATTACHMENTS, "")
    assert "CSV, 2 data rows" in small and "day,close\n1,10.5\n2,11" in small
    rows = "".join(f"{n},{n * 1.5}\n" for n in range(50_000))
    large = render_source_data([fetched(("day,close\n" + rows).encode(), "text/csv; charset=utf-8")],
                               NO_ATTACHMENTS, "")
    assert "Large CSV: header and 50,000 data rows" in large
    assert "\n0,0.0\n" in large and "\n49999,74998.5\n" in large and "rows left out" in large


def test_hostile_shapes_stay_within_the_budget():
    wide = ("h" * 1_000_000 + "\n" + "1\n" * 10).encode()  # one 1 MB header line
    deep = ("[" * 5000 + "]" * 5000).encode()  # deeper than the parser allows: shown as text
    text = render_source_data([fetched(wide, "text/csv"), fetched(deep)], NO_ATTACHMENTS, "")
    assert "more characters]" in text and len(text) < 130_000
    assert "[[[[" in text


def test_failed_fetches_are_shown_to_the_model_and_listed_as_warnings():
    refused = FetchedDocument(url="http://10.0.0.1/x", error="refused: 10.0.0.1 is private")
    forbidden = FetchedDocument(
        url="https://sec.example/x", status=403, content_type="text/html", data=b"Undeclared automated tool",
        error="HTTP 403 Forbidden")
    capped = fetched(b'{"a": [1, 2', truncated=True)
    text = render_source_data([refused, forbidden, capped], NO_ATTACHMENTS, "")
    assert "The fetch FAILED: refused: 10.0.0.1 is private" in text and "do not invent it" in text
    assert "The fetch FAILED (`HTTP 403 Forbidden`)" in text and "Undeclared automated tool" in text
    assert "stopped at the size cap" in text
    assert fetch_warnings([refused, forbidden, capped]) == [
        "build-time fetch of http://10.0.0.1/x failed: refused: 10.0.0.1 is private",
        "build-time fetch of https://sec.example/x failed: HTTP 403 Forbidden",
        f"build-time fetch of {URL} stopped at the size cap (11 bytes read)"]


def test_a_failed_fetch_that_answered_binary_is_described_not_crashed_on():
    """A 404 whose body is an image (NUL bytes) is shown as a failure with a placeholder, never raises."""
    missing = FetchedDocument(url="https://cdn.example/x.json", status=404, content_type="image/png",
                              data=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", error="HTTP 404 Not Found")
    text = render_source_data([missing], NO_ATTACHMENTS, "")
    assert "The fetch FAILED (`HTTP 404 Not Found`)" in text and "(binary)" in text


def doc(path: str, data: bytes, media_type: str) -> Attachment:
    return Attachment(name=path, path=path, data=data, media_type=media_type, preview="")


def test_a_workbook_is_shown_as_a_table_per_sheet():
    book = doc("data.xlsx", workbook_bytes(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    text = render_source_data([], Attachments(files=(book,)), "")
    assert "### Attachment `data.xlsx` (spreadsheet" in text
    assert "Sheet `Sales`: 6 rows" in text and "Sheet `Targets`: 4 rows" in text
    assert "date,region,units,price,note,paid,shipped_at" in text
    assert '2024-02-29,"Östra, ""quoted""",0,-3.25,,TRUE,2024-03-01' in text
    assert "North,100\nSouth,250.75\nWest," in text


def test_a_large_sheet_shows_head_tail_and_its_row_count():
    rows = [["n", "square"]] + [[n, n * n] for n in range(5000)]
    book = doc("big.xlsx", workbook_bytes({"Squares": rows}), "application/octet-stream")
    text = render_source_data([], Attachments(files=(book,)), "")
    assert "Sheet `Squares`: 5,001 rows" in text and "rows left out" in text
    assert "\n0,0\n" in text and "\n4999,24990001\n" in text


def test_pdf_and_docx_are_shown_as_their_text_and_damaged_files_as_unreadable():
    files = (doc("invoice.pdf", pdf_bytes(), "application/pdf"),
             doc("report.docx", docx_bytes(),
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
             doc("broken.xlsx", b"PK\x03\x04garbage", "application/octet-stream"),
             doc("notes.txt", b"plain text is previewed elsewhere", "text/plain"))
    text = render_source_data([], Attachments(files=files), "")
    assert "Total due: 1,234.50 EUR" in text
    assert "Revenue grew 12% to 4.2 million." in text and "North | 1.9M" in text
    assert "`broken.xlsx`" in text and "Could not be read: not a readable spreadsheet" in text
    assert "notes.txt" not in text


def test_the_prompt_carries_the_section_only_when_there_is_data():
    request = TaskRequest(email="student@example.com", task="t", round=1, nonce="n", brief="Show the data.")
    target = RepoTarget("t", "http://repo", "http://pages/")
    plain = build_messages(request, NO_ATTACHMENTS, target)[1]["content"]
    assert "Data fetched and read for you" not in plain and "\x00" not in plain
    data = render_source_data([fetched(b'{"price": "$5"}')], NO_ATTACHMENTS, request.brief)
    with_data = build_messages(request, NO_ATTACHMENTS, target, source_data=data)[1]["content"]
    assert "## Data fetched and read for you" in with_data and '{"price": "$5"}' in with_data
    assert "student@example.com" not in with_data
    assert "```derive" in build_messages(request, NO_ATTACHMENTS, target)[0]["content"]
