"""Computed derive blocks: a ``js:`` function of the block's sources, run in the sandbox, its value written exactly.

    sources (bytes) --source_value--> JSON value, CSV/TSV/sheet rows as objects, text as a string
    --ScriptRunner (utils.checks.sandbox.Sandbox)--> the function's value --file_bytes--> the file

Sources are given whole (up to the fetch and attachment size limits); the
sandbox's time, memory and output limits bound the work, and ``ScriptBudget``
bounds the script time of one build. ``table_records`` and ``sheet_records``
are also the JSON conversions of ``utils.model.derived``, so a computed file
and a converted one see the same values.

Whatever a script does wrong (it throws, returns nothing, runs too long, is not
a function) becomes a ``ScriptFailed`` whose message names the error, for the
model's re-ask; never a guess and never a copy of the source. Never runs a
script outside the sandbox, never reads the filesystem, never fetches.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from utils.checks.sandbox import SandboxError, SandboxValue
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
BUILD_SCRIPT_SECONDS = 40.0  # every derive function of one build together
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
DELIMITERS = {".csv": ",", ".tsv": "\t"}

# Calls the model's function with the sources and says what it returned, in a form that keeps a string apart
# from JSON: {text} to write, or {nothing} naming what came back instead of a value.
_CALL = """(async () => {
  const compute = (
%s
  );
  if (typeof compute !== 'function') {
    throw new TypeError('js: must be a function of the sources, like (rows) => {...}; it is ' +
                        (compute === null ? 'null' : typeof compute));
  }
  const value = await compute(...sources);
  if (value === undefined || value === null) return {nothing: String(value)};
  if (typeof value === 'string') return {text: value};
  if (typeof value === 'function') return {nothing: 'a function'};
  const text = typeof value === 'object' ? JSON.stringify(value, null, 2) : JSON.stringify(value);
  if (text === undefined) return {nothing: typeof value};
  return {text: typeof value === 'object' ? text + '\\n' : text};
})()"""


class ScriptFailed(Exception):
    """A derive function gave no file; the message names why (for the re-ask and the build report)."""


class ScriptRunner(Protocol):
    """What runs a script: ``utils.checks.sandbox.Sandbox``."""

    def evaluate(self, script: str, values: Any = None, *, timeout: float | None = None) -> SandboxValue:
        """The script's value, or SandboxError."""
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


def run_derive_script(script: str, values: Sequence[Any], runner: ScriptRunner, budget: ScriptBudget) -> bytes:
    """The file a derive function makes of ``values`` (the parsed sources, in the order of ``from:``)."""
    body = script.strip().rstrip(";").strip()
    if not body:
        raise ScriptFailed("`js:` is empty: give a function of the sources, like (rows) => {...}")
    timeout = budget.next_timeout()
    started = time.monotonic()
    try:
        outcome = runner.evaluate(_CALL % body, {"sources": list(values)}, timeout=timeout).value
    except SandboxError as exc:
        raise ScriptFailed(str(exc).replace("the script", "the function", 1)) from None
    finally:
        budget.spent += time.monotonic() - started
    if not isinstance(outcome, dict) or ("text" not in outcome and "nothing" not in outcome):
        raise ScriptFailed("the function's value could not be read back")  # only a wrapper bug gets here
    if "nothing" in outcome:
        raise ScriptFailed(f"the function returned {outcome['nothing']} instead of the file's content: return an "
                           "object or array (written as JSON) or a string (written as is)")
    return str(outcome["text"]).encode("utf-8")


def source_value(name: str, data: bytes, sheet: str = "") -> Any:
    """A source as the function receives it: JSON as its value, CSV/TSV and a sheet as row objects, text as a
    string, PDF and DOCX as their extracted text. ScriptFailed when it cannot be read."""
    ext = posixpath.splitext(name)[1].lower()
    kind = document_kind(name, "")
    try:
        if kind == "spreadsheet":
            return sheet_records(pick_sheet(read_tables(data), sheet, name))
        if kind in ("pdf", "docx"):
            return extracted_text(data, kind)
    except DocumentUnreadable as exc:
        raise ScriptFailed(f"the source '{name}' is {exc}") from None
    text = decoded_text(data, name)
    if ext == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ScriptFailed(f"the source '{name}' is not valid JSON ({exc})") from None
    if ext in DELIMITERS:
        return table_records(text, DELIMITERS[ext])
    return text


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
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = distinct_keys(rows[0]) if rows else []
    body = [row for row in rows[1:] if row]
    numeric = [all(_PLAIN_NUMBER.fullmatch(row[i]) for row in body if i < len(row) and row[i])
               for i in range(len(header))]
    return [dict(zip(header, (_typed(cell, numeric[i]) for i, cell in enumerate(row[:len(header)])), strict=False))
            for row in body]


def distinct_keys(header: list[str]) -> list[str]:
    """Header cells as distinct object keys (blank ones named column_N, repeats suffixed)."""
    keys: list[str] = []
    for number, name in enumerate(header, 1):
        key = name or f"column_{number}"
        while key in keys:
            key += "_2"
        keys.append(key)
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
