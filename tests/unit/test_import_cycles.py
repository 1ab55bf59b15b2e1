"""No import cycles in the package. Every import of a package module counts, wherever it is written: one at
module level makes a cycle that breaks as soon as someone imports the "wrong" module first, and one inside a
function or under `if TYPE_CHECKING:` only hides the same knot (two modules that know each other's insides).
Shared types go in leaf modules; a part is given what it uses (a Protocol, a callable)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "nanofolks"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """module -> package modules it imports. `from a.b import c` depends on `a.b.c` when that is a module,
    else on `a.b`; importing `a.b` also runs `a/__init__.py`, so it depends on `a` too (unless the importer
    is inside `a`: a package's `__init__` always runs before its own modules)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}

    def add(src: str, target: str) -> None:
        parts = target.split(".")
        for n in range(1, len(parts) + 1):  # the parents' __init__ run first
            name = ".".join(parts[:n])
            if name in files and name != src and not src.startswith(name + "."):
                graph[src].add(name)

    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(module, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = resolve(module, path.name == "__init__.py", node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    add(module, full if full in files else base)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search, colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_every_import() -> None:
    """The checker itself: module-level, lazy and type-only imports are all edges."""
    graph = import_graph()
    assert "nanofolks.store.db" in graph["nanofolks.store.memory"]  # module level
    assert "nanofolks.orchestrator.pipeline" in graph["nanofolks.services"]  # inside a function
    assert "nanofolks.llm.spend" in graph["nanofolks.llm.client"]  # under TYPE_CHECKING


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
])
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle
