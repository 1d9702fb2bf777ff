"""Computed derive blocks: a `js:` function of parsed sources, run in the sandbox, its value written exactly.

The figures a function publishes are compared with the same figures computed
here in Python from the generated data, so a wrong parse (numbers left as
text, a row lost) or a wrong write (re-serialized, cut) fails. Never reaches
the internet and never downloads a browser.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator

import pytest

from tests.browser_support import chromium_or_skip
from tests.sample_documents import workbook_bytes
from utils.checks.sandbox import Sandbox
from utils.intake.fetch import FetchedDocument
from utils.model.derive_script import ScriptBudget, table_records
from utils.model.derived import NO_SCRIPTS, Scripts, Source, derive_files, derive_sources, parse_derive_block
from utils.model.replies import parse_reply
from utils.records import Attachments

REGIONS = ("north", "south", "east", "west", "central")


def sales_csv(rows: int = 1000, seed: int = 7) -> tuple[bytes, list[dict]]:
    """A CSV of ``rows`` sales (region, product code with leading zeros, cents) and the rows as Python values."""
    pick = random.Random(seed)
    records = [{"id": n + 1, "region": pick.choice(REGIONS), "code": f"{pick.randrange(1000):04d}",
                "sales": pick.randrange(100, 1_000_000) / 100} for n in range(rows)]
    lines = ["id,region,code,sales"] + [f"{r['id']},{r['region']},{r['code']},{r['sales']}" for r in records]
    return ("\n".join(lines) + "\n").encode(), records


CSV_BYTES, RECORDS = sales_csv()
SOURCES = {
    "sales.csv": Source("sales.csv", CSV_BYTES),
    "meta.json": Source("meta.json", b'{"currency": "EUR", "regions": 5}'),
    "notes.txt": Source("notes.txt", "Zürich office\n".encode()),
    "book.xlsx": Source("book.xlsx", workbook_bytes()),
}
TOTAL_AND_TOP3 = """(rows) => {
    const byRegion = {};
    for (const row of rows) byRegion[row.region] = (byRegion[row.region] || 0) + Math.round(row.sales * 100);
    const top3 = Object.entries(byRegion).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([region, cents]) => ({region, sales: cents / 100}));
    const cents = rows.reduce((sum, row) => sum + Math.round(row.sales * 100), 0);
    return {rows: rows.length, total: cents / 100, top3};
  }"""


def block(target: str, *lines: str) -> str:
    return f"{target}\n```derive\n" + "\n".join(lines) + "\n```\n"


def indented(script: str) -> str:
    return "\n".join("  " + line for line in script.splitlines())


def expected_totals(records: list[dict]) -> dict:
    """The total and top three regions by sales, in cents then back, as the function computes them."""
    by_region: dict[str, int] = defaultdict(int)
    for record in records:
        by_region[record["region"]] += round(record["sales"] * 100)
    top3 = sorted(by_region.items(), key=lambda item: -item[1])[:3]
    return {"rows": len(records), "total": sum(round(r["sales"] * 100) for r in records) / 100,
            "top3": [{"region": region, "sales": cents / 100} for region, cents in top3]}


# ---------------------------------------------------------------- reading a block (no browser)

@pytest.mark.parametrize("body", [
    "from: sales.csv\njs: |\n  (rows) => rows.length\n",
    "from: sales.csv\njs: (rows) => rows.length\n",
    "js: |\n    (rows) =>\n      rows.length\nfrom: sales.csv\n",
    "from:\n  - sales.csv\njs: >-\n  (rows) => rows.length",
    "source:sales.csv\njs:(rows) => rows.length",
])
def test_a_function_is_read_from_the_ways_models_write_it(body):
    request = parse_derive_block("n.json", body)
    assert request.source == "sales.csv"
    assert request.js.replace("\n", " ").split() == ["(rows)", "=>", "rows.length"]


def test_a_function_may_hold_lines_at_the_margin_and_keys_inside_objects():
    body = "from: a.json, b.csv\njs: (doc, rows) => {\n  return {\ntotal: rows.length,\n  };\n}\nsheet: S\n"
    request = parse_derive_block("n.json", body)
    assert (request.source, request.sheet) == ("a.json, b.csv", "S")
    assert request.js == "(doc, rows) => {\n  return {\ntotal: rows.length,\n  };\n}"


@pytest.mark.parametrize(("body", "problem"), [
    ("from: sales.csv\nfilter: fy > 2020\n",
     "the derive block for 'x.json' has the key `filter`, which the service does not know; the keys are `from`, "
     "`sheet`, `js`"),
    ("from: sales.csv\nkeep the rows after 2020\n",
     "the derive block for 'x.json': line 2 ('keep the rows after 2020') is not `key: value`; the keys are `from`, "
     "`sheet`, `js`"),
    ("from: sales.csv\njs: |\n", "the derive block for 'x.json' has an empty `js:`"),
    ("js: (rows) => rows.length\n", "the derive block for 'x.json' names no source"),
])
def test_a_block_the_service_cannot_read_is_a_problem_never_a_copy(body, problem):
    files, problems = derive_files([("x.json", body)], SOURCES, scripts=Scripts())
    assert files == {} and len(problems) == 1 and problems[0].startswith(problem)


def test_a_fetch_cut_at_the_size_cap_is_refused_as_a_source_saying_why():
    cut = FetchedDocument("https://data.example/big.json", status=200, content_type="application/json",
                          data=b'{"rows": [1, 2', truncated=True)
    sources = derive_sources(Attachments(), [cut])
    files, problems = derive_files([("x.json", f"from: {cut.url}\njs: (doc) => doc.rows")], sources, scripts=Scripts())
    assert files == {} and problems == [
        "'x.json' is derived from 'https://data.example/big.json', whose fetch stopped at the size cap (14 bytes "
        "read), so the service does not have it whole; write the file from the data shown to you instead"]


def test_without_a_sandbox_a_function_is_refused_naming_the_browser_extra():
    files, problems = derive_files([("x.json", "from: sales.csv\njs: (rows) => rows.length")], SOURCES)
    assert files == {} and problems == [f"'x.json': {NO_SCRIPTS}"]
    assert "`browser` extra" in NO_SCRIPTS and "uv run --extra browser main.py" in NO_SCRIPTS


# ---------------------------------------------------------------- running functions (browser)

@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(chromium_or_skip(), timeout=5) as box:
        yield box


def computed(sandbox: Sandbox, reply: str, budget: ScriptBudget | None = None) -> tuple[dict[str, bytes], list[str]]:
    return derive_files(parse_reply(reply).derived, SOURCES, scripts=Scripts(sandbox, budget))


@pytest.mark.browser
def test_a_1000_row_total_and_top_3_by_group_are_exact(sandbox):
    files, problems = computed(sandbox, block("stats.json", "from: sales.csv", "js: |", indented(TOTAL_AND_TOP3)))
    assert problems == []
    assert json.loads(files["stats.json"]) == expected_totals(RECORDS)
    assert files["stats.json"].decode() == json.dumps(expected_totals(RECORDS), indent=2) + "\n"


@pytest.mark.browser
def test_sources_come_in_the_order_of_from_and_a_string_is_written_as_is(sandbox):
    script = "js: (notes, meta, rows) => `${notes.trim()}: ${rows.length} rows in ${meta.currency}`"
    files, problems = computed(sandbox, block("about.txt", "from: notes.txt, meta.json, sales.csv", script))
    assert problems == [] and files["about.txt"] == "Zürich office: 1000 rows in EUR".encode()


@pytest.mark.browser
def test_a_sheet_is_given_as_row_objects(sandbox):
    script = "js: (rows) => rows.filter(r => r.target !== null).map(r => r.region)"
    files, problems = computed(sandbox, block("regions.json", "from: book.xlsx", "sheet: Targets", script))
    assert problems == [] and json.loads(files["regions.json"]) == ["North", "South"]


@pytest.mark.browser
@pytest.mark.parametrize(("script", "problem"), [
    ("(rows) => rows.map(r => r.missing.field)",
     "'x.json': the function threw TypeError: Cannot read properties of undefined (reading 'field')"),
    ("(rows) => { rows.length; }",
     "'x.json': the function returned undefined instead of the file's content: return an object or array "
     "(written as JSON) or a string (written as is)"),
    ("(rows) => null", "'x.json': the function returned null instead of the file's content"),
    ("rows.length", "'x.json': the function threw ReferenceError: rows is not defined"),
    ("42", "'x.json': the function threw TypeError: js: must be a function of the sources, like (rows) => {...}; "
           "it is number"),
    ("(rows) => { while (true) {} }", "'x.json': the function was still running after 2 s and was stopped"),
    ("(rows) => {", "'x.json': the function does not parse: SyntaxError:"),
])
def test_a_function_that_gives_no_file_is_a_problem_naming_the_error(sandbox, script, problem):
    files, problems = computed(sandbox, block("x.json", "from: sales.csv", f"js: |\n{indented(script)}"),
                               ScriptBudget(seconds=2))
    assert files == {} and len(problems) == 1 and problems[0].startswith(problem), problems
    assert computed(sandbox, block("ok.json", "from: meta.json", "js: (m) => m"))[0]["ok.json"] == (
        b'{\n  "currency": "EUR",\n  "regions": 5\n}\n')


@pytest.mark.browser
def test_the_build_budget_bounds_every_function_together(sandbox):
    budget = ScriptBudget(seconds=1.5)
    loop = "js: (rows) => { while (true) {} }"
    files, problems = computed(sandbox, block("a.json", "from: sales.csv", loop) + block("b.json", "from: meta.json",
                                                                                             "js: (m) => m"), budget)
    assert files == {}
    assert problems[0] == "'a.json': the function was still running after 1.5 s and was stopped"
    assert problems[1].startswith("'b.json': the build's time for derive functions (1.5 s) is used up")


@pytest.mark.browser
def test_sources_are_parsed_as_the_function_receives_them(sandbox):
    script = ("js: (rows, meta, notes, sheet) => ({first: rows.slice(0, 2), ids: rows.every(r => typeof r.id === "
              "'number'), codes: rows.every(r => typeof r.code === 'string'), meta, notes, sheet})")
    files, problems = computed(sandbox, block("seen.json", "from: sales.csv, meta.json, notes.txt, book.xlsx",
                                              "sheet: Targets", script))
    assert problems == []
    seen = json.loads(files["seen.json"])
    assert seen["first"] == [{key: record[key] for key in ("id", "region", "code", "sales")} for record in RECORDS[:2]]
    assert seen["ids"] and seen["codes"]  # ids are numbers; codes with leading zeros stay text
    assert seen["meta"] == {"currency": "EUR", "regions": 5} and seen["notes"] == "Zürich office\n"
    assert seen["sheet"] == [{"region": "North", "target": 100}, {"region": "South", "target": 250.75},
                             {"region": "West", "target": None}]


TRICKY_CSV = [
    'id,name,score,zip\n1,Ada,9.5,02139\n2,Linus,,10001\n3,"Grace, R.",-7,\n\n4,x,1e5,1,extra\n',
    'a,a,,a_2,a\n1,2,3\n', '', 'h\n', ','.join(['x'] * 3000) + '\n' + ','.join(['1'] * 3000) + '\n',
    'x,y\r\n1,\r\n,2\r\n', '"q""uote",b\n"multi\nline",2\n"open',
    'a,b\n"x"y,1\nz"w,2\n', '\nfirst,line\n1,2\n', '__proto__,constructor\n1,2\n', 'n\n-0\n0.50\n007\n',
]


def random_csv(pick: random.Random) -> str:
    """A CSV written by Python's csv module from cells made to look like numbers, text, quotes and blanks."""
    cells = ["", "0", "-3", "12.5", "1e3", "007", "x", "a,b", 'say "hi"', "two\nlines", " ", "١٢"]
    width = pick.randrange(1, 5)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=pick.choice(["\n", "\r\n"]))
    for _ in range(pick.randrange(0, 8)):
        writer.writerow([pick.choice(cells) for _ in range(pick.randrange(0, width + 2))])
    return buffer.getvalue()


@pytest.mark.browser
def test_the_page_reads_csv_exactly_as_the_csv_to_json_conversion_does(sandbox):
    pick = random.Random(2024)
    texts = TRICKY_CSV + [random_csv(pick) for _ in range(150)]
    sources = {f"s{n}.csv": Source(f"s{n}.csv", text.encode()) for n, text in enumerate(texts)}
    reply = block("all.json", "from: " + ", ".join(sources), "js: (...tables) => tables")
    files, problems = derive_files(parse_reply(reply).derived, sources, scripts=Scripts(sandbox))
    assert problems == []
    seen = json.loads(files["all.json"])
    for text, table in zip(texts, seen, strict=True):
        assert table == json.loads(json.dumps(table_records(text, ","))), text


@pytest.mark.browser
def test_a_huge_allocation_or_a_50_mb_value_is_a_problem_and_the_next_function_runs():
    with Sandbox(chromium_or_skip(), memory_mb=128, timeout=30) as small:
        hog = "js: (rows) => { const keep = []; while (true) keep.push(new Array(100000).fill(rows.length)); }"
        huge = "js: (rows) => 'x'.repeat(50 * 1024 * 1024)"
        files, problems = derive_files(parse_reply(block("a.json", "from: sales.csv", hog) +
                                                   block("b.txt", "from: sales.csv", huge) +
                                                   block("c.json", "from: meta.json", "js: (m) => m")).derived,
                                       SOURCES, scripts=Scripts(small))
    assert problems == [
        "'a.json': the function's page crashed, most likely out of memory (the limit is 128 MB), and was stopped",
        "'b.txt': the function returned 52,428,800 characters; a derived file holds at most 5,000,000"]
    assert json.loads(files.pop("c.json")) == {"currency": "EUR", "regions": 5} and files == {}
