"""The package's shape, checked from the source: the import graph of ``router`` and function lengths.

    .venv/bin/python -m tests.architecture        # prints cycles, long functions, function-level imports

Every ``import`` counts, wherever it stands (module level or inside a function: a function-level import
is still a dependency, only a later one), except those under ``if TYPE_CHECKING:``, which never run.
An edge goes to the most specific ``router`` module named (``from router.a import b`` is an edge to
``router.a.b`` when that is a module, else to ``router.a``), as grimp and import-linter count them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "router"
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    in_function: bool


def _imports(tree: ast.AST, known: set[str], current: str) -> Iterator[Import]:
    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (i for n in child.orelse for i in visit_one(n, in_function))
                continue
            yield from visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> Iterator[Import]:
        nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, None, node.lineno, in_function)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield from _resolve(node.module, alias.name, node.lineno, in_function)
        else:
            yield from visit(node, nested)

    def _resolve(module: str, name: str | None, line: int, in_function: bool) -> Iterator[Import]:
        if not module.startswith("router"):
            return
        target = f"{module}.{name}" if name and f"{module}.{name}" in known else module
        if target in known and target != current:
            yield Import(target, line, in_function)

    yield from visit(tree, False)


def graph() -> dict[str, list[Import]]:
    known = modules()
    return {
        name: list(_imports(ast.parse(path.read_text(encoding="utf-8")), set(known), name))
        for name, path in known.items()
    }


def cycles(edges: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in {i.target for i in edges.get(v, [])}:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


@dataclass(frozen=True)
class LongFunction:
    where: str
    name: str
    lines: int


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[LongFunction]:
    out = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append(LongFunction(f"{name}:{node.lineno}", node.name, length))
    return out


def main() -> int:
    edges = graph()
    found = cycles(edges)
    n_edges = sum(len({i.target for i in v}) for v in edges.values())
    late = sorted({(m, i) for m, imports in edges.items() for i in imports if i.in_function}, key=str)
    print(f"{len(edges)} modules, {n_edges} internal import edges, {len(found)} cycle(s)")
    for component in found:
        print("  cycle:", " <-> ".join(component))
    long = long_functions()
    print(f"{len(long)} function(s) over {MAX_FUNCTION_LINES} lines")
    for f in long:
        print(f"  {f.where} {f.name}: {f.lines} lines")
    print(f"{len(late)} function-level import(s) of router modules")
    for m, i in late:
        print(f"  {m}:{i.line} -> {i.target}")
    return 1 if found or long else 0


if __name__ == "__main__":
    sys.exit(main())
