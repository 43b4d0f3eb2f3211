"""The house's floors: the import contracts hold, every part is on a floor, no circle.

The contracts live in pyproject.toml (``[tool.importlinter]``); ``make test`` runs
``lint-imports`` too. These tests keep the picture honest as parts are added: a new
package that is on no floor, or two parts importing each other, fail here.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def _parts(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _part_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("sync", "workers")
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        edges[_parts(module)]
        for imported in graph.find_modules_directly_imported_by(module):
            if _parts(imported) != _parts(module):
                edges[_parts(module)].add(_parts(imported))
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_given_the_code_when_lint_imports_runs_then_every_contract_is_kept():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_given_the_parts_when_imports_are_drawn_then_no_parts_import_each_other_in_a_circle():
    assert _cycles(_part_graph()) == []


def test_given_a_circle_when_searched_then_it_is_found():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert _cycles(edges) == [["a", "b", "c"]]


def test_given_every_part_when_floors_are_read_then_each_stands_on_one_floor():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    on_floor = {name.strip() for layer in layers for name in layer.split("|")}
    # The sandbox is a house of its own beside the library (a forbidden contract keeps
    # everything else out of it); the package roots hold only docstrings.
    apart = {"sync", "workers", "sync.sandbox"}

    missing = sorted(set(_part_graph()) - on_floor - apart)

    assert missing == [], f"parts on no floor of [tool.importlinter]: {missing}"
