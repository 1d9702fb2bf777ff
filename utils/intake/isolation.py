"""Run a reader of an untrusted format in a child process under a memory limit and a timeout.

    run_isolated(kind, data) -> what ``utils.intake.reader_child`` reads from ``data`` (tables or text)

A native crash in a parser (Rust's abort in python-calamine when a two-cell
XLSX declares a 0.5 TB sheet) kills the whole process that runs it, and no
``except`` can catch it: every other request on that worker died with it. Here
the reader runs in a fresh interpreter (``python -m utils.intake.reader_child``,
started with ``subprocess``: no fork of a threaded worker, no re-import of the
app), which sets ``RLIMIT_AS`` to ``READER_MEMORY_BYTES`` before it reads, so an
allocation bomb fails inside it; the parent waits at most ``seconds`` and kills
it after. At most ``READER_PROCESSES`` children run at once per worker; waiting
for one counts against the same time limit. The child answers in JSON (cells
tagged by type), never pickle: a compromised child cannot run code here.

Whatever goes wrong (a crash, a signal, the memory limit, the time limit, an
exception in the reader, an answer that does not parse) becomes
``ReaderFailed`` with a plain reason. The child's environment holds no secret
(only PATH, locale and PYTHONPATH). Never logs the data. On a platform without
``resource`` (Windows) the memory limit is not set and the timeout still holds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

READER_MEMORY_BYTES = 1024 * 1024 * 1024  # address space of one child (the interpreter and a parser take ~300 MB)
READER_SECONDS = 20.0
READER_PROCESSES = 2
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
CHILD_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")

_slots = threading.BoundedSemaphore(READER_PROCESSES)


class ReaderFailed(Exception):
    """The isolated reader did not give an answer: it crashed, ran out of memory or time, or raised."""


def run_isolated(kind: str, data: bytes, *, what: str, seconds: float = READER_SECONDS,
                 memory_bytes: int = READER_MEMORY_BYTES) -> Any:
    """The child's answer for ``kind`` ('spreadsheet', 'pdf', 'docx') within ``memory_bytes`` and ``seconds``.

    The answer is JSON as ``utils.intake.reader_child`` writes it; ReaderFailed when there is none.
    """
    started = time.monotonic()
    if not _slots.acquire(timeout=seconds):
        raise ReaderFailed(f"the {what} reader was busy with other documents for {seconds:g} s")
    try:
        left = max(0.05, seconds - (time.monotonic() - started))
        return _run([sys.executable, "-m", "utils.intake.reader_child", kind, str(memory_bytes)], data,
                    what=what, limits=(seconds, left, memory_bytes))
    finally:
        _slots.release()


def _child_env() -> dict[str, str]:
    """The child's environment: a few harmless variables and the path to this project, no secret."""
    env = {key: os.environ[key] for key in CHILD_ENV_KEYS if key in os.environ}
    return {**env, "PYTHONPATH": PROJECT_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "RUST_BACKTRACE": "0"}


def _run(command: list[str], data: bytes, *, what: str, limits: tuple[float, float, int]) -> Any:
    """One child: feed it the bytes, wait for its answer or its end (it is killed at ``left`` seconds)."""
    seconds, left, memory_bytes = limits
    try:
        child = subprocess.run(command, input=data, capture_output=True, timeout=left, env=_child_env(),
                               cwd=PROJECT_ROOT, check=False)
    except subprocess.TimeoutExpired:
        raise ReaderFailed(f"the {what} reader took longer than {seconds:g} s and was stopped") from None
    except OSError as exc:  # no interpreter to start (a sandboxed platform): never read in-process instead
        raise ReaderFailed(f"the isolated {what} reader could not start ({type(exc).__name__})") from None
    if child.returncode != 0:
        raise ReaderFailed(_why_no_answer(child.returncode, what, memory_bytes))
    try:
        status, value = json.loads(child.stdout)
    except (ValueError, TypeError):
        raise ReaderFailed(f"the {what} reader gave no answer that parses") from None
    if status == "ok":
        return value
    raise ReaderFailed(str(value)[:400])


def _why_no_answer(returncode: int, what: str, memory_bytes: int) -> str:
    """A plain reason for a child that ended without an answer."""
    limit = f"{memory_bytes // (1024 * 1024)} MB"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        log.warning("an isolated document reader crashed", extra={"what": what, "signal": name})
        return f"the {what} reader crashed ({name}; likely asked for more than its {limit} memory limit)"
    return f"the {what} reader ended without an answer (exit code {returncode}; memory limit {limit})"
