"""Hostile documents never take a worker down (issue 23, findings 1, 8 and 9's JSON attachments).

The readers of untrusted formats run under cheap structural caps first and then
in a child process with a memory limit and a timeout: a document that would
abort the process or take minutes ends its own reading with a clear reason,
and every other request on the worker goes on. The service-level test starts
the real service (gunicorn, tests/service_process.py) and sends five hostile
builds at once (the workbook that once aborted the worker among them) next to
an honest one: every one is answered and the worker is never restarted (the
time each takes is measured by bench/hostile_data.py, not asserted here).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import MODEL_KEY, SECRET, task_request
from tests.hostile_documents import (
    container_json,
    docx_with_body,
    empty_paragraphs_docx,
    far_corner_xlsx,
    honest_docx,
    honest_xlsx,
    new_key_records,
    unreferenced_far_xlsx,
)
from tests.sample_task import ROUND1_REPLY
from tests.service_process import ServiceProcess, one_service
from utils.intake.attachments import decode_attachments
from utils.intake.document_caps import MAX_MEMBERS, MAX_PARAGRAPHS, docx_count_problem, zip_problem
from utils.intake.documents import DocumentUnreadable, extracted_text, read_tables
from utils.intake.isolation import ReaderFailed, run_isolated
from utils.records import AttachmentRef

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


# --- the readers, in this process's view ---------------------------------------------------------------------------

def test_a_workbook_spanning_the_whole_sheet_is_refused_by_its_span():
    with pytest.raises(DocumentUnreadable, match=r"spans 1,048,576 rows x 16,384 columns"):
        read_tables(far_corner_xlsx())


def test_an_honest_workbook_is_read_whole_through_the_child():
    [sheet] = read_tables(honest_xlsx(rows=20))
    assert sheet.name == "Sales" and len(sheet.rows) == 21
    assert sheet.rows[0] == ["day", "region", "units", "price", "note"] and sheet.rows[20][1] == "region 5"


def test_a_docx_of_empty_paragraphs_is_refused_before_python_docx_parses_it():
    with pytest.raises(DocumentUnreadable, match="compression bomb"):
        extracted_text(empty_paragraphs_docx(), "docx")


def test_a_docx_with_too_many_paragraphs_is_refused_by_count():
    body = b"".join(b"<w:p><w:r><w:t>line %d</w:t></w:r></w:p>" % n for n in range(MAX_PARAGRAPHS + 5_000))
    document = docx_with_body(body)
    assert docx_count_problem(document) == f"it holds more than {MAX_PARAGRAPHS:,} paragraphs"
    with pytest.raises(DocumentUnreadable, match=f"more than {MAX_PARAGRAPHS:,} paragraphs"):
        extracted_text(document, "docx")


def test_an_honest_docx_still_reads():
    assert extracted_text(honest_docx(50), "docx").startswith("Paragraph 0 of an ordinary report")


def test_a_workbook_past_the_cheap_caps_crashes_only_its_reader_process():
    with pytest.raises(DocumentUnreadable, match=r"reader crashed \(SIGABRT; likely asked for more than its 1024 MB"):
        read_tables(unreferenced_far_xlsx())  # in this process, the same parse aborts it (SIGABRT)
    assert read_tables(honest_xlsx(rows=3))[0].rows[3][0] == 2  # and the next document reads as usual


def test_a_reader_past_its_time_limit_is_stopped():
    with pytest.raises(ReaderFailed, match=r"took longer than 0.2 s and was stopped"):
        run_isolated("pdf", b"%PDF-1.4", what="PDF", seconds=0.2)


def test_a_json_attachment_of_millions_of_objects_is_previewed_without_parsing():
    data = container_json(3_000_000)  # 9 MB of "{}," that json.loads once turned into ~270 MB of dicts
    [file] = decode_attachments([AttachmentRef(name="bomb.json", url=data_uri(data, "application/json"))]).files
    assert "JSON too large to parse (the attachment holds more than 250000 JSON objects and lists)" in file.preview
    assert file.data == data  # still committed byte for byte


# --- the real service: one hostile workbook next to an honest build ------------------------------------------------

@pytest.fixture
def launch(tmp_path: Path, model) -> Iterator[Callable[..., ServiceProcess]]:
    env = {"SECRET": SECRET, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": MODEL_KEY,
           "DEADLINE_SECONDS": "60", "SELF_CHECK": "off"}
    with one_service(tmp_path, env) as start:
        yield start


def test_five_hostile_builds_at_once_are_all_answered_and_the_worker_lives(launch, model):
    model.default_reply = lambda _body: ROUND1_REPLY
    service = launch()

    def build(nonce: str, name: str, media_type: str, data: bytes) -> dict:
        return task_request(nonce=nonce, brief=f"Show what {name} holds in #total-sales.",
                            attachments=[{"name": name, "url": data_uri(data, media_type)}])

    builds = [build("far-corner", "sales.xlsx", XLSX_TYPE, far_corner_xlsx()),
              build("past-the-caps", "wide.xlsx", XLSX_TYPE, unreferenced_far_xlsx()),
              build("empty-paragraphs", "report.docx", DOCX_TYPE, empty_paragraphs_docx()),
              build("json-bomb", "big.json", "application/json", container_json(3_000_000)),
              build("new-keys", "rows.json", "application/json", new_key_records(12_000)),
              task_request(nonce="honest-build")]
    with ThreadPoolExecutor(len(builds)) as pool:
        answers = list(pool.map(service.post, builds))
    assert [answer.status_code for answer in answers] == [200] * len(builds), service.log()
    prompts = [json.dumps(request.json) for request in model.history]
    assert any("spans 1,048,576 rows x 16,384 columns" in prompt for prompt in prompts)
    assert any("the spreadsheet reader crashed (SIGABRT" in prompt for prompt in prompts)
    assert any("a compression bomb" in prompt for prompt in prompts)
    warnings = [answer.json()["warnings"] for answer in answers]
    assert any(w.startswith("attachment sales.xlsx could not be read for the model: too large") for w in warnings[0])
    assert any("reader crashed (SIGABRT" in w for w in warnings[1])
    assert service.log().count("Booting worker") == 1, "a worker died and was restarted"


def test_a_zip_declaring_too_many_parts_is_refused_before_its_directory_is_read():
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(MAX_MEMBERS + 1):
            archive.writestr(f"xl/part{number}.xml", b"")
    assert zip_problem(buffer.getvalue()) == f"it declares {MAX_MEMBERS + 1:,} files, more than {MAX_MEMBERS:,}"
    with pytest.raises(DocumentUnreadable, match="declares 2,001 files"):
        read_tables(buffer.getvalue())
