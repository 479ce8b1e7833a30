"""Dependency direction (DESIGN.md "three rings"): imports point inward only.

* ``hub/core`` is pure: no web framework, HTTP client, database, scheduler, event loop,
  sockets, environment or clock. Time and randomness come in as arguments.
* Inside ``hub``, the core depends only on itself and ``hub.errors``.
* ``receivers/`` depends on nothing in ``hub/``.

Imports are read with :mod:`ast`, so conditional and function-level imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hub
import receivers

HUB_DIR = Path(hub.__file__).parent
CORE_DIR = HUB_DIR / "core"
RECEIVERS_DIR = Path(receivers.__file__).parent

FORBIDDEN_IN_CORE = frozenset(
    {"starlette", "httpx", "sqlite3", "redis", "uvicorn", "apscheduler", "asyncio", "socket", "os", "time"}
)
CORE_MAY_USE_FROM_HUB = ("hub.core", "hub.errors")


def imported_modules(source: str, *, package: str) -> set[str]:
    """Absolute dotted names of every module ``source`` imports (relative ones resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            # "from a import b" reads a.b, whether b is a submodule or a name in a.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def package_of(path: Path, top: Path) -> str:
    return ".".join(path.parent.relative_to(top.parent).parts)


def modules_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


CORE_MODULES = modules_under(CORE_DIR)
RECEIVER_MODULES = modules_under(RECEIVERS_DIR)


def _id(path: Path) -> str:
    return str(path.relative_to(HUB_DIR.parent))


# --- the checker itself can see what it must forbid ---------------------------------------------


def test_the_import_reader_finds_every_kind_of_import() -> None:
    source = """
import os.path
import sqlite3 as db
from time import monotonic
from . import model
from .subjects import subject_key
from .. import config
from hub import errors

def later():
    import asyncio
try:
    import redis
except ImportError:
    pass
"""
    found = imported_modules(source, package="hub.core")
    assert roots(found) >= {"os", "sqlite3", "time", "asyncio", "redis"}
    assert {"hub.core.model", "hub.core.subjects.subject_key", "hub.config", "hub.errors", "os.path"} <= found
    assert roots(found) & FORBIDDEN_IN_CORE == {"os", "sqlite3", "time", "asyncio", "redis"}


def test_the_layering_checks_cover_the_real_modules() -> None:
    names = {path.name for path in CORE_MODULES}
    assert {"streams.py", "routing.py", "poll.py", "status.py", "discovery.py", "secevent.py"} <= names
    assert (RECEIVERS_DIR / "__init__.py") in RECEIVER_MODULES


# --- the rings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_modules_do_no_io(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package=package_of(path, HUB_DIR))
    assert roots(imported) & FORBIDDEN_IN_CORE == set(), f"{_id(path)} imports I/O or clock modules"


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_modules_depend_only_on_the_core_and_errors(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package=package_of(path, HUB_DIR))
    outward = sorted(
        name
        for name in imported
        if roots({name}) == {"hub"}
        and not any(name == ok or name.startswith(ok + ".") for ok in CORE_MAY_USE_FROM_HUB)
    )
    assert outward == [], f"{_id(path)} imports outer rings: {outward}"


@pytest.mark.parametrize("path", RECEIVER_MODULES, ids=_id)
def test_receivers_do_not_import_the_hub(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package=package_of(path, RECEIVERS_DIR))
    assert "hub" not in roots(imported), f"{_id(path)} imports hub"
