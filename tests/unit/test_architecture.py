"""The folder list is the architecture: layers import only those below them, nothing imports in
a circle, the pure core knows nothing of Kafka or the command line, and modules stay small
enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

STREAMS = Path(__file__).resolve().parents[2] / "streams"

LAYERS = {
    "errors": 0, "model": 1, "rules": 2, "engine": 3, "offline": 4, "live": 4, "tools": 5, "cli": 6,
}
"""A module may import its own layer and those with a lower number; two layers of the same
number (offline and live) may not import each other."""
CORE = ("model", "rules", "engine", "offline")
NOT_IN_CORE = ("faust", "aiokafka", "argparse")
MAX_MODULE_LINES = 450


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(STREAMS.rglob("*.py")):
        parts = path.relative_to(STREAMS.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"


def imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module ``path`` imports, at any depth (inside functions too); with
    ``runtime_only``, not those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def project_imports(path: Path, known: dict[str, Path], **options: bool) -> set[str]:
    return {name for name in imports(path, **options) if name in known}


def test_no_import_runs_up_a_layer() -> None:
    known = modules()
    wrong = []
    for module, path in known.items():
        here = layer(module)
        for target in project_imports(path, known):
            there = layer(target)
            if there not in LAYERS or here not in LAYERS:
                wrong.append(f"{module}: {target} is in no known layer")
            elif LAYERS[there] > LAYERS[here] or (LAYERS[there] == LAYERS[here] and there != here):
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_every_module_is_in_a_layer() -> None:
    strays = [m for m in modules() if m != "streams" and layer(m) not in LAYERS]
    assert not strays, f"modules outside every layer folder: {strays}"


def test_no_import_cycle() -> None:
    known = modules()
    graph = {m: project_imports(p, known, runtime_only=False) - {m} for m, p in known.items()}
    # A package's __init__ is imported with each of its modules: not an edge of its own.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module):], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_core_imports_no_kafka_faust_or_command_line() -> None:
    wrong = []
    for module, path in modules().items():
        if layer(module) in CORE:
            for name in imports(path):
                if name.split(".")[0] in NOT_IN_CORE:
                    wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_modules_are_small_enough_to_read() -> None:
    long = {m: n for m, p in modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_worker_class_reads_in_one_sitting() -> None:
    tree = ast.parse((STREAMS / "live" / "worker.py").read_text())
    (worker,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Worker"]
    assert worker.end_lineno is not None
    assert worker.end_lineno - worker.lineno + 1 < 250


def test_class_names_are_not_reused() -> None:
    seen: dict[str, str] = {}
    reused = []
    for module, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                if node.name in seen:
                    reused.append(f"{node.name}: {seen[node.name]} and {module}")
                seen[node.name] = module
    assert not reused, "one concept, one name:\n" + "\n".join(reused)
