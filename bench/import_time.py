"""Import time of `main` against importing flask alone, in fresh interpreters with an empty environment.

Each run is a new interpreter (`python -c "import flask"` or `... import main"`)
with only PATH, HOME (a temporary directory) and DATA_DIR (another one) set,
started in a third temporary directory; the import itself is timed inside the
child, and the whole process from outside. Runs alternate between the two
imports so load on the machine hits both alike. One `-X importtime` run of each
names the modules `main` pulls in beyond flask's, by cumulative time. Also
checks that `import main` wrote nothing to HOME, the working directory or
DATA_DIR. Prints numbers; never passes or fails on time.
Run: uv run --dev python -m bench.import_time [--runs 15] [--top 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import SummaryRow, machine, table

ROOT = Path(__file__).resolve().parent.parent  # not bench.service's: that imports main, the module timed here

TARGET_RATIO = 2.0
TIMED = "import sys, time; sys.path.insert(0, {root!r}); t = time.perf_counter(); import {module}; " \
        "print(time.perf_counter() - t)"


@dataclass(frozen=True)
class ImportTimes:
    """Seconds per run for one module: the import timed inside the child, and the whole process."""

    module: str
    imports: tuple[float, ...]
    processes: tuple[float, ...]


@dataclass(frozen=True)
class Offender:
    """A module imported by `main` but not by `import flask`, with its -X importtime numbers (µs)."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int


class Sandbox:
    """Empty HOME, working directory and DATA_DIR for the child interpreters."""

    def __init__(self, root: Path):
        self.home, self.cwd, self.data = root / "home", root / "cwd", root / "data"
        for folder in (self.home, self.cwd):
            folder.mkdir()
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                    "DATA_DIR": str(self.data)}

    def run(self, code: str, *flags: str) -> subprocess.CompletedProcess:
        """Run ``python [flags] -c code`` in the sandbox."""
        return subprocess.run([sys.executable, *flags, "-c", code], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120, check=True)

    def written(self) -> list[str]:
        """Every file or folder that appeared in HOME, the working directory or DATA_DIR."""
        return sorted(str(path) for folder in (self.home, self.cwd, self.data) if folder.exists()
                      for path in [folder, *folder.rglob("*")] if path != self.home and path != self.cwd)


def time_imports(sandbox: Sandbox, modules: tuple[str, ...], runs: int) -> list[ImportTimes]:
    """Per module, ``runs`` timed imports in fresh interpreters, the modules taking turns."""
    imports: dict[str, list[float]] = {m: [] for m in modules}
    processes: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(runs):
        for module in modules:
            started = time.perf_counter()
            done = sandbox.run(TIMED.format(root=str(ROOT), module=module))
            processes[module].append(time.perf_counter() - started)
            imports[module].append(float(done.stdout.strip().splitlines()[-1]))
    return [ImportTimes(m, tuple(imports[m]), tuple(processes[m])) for m in modules]


def importtime(sandbox: Sandbox, module: str) -> dict[str, tuple[int, int, int]]:
    """``-X importtime`` of one import: module -> (self µs, cumulative µs, nesting depth)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {module}"
    found = {}
    for line in sandbox.run(code, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(own), int(cumulative), (len(name) - len(name.lstrip())) // 2)
    return found


def offenders(sandbox: Sandbox, top: int) -> list[Offender]:
    """The ``top`` modules by cumulative time that `import main` loads and `import flask` does not."""
    baseline = importtime(sandbox, "flask")
    extra = [Offender(name, own, cumulative, depth)
             for name, (own, cumulative, depth) in importtime(sandbox, "main").items()
             if name not in baseline and name != "main"]
    return sorted(extra, key=lambda o: o.cumulative_us, reverse=True)[:top]


def measure(runs: int, top: int) -> tuple[list[ImportTimes], list[Offender], list[str]]:
    """Timed imports of flask and main, main's heaviest extra imports, and what the imports wrote."""
    with tempfile.TemporaryDirectory(prefix="bench-import-") as root:
        sandbox = Sandbox(Path(root))
        times = time_imports(sandbox, ("flask", "main"), runs)
        heavy = offenders(sandbox, top)
        return times, heavy, sandbox.written()


def ratio(times: list[ImportTimes]) -> tuple[float, float]:
    """main over flask: (import medians, whole-process medians)."""
    flask, main = times
    return (statistics.median(main.imports) / statistics.median(flask.imports),
            statistics.median(main.processes) / statistics.median(flask.processes))


def summary(quick: bool) -> list[SummaryRow]:
    """Run, print the details, and return the summary rows."""
    runs = 5 if quick else 15
    times, heavy, written = measure(runs, top=12)
    print(report(times, heavy, written, runs))
    import_ratio, process_ratio = ratio(times)
    flask, main = (statistics.median(t.imports) * 1000 for t in times)
    return [SummaryRow("import main / import flask (median import)",
                       f"{import_ratio:.2f}x ({main:.0f} vs {flask:.0f} ms)", f"<= {TARGET_RATIO:g}x"),
            SummaryRow("import main / import flask (whole process)", f"{process_ratio:.2f}x")]


def report(times: list[ImportTimes], heavy: list[Offender], written: list[str], runs: int) -> str:
    """The timing table, the offenders and the write check as text."""
    rows = [[t.module, f"{statistics.median(t.imports) * 1000:.1f}", f"{min(t.imports) * 1000:.1f}",
             f"{statistics.median(t.processes) * 1000:.1f}"] for t in times]
    import_ratio, process_ratio = ratio(times)
    fastest = min(times[1].imports) / min(times[0].imports)
    lines = [f"Import time ({runs} fresh interpreters each; {machine()})", "",
             table(["import", "median import ms", "min import ms", "median process ms"], rows), "",
             (f"ratio main/flask: {import_ratio:.2f}x for the import, {process_ratio:.2f}x for the whole process "
              f"(target <= {TARGET_RATIO:g}x); {fastest:.2f}x for the fastest of each "
              "(least disturbed by load)"), "",
             "Heaviest modules `import main` loads beyond `import flask` (-X importtime, one run):",
             table(["module", "cumulative ms", "self ms"],
                   [["  " * o.depth + o.name, f"{o.cumulative_us / 1000:.1f}", f"{o.self_us / 1000:.1f}"]
                    for o in heavy]), "",
             "written by the imports (HOME, working directory, DATA_DIR): " + (", ".join(written) or "nothing")]
    return "\n".join(lines)


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(report(*measure(args.runs, args.top), args.runs))


if __name__ == "__main__":
    main()
