"""Computed derive blocks: a ``js:`` function of the block's sources, run in the sandbox, its value written exactly.

    sources (bytes) --source_input--> JSON / CSV / TSV / other text, sheet rows, PDF and DOCX text
    --ScriptRunner (utils.checks.sandbox.Sandbox), in the page: JSON parsed, CSV and TSV read into row objects,
      the model's function called--> its value: an object or array as JSON (two-space indent), a string as is

Sources are given whole (up to the fetch and attachment size limits) and
parsed inside the page, so the sandbox's time, memory and output limits bound
the work (a 20 MB CSV never becomes Python objects); ``ScriptBudget`` bounds
the script time of one build. The page reads CSV as Python's csv module does
and types its columns as ``table_records`` (the CSV-to-JSON conversion of
``utils.model.derived``) does, so a computed file and a converted one see the
same values; ``sheet_records`` serves both as well. ``source_input`` and
``SOURCE_PARSER_JS`` (its page-side half) are the one way to hand sources to
a sandboxed script, for derive functions and for checks that read `sources`.

Whatever a script does wrong (it throws, returns nothing, runs too long, is not
a function) becomes a ``ScriptFailed`` whose message names the error, for the
model's re-ask; never a guess and never a copy of the source. Never runs a
script outside the sandbox, never reads the filesystem, never fetches.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from utils.intake.documents import (
    DocumentUnreadable,
    Table,
    cell_json,
    cell_text,
    document_kind,
    extracted_text,
    read_tables,
)

SCRIPT_SECONDS = 10.0  # one derive function, at most
MAX_FILE_CHARS = 5_000_000  # what one function may return (checked in the page, below the sandbox's own cap)
BUILD_SCRIPT_SECONDS = 40.0  # every derive function of one build together
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")  # ASCII digits, as in the page
DELIMITERS = {".csv": ",", ".tsv": "\t"}

# The page-side half of ``source_input``: a function of the inputs that returns {values} (JSON parsed; CSV/TSV read
# as Python's csv module reads them with its default dialect, then typed as ``table_records`` types them), or
# {unreadable} naming a source that is not what its name says. Checks that receive `sources` can use the same two.
SOURCE_PARSER_JS = r"""(inputs) => {
    const plainNumber = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;
    const readRows = (text, delimiter) => {
      const rows = [];
      let row = [], field = '', state = 'record';
      for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (state === 'quoted') {
          if (c === '"') state = 'quote'; else field += c;
        } else if (c === '\r' || c === '\n') {
          if (c === '\r' && text[i + 1] === '\n') i++;
          if (state !== 'record') row.push(field);
          rows.push(row);
          row = []; field = ''; state = 'record';
        } else if (state === 'record' || state === 'field') {
          if (c === '"') state = 'quoted';
          else if (c === delimiter) { row.push(''); state = 'field'; }
          else { field = c; state = 'plain'; }
        } else if (state === 'plain') {
          if (c === delimiter) { row.push(field); field = ''; state = 'field'; } else field += c;
        } else if (c === '"') { field += '"'; state = 'quoted'; }
        else if (c === delimiter) { row.push(field); field = ''; state = 'field'; }
        else { field += c; state = 'plain'; }
      }
      if (state !== 'record') { row.push(field); rows.push(row); }
      return rows;
    };
    const records = (text, delimiter) => {
      const rows = readRows(text, delimiter);
      const keys = [], taken = new Set(), counts = new Map();
      (rows[0] || []).forEach((name, i) => {
        const base = name || 'column_' + (i + 1);
        let key = base;
        while (taken.has(key)) {
          counts.set(base, (counts.get(base) || 1) + 1);
          key = base + '_' + counts.get(base);
        }
        keys.push(key);
        taken.add(key);
      });
      const body = rows.slice(1).filter((row) => row.length);
      const numeric = keys.map((_, i) => body.every((row) => i >= row.length || row[i] === '' ||
                                                              plainNumber.test(row[i])));
      const typed = (cell, i) => (!numeric[i] ? cell : cell === '' ? null : Number(cell));
      return body.map((row) => Object.fromEntries(
        keys.slice(0, Math.min(keys.length, row.length)).map((key, i) => [key, typed(row[i], i)])));
    };
    const values = [];
    for (const source of inputs) {
      if ('rows' in source) values.push(source.rows);
      else if ('text' in source) values.push(source.text);
      else if ('delimited' in source) values.push(records(source.delimited, source.delimiter));
      else {
        try { values.push(JSON.parse(source.json)); }
        catch (e) { return {unreadable: "the source '" + source.name + "' is not valid JSON (" + e.message + ")"}; }
      }
    }
    return {values};
  }"""

# Parses the sources, calls the model's function with them, and says what it returned in a form that keeps a string
# apart from JSON: {text} to write, {nothing} naming what came back instead of a value, or {unreadable}.
_CALL = r"""(async () => {
  const prepared = (/*PARSER*/)(sources);
  if (prepared.unreadable) return prepared;
  const compute = (
/*FUNCTION*/
  );
  if (typeof compute !== 'function') {
    throw new TypeError('js: must be a function of the sources, like (rows) => {...}; it is ' +
                        (compute === null ? 'null' : typeof compute));
  }
  const value = await compute(...prepared.values);
  if (value === undefined || value === null) return {nothing: String(value)};
  if (typeof value === 'function') return {nothing: 'a function'};
  let text = value;
  if (typeof value !== 'string') {
    text = typeof value === 'object' ? JSON.stringify(value, null, 2) : JSON.stringify(value);
    if (text === undefined) return {nothing: typeof value};
    if (typeof value === 'object') text += '\n';
  }
  return text.length > /*LIMIT*/ ? {too_large: text.length} : {text};
})()"""


class ScriptFailed(Exception):
    """A derive function gave no file; the message names why (for the re-ask and the build report)."""


class ScriptRunner(Protocol):
    """What runs a script (``utils.checks.sandbox.Sandbox``, a floor above this module, which is why it is a
    seam): ``evaluate`` returns an object whose ``value`` is the script's JSON value, or raises ``failure``, an
    exception whose text names the problem ("the script threw ...", "the script was still running after ...")."""

    @property
    def failure(self) -> type[Exception]:
        """The exception ``evaluate`` raises when the script gives no value."""
        ...

    def evaluate(self, script: str, values: Any = None, *, timeout: float | None = None) -> Any:
        """The script's result (its ``value``), or ``failure``."""
        ...


@dataclass
class ScriptBudget:
    """The script time one build may still spend, shared by every derive function of its replies."""

    seconds: float = BUILD_SCRIPT_SECONDS
    spent: float = field(default=0.0)

    def next_timeout(self) -> float:
        """The time the next function may run; ScriptFailed when the build's budget is used up."""
        left = self.seconds - self.spent
        if left < 0.5:
            raise ScriptFailed(f"the build's time for derive functions ({self.seconds:g} s) is used up; "
                               "compute fewer files or make the functions faster")
        return min(SCRIPT_SECONDS, left)


def run_derive_script(script: str, sources: Sequence[dict[str, Any]], runner: ScriptRunner,
                      budget: ScriptBudget) -> bytes:
    """The file a derive function makes of ``sources`` (``source_input`` of each, in the order of ``from:``)."""
    body = script.strip().rstrip(";").strip()
    if not body:
        raise ScriptFailed("`js:` is empty: give a function of the sources, like (rows) => {...}")
    timeout = budget.next_timeout()
    started = time.monotonic()
    try:
        call = (_CALL.replace("/*PARSER*/", SOURCE_PARSER_JS).replace("/*LIMIT*/", str(MAX_FILE_CHARS))
                .replace("/*FUNCTION*/", body))
        outcome = runner.evaluate(call, {"sources": list(sources)},
                                  timeout=timeout).value
    except runner.failure as exc:
        raise ScriptFailed(str(exc).replace("the script", "the function", 1)) from None
    finally:
        budget.spent += time.monotonic() - started
    if not isinstance(outcome, dict) or not {"text", "nothing", "unreadable", "too_large"} & set(outcome):
        raise ScriptFailed("the function's value could not be read back")  # only a wrapper bug gets here
    if "unreadable" in outcome:
        raise ScriptFailed(str(outcome["unreadable"]))
    if "too_large" in outcome:
        raise ScriptFailed(f"the function returned {outcome['too_large']:,} characters; a derived file holds at "
                           f"most {MAX_FILE_CHARS:,}")
    if "nothing" in outcome:
        raise ScriptFailed(f"the function returned {outcome['nothing']} instead of the file's content: return an "
                           "object or array (written as JSON) or a string (written as is)")
    return str(outcome["text"]).encode("utf-8")


def source_input(name: str, data: bytes, sheet: str = "") -> dict[str, Any]:
    """A source as it is sent to the page, which parses it there (inside the sandbox's limits): JSON text, CSV/TSV
    text (read into row objects as ``table_records`` reads them), other text; a sheet as its row objects and PDF
    or DOCX as their extracted text, read here. ScriptFailed when it cannot be read."""
    ext = posixpath.splitext(name)[1].lower()
    kind = document_kind(name, "")
    try:
        if kind == "spreadsheet":
            return {"name": name, "rows": sheet_records(pick_sheet(read_tables(data), sheet, name))}
        if kind in ("pdf", "docx"):
            return {"name": name, "text": extracted_text(data, kind)}
    except DocumentUnreadable as exc:
        raise ScriptFailed(f"the source '{name}' is {exc}") from None
    text = decoded_text(data, name)
    if ext == ".json":
        return {"name": name, "json": text}
    if ext in DELIMITERS:
        return {"name": name, "delimited": text, "delimiter": DELIMITERS[ext]}
    return {"name": name, "text": text}


def decoded_text(data: bytes, name: str) -> str:
    """A source as UTF-8 text (a BOM dropped); ScriptFailed when it is not text."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScriptFailed(f"the source '{name}' is not UTF-8 text") from None


def pick_sheet(tables: list[Table], sheet: str, name: str) -> Table:
    """The sheet named (exact, then ignoring case), else the first; ScriptFailed when there is none."""
    if not tables:
        raise ScriptFailed(f"the workbook '{name}' has no sheets")
    if not sheet:
        return tables[0]
    for table in tables:
        if table.name == sheet or table.name.lower() == sheet.lower():
            return table
    names = ", ".join(f"'{t.name}'" for t in tables)
    raise ScriptFailed(f"the workbook '{name}' has no sheet '{sheet}' (its sheets: {names})")


def sheet_records(table: Table) -> list[dict[str, Any]]:
    """A sheet's data rows as objects keyed by its header row; numbers and booleans typed, empty cells null."""
    header = distinct_keys([cell_text(cell) for cell in table.rows[0]]) if table.rows else []
    return [dict(zip(header, (cell_json(cell) for cell in row), strict=False)) for row in table.rows[1:]]


def table_records(text: str, delimiter: str) -> list[dict[str, Any]]:
    """CSV/TSV data rows as objects keyed by the header: a column whose cells are all plain decimal numbers (no
    leading zeros) holds numbers, its empty cells null; every other column keeps its text."""
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ScriptFailed(f"the text cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})") from None
    header = distinct_keys(rows[0]) if rows else []
    body = [row for row in rows[1:] if row]
    numeric = [all(_PLAIN_NUMBER.fullmatch(row[i]) for row in body if i < len(row) and row[i])
               for i in range(len(header))]
    return [dict(zip(header, (_typed(cell, numeric[i]) for i, cell in enumerate(row[:len(header)])), strict=False))
            for row in body]


def distinct_keys(header: list[str]) -> list[str]:
    """Header cells as distinct object keys (blank ones named column_N, repeats numbered name_2, name_3...),
    in linear time: a header repeating one name thousands of times must not take quadratic time."""
    keys: list[str] = []
    taken: set[str] = set()
    counts: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        base = name or f"column_{number}"
        key = base
        while key in taken:
            counts[base] = counts.get(base, 1) + 1
            key = f"{base}_{counts[base]}"
        keys.append(key)
        taken.add(key)
    return keys


def _typed(cell: str, numeric_column: bool) -> str | int | float | None:
    """A CSV cell as JSON: in a numeric column a number, or null when empty; in any other column its text."""
    if not numeric_column:
        return cell
    if not cell:
        return None
    number = float(cell)
    if number.is_integer() and "." not in cell and "e" not in cell.lower():
        return int(cell)
    return number
