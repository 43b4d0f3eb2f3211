"""Mappings stay pure: nothing in sync/mapping/ imports the database or the CRM door."""

import ast
from pathlib import Path

MAPPING = Path(__file__).resolve().parents[2] / "sync" / "mapping"
FORBIDDEN = ("sync.db", "sync.crm")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_given_mapping_package_when_imports_read_then_neither_database_nor_crm():
    files = sorted(MAPPING.glob("*.py"))
    assert files
    offending = {
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path)
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)
    }
    assert offending == set()
