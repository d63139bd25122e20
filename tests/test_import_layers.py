"""The import structure (docs/ARCHITECTURE.md): no module of sketch2face is in an import cycle,
and the import-linter contracts of pyproject.toml hold (``.ci/run`` also runs ``lint-imports``)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph: object) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)  # type: ignore[attr-defined]
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}  # type: ignore[attr-defined]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_no_module_of_sketch2face_is_in_an_import_cycle() -> None:
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("sketch2face", cache_dir=None)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    class Graph:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(m: str) -> set[str]:
            return {"a": {"b"}, "b": {"a", "c"}, "c": set()}[m]

    assert _cycles(Graph()) == [["a", "b"]]


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run(
        [lint, "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


#: sqlalchemy names that build queries; the views (web/pages, web/api) leave them to services/
QUERY_NAMES = frozenset(
    {"select", "func", "insert", "update", "delete", "text", "and_", "or_", "exists", "union"}
)
#: Session methods that run SQL
QUERY_METHODS = frozenset({"execute", "scalar", "scalars"})
VIEW_PACKAGES = ("pages", "api")


def _query_code(source: str) -> list[str]:
    """Where ``source`` builds or runs a SQL query: sqlalchemy query names imported or used as
    ``sa.<name>``, and ``.execute`` / ``.scalar`` / ``.scalars`` calls."""
    tree = ast.parse(source)
    aliases: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name == "sqlalchemy" or name.name.startswith("sqlalchemy."):
                    aliases.add((name.asname or name.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"line {node.lineno}: from {node.module} import {n.name}"
                for n in node.names
                if n.name in QUERY_NAMES
            ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in QUERY_NAMES:
            base = node.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"line {node.lineno}: {base.id}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
    return found


def test_views_hold_no_query_code() -> None:
    """Issue 24 item 2: no SQL in the views; the pages and the API call services/ for it."""
    web = REPO_ROOT / "src" / "sketch2face" / "web"
    offenders = {
        str(path.relative_to(web)): hits
        for package in VIEW_PACKAGES
        for path in sorted((web / package).glob("*.py"))
        if (hits := _query_code(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"query code in the views (move it to services/): {offenders}"


def test_query_code_check_finds_query_code() -> None:
    source = (
        "import sqlalchemy as sa\nfrom sqlalchemy import func\n"
        "rows = session.scalars(sa.select(User)).all()\n"
    )
    assert sorted(_query_code(source)) == [
        "line 2: from sqlalchemy import func",
        "line 3: .scalars(...)",
        "line 3: sa.select",
    ]
    assert _query_code("import sqlalchemy as sa\nexcept_ = sa.exc.OperationalError\n") == []
