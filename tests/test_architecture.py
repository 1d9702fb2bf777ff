"""The shape of the code, read from the source with ``ast`` (issue 20's "Done when").

No import cycle among ``utils`` modules (module level and ``TYPE_CHECKING``
imports alike; imports inside functions are left out: they run later, on
first use), no import up the floors between utils' packages, no package named
``build`` or ``dist``, no branch on a publisher's name, no function with more
than 8 parameters, no module over 550 lines, no private name imported across
modules, and no import inside a function of the service without a ``# why:``
reason on its line. Each rule is a function of a tree's root, so the same
checks can be pointed at a copy that breaks them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("utils", "tests", "bench")  # folders of our Python besides the top-level modules
MAX_PARAMETERS = 8
MAX_LINES = 550
PUBLISHER_NAMES = frozenset({"github", "local"})
# utils' packages by floor: a module imports its own package and lower floors only ("shared": utils/*.py)
FLOORS = {"shared": 0, "intake": 1, "publishers": 1, "store": 1, "model": 2, "checks": 3, "jobs": 4, "web": 5,
          "grading": 6}


def python_files(root: Path) -> list[Path]:
    """Every Python module of ours under ``root``: the top-level modules, utils/, tests/ and bench/."""
    files = sorted(root.glob("*.py"))
    for folder in OURS:
        files += sorted(p for p in (root / folder).rglob("*.py") if ".venv" not in p.parts)
    return files


def module_name(root: Path, path: Path) -> str:
    """``utils/jobs/queue.py`` -> ``utils.jobs.queue``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def load_time_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads, or that a type checker follows (``if TYPE_CHECKING``): every
    import outside a function body."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def function_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports inside a function body (run on first call)."""
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and _innermost_function(function, node):
                    yield node


def _innermost_function(function: ast.AST, target: ast.AST) -> bool:
    """True when ``target`` is not inside a function nested in ``function`` (so each import counts once)."""
    for child in ast.iter_child_nodes(function):
        if child is target:
            return True
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if _innermost_function(child, target):
            return True
    return False


def import_graph(root: Path) -> dict[str, set[str]]:
    """``utils`` module -> the ``utils`` modules it imports at load time (package ``__init__`` files left out)."""
    modules = {module_name(root, p): p for p in sorted((root / "utils").rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name, path in modules.items() if path.name != "__init__.py"}
    for name in graph:
        for node in load_time_imports(parse(modules[name])):
            for target in _imported_modules(node, name, modules):
                if target in graph and target != name:
                    graph[name].add(target)
    return graph


def _imported_modules(node: ast.Import | ast.ImportFrom, importer: str, modules: dict[str, Path]) -> list[str]:
    """The modules an import statement loads: ``from utils.jobs import pipeline`` names ``utils.jobs.pipeline``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the importer's package
        package = importer.split(".")[: -node.level]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def floor_of(module: str) -> str:
    """``utils.jobs.queue`` -> ``jobs``; a module directly under utils/ -> ``shared``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "shared"


def imports_up_the_floors(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a package into another one on the same or a higher floor (see FLOORS)."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if floor_of(target) != floor_of(module)
                  and FLOORS.get(floor_of(target), 99) >= FLOORS.get(floor_of(module), 99))


def packages_named_like_output(root: Path) -> list[str]:
    """Source folders named ``build`` or ``dist`` (linters and packagers skip or delete them)."""
    return sorted(str(p.parent.relative_to(root)) for folder in OURS for p in (root / folder).rglob("*.py")
                  if {"build", "dist"} & set(p.relative_to(root).parts[:-1]))


def publisher_name_branches(root: Path) -> list[str]:
    """Code that asks which publisher it has instead of what it can do: ``x.name == "github"``,
    ``publisher_name == "local"``, or a publisher's ``.name`` handed to a function as a switch."""
    found = []
    for path in [*sorted((root / "utils").rglob("*.py")), *sorted(root.glob("*.py"))]:
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Compare) and _compares_publisher_name(node):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Call):
                for argument in [*node.args, *(k.value for k in node.keywords)]:
                    if _is_publisher_object_name(argument):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def _compares_publisher_name(node: ast.Compare) -> bool:
    sides = [node.left, *node.comparators]
    constants = {s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)}
    return any(_is_publisher_name(s) for s in sides) or (
        bool(constants & PUBLISHER_NAMES) and any(_names_a_name(s) for s in sides))


def _is_publisher_name(node: ast.AST) -> bool:
    """``publisher.name``, ``self.publisher.name``, ``config.publisher_name`` and the like."""
    if isinstance(node, ast.Attribute):
        if node.attr == "publisher_name":
            return True
        return node.attr == "name" and "publisher" in ast.unparse(node.value).lower()
    return isinstance(node, ast.Name) and node.id == "publisher_name"


def _is_publisher_object_name(node: ast.AST) -> bool:
    """``publisher.name`` handed on as a value (reporting ``config.publisher_name`` is no switch)."""
    return isinstance(node, ast.Attribute) and node.attr == "name" and "publisher" in ast.unparse(node.value).lower()


def _names_a_name(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr.endswith("name")) or (
        isinstance(node, ast.Name) and node.id.endswith("name"))


def functions_with_many_parameters(root: Path) -> list[str]:
    """Functions (and lambdas) of ours taking more than MAX_PARAMETERS parameters, ``self``/``cls`` not counted."""
    found = []
    for path in python_files(root):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                arguments = node.args
                names = [a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]
                names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > MAX_PARAMETERS:
                    label = getattr(node, "name", "lambda")
                    found.append(f"{path.relative_to(root)}:{node.lineno} {label} ({count})")
    return found


def long_modules(root: Path) -> list[str]:
    """Modules of the service and the benchmarks over MAX_LINES lines (tests/ is not held to it: a test module
    is read one test at a time)."""
    return [f"{path.relative_to(root)} ({lines})" for path in python_files(root)
            if path.relative_to(root).parts[0] != "tests"
            and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]


def private_imports(root: Path) -> list[str]:
    """``from x import _name`` (or ``import x._y``) of one of our modules from another module of ours."""
    ours = {module_name(root, p) for p in python_files(root)}
    found = []
    for path in python_files(root):
        importer = module_name(root, path)
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom) and not node.level:
                module = node.module or ""
                if module.split(".")[0] not in {m.split(".")[0] for m in ours}:
                    continue  # third-party (pytest's _pytest, …) is not ours to shape
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                private += [module] if any(part.startswith("_") and not part.startswith("__")
                                           for part in module.split(".")) else []
                if private and module != importer:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {', '.join(private)} from {module}")
    return found


def unexplained_function_imports(root: Path) -> list[str]:
    """Imports inside functions of the service (utils/ and the top-level modules) without ``# why:`` on their
    first line: such an import stays only where import time needs it, and says so."""
    found = []
    for path in python_files(root):
        if path.relative_to(root).parts[0] in ("tests", "bench"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in function_level_imports(parse(path)):
            if "# why:" not in lines[node.lineno - 1]:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


RULES = {
    "import cycles among utils modules": lambda root: import_cycles(import_graph(root)),
    "imports up the floors": lambda root: imports_up_the_floors(import_graph(root)),
    "packages named build or dist": packages_named_like_output,
    "branches on a publisher's name": publisher_name_branches,
    f"functions with more than {MAX_PARAMETERS} parameters": functions_with_many_parameters,
    f"modules over {MAX_LINES} lines": long_modules,
    "private names imported across modules": private_imports,
    "function-level imports without a reason": unexplained_function_imports,
}


@pytest.mark.parametrize("rule", RULES)
def test_the_tree_keeps_its_shape(rule: str):
    assert RULES[rule](ROOT) == [], f"{rule} (see tests/test_architecture.py)"


def test_the_import_graph_sees_type_only_imports_and_not_function_level_ones():
    graph = import_graph(ROOT)
    assert "utils.store.base" in graph["utils.jobs.queue"], "a module-level import is an edge"
    assert graph["utils.jobs.worker"] >= {"utils.jobs.queue", "utils.jobs.pipeline"}, \
        "an import under TYPE_CHECKING is an edge too"


def test_each_rule_finds_what_it_names(tmp_path: Path):
    """A small tree that breaks every rule once: each rule names exactly the offence."""
    (tmp_path / "utils" / "build").mkdir(parents=True)
    (tmp_path / "utils" / "__init__.py").write_text("")
    (tmp_path / "utils" / "build" / "__init__.py").write_text("")
    (tmp_path / "utils" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from utils.b import B\n"
        "def f(p, q, r, s, t, u, v, w, x):\n    from utils import c\n")
    (tmp_path / "utils" / "b.py").write_text(
        "from utils.a import f\nfrom utils.c import _hidden\nB = 1\n"
        "def go(publisher):\n    return publisher.name == 'github'\n")
    for floor, module in (("jobs", "run"), ("web", "page")):
        (tmp_path / "utils" / floor).mkdir()
        (tmp_path / "utils" / floor / f"{module}.py").write_text("from utils.web import page\n" * (floor == "jobs"))
    (tmp_path / "utils" / "c.py").write_text("import utils.a\n_hidden = 1\n" + "x = 1\n" * MAX_LINES)
    found = {rule: check(tmp_path) for rule, check in RULES.items()}
    assert found == {
        "import cycles among utils modules": [["utils.a", "utils.b", "utils.c"]],
        "imports up the floors": ["utils.jobs.run -> utils.web.page"],
        "packages named build or dist": ["utils/build"],
        "branches on a publisher's name": ["utils/b.py:5: publisher.name == 'github'"],
        f"functions with more than {MAX_PARAMETERS} parameters": ["utils/a.py:4 f (9)"],
        f"modules over {MAX_LINES} lines": [f"utils/c.py ({MAX_LINES + 2})"],
        "private names imported across modules": ["utils/b.py:2: _hidden from utils.c"],
        "function-level imports without a reason": ["utils/a.py:5: from utils import c"],
    }
    assert [ast.unparse(n) for n in function_level_imports(parse(tmp_path / "utils" / "a.py"))] == \
        ["from utils import c"], "an import inside a function is counted as such, and is no edge of the graph"
