"""The portal's pages never reach the CRM door: writes go through the outbox."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sync.portal
import sync.portal.tabs

#: Every module of the web app: pages, forms, ops pages, /metrics, the server.
PAGE_MODULES = [
    *(f"sync.portal.{m.name}" for m in pkgutil.iter_modules(sync.portal.__path__)),
    *(f"sync.portal.tabs.{m.name}" for m in pkgutil.iter_modules(sync.portal.tabs.__path__)),
]


def loaded_after_import(modules: list[str], prefix: str) -> list[str]:
    """The modules under ``prefix`` a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({prefix!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_given_the_portal_pages_when_imported_then_no_crm_module_is_loaded() -> None:
    assert {"sync.portal.tabs.account", "sync.portal.app", "sync.portal.ops"} <= set(PAGE_MODULES)
    assert loaded_after_import(PAGE_MODULES, "sync.crm") == []


def test_given_a_module_that_imports_the_crm_when_checked_then_it_is_reported() -> None:
    assert "sync.crm.errors" in loaded_after_import(["sync.context"], "sync.crm")
