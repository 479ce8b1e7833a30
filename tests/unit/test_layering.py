"""Dependency direction (DESIGN.md "three rings"): imports point inward only.

* ``hub/core`` is pure: no web framework, HTTP client, database, scheduler, event loop,
  sockets, environment or clock. Time and randomness come in as arguments.
* Inside ``hub``, the core depends only on itself, ``hub.errors`` and the library's SSF
  vocabulary (``receivers.subjects``, ``receivers.events``, ``receivers.event_schemas``),
  which is pure too.
* Between the hub's packages, imports follow :data:`HUB_PACKAGE_RULES`: the rules and
  storage at the bottom, the parts (keys, auth, delivery, transmitter, ingest, upstreams) in
  the middle, the assembled process (``runtime``) above them, the edges (``web``, ``cli``)
  on top. Nothing reaches up.
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
# The library's SSF vocabulary: pure modules the hub's core builds on (one copy of the rules).
VOCABULARY = ("receivers.subjects", "receivers.events", "receivers.event_schemas", "receivers.urls")

# What each part of the hub may import from the others (itself always). A new package or
# import edge must be added here on purpose.
HUB_PACKAGE_RULES: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    # Instruments for the edges and the parts: depend on nothing of the hub's.
    "metrics": frozenset(),
    "logs": frozenset(),
    "core": frozenset({"errors"}),
    "store": frozenset({"core", "errors"}),
    "config": frozenset({"core", "errors"}),
    "keys": frozenset({"config", "errors", "logs", "metrics"}),
    "auth": frozenset({"core", "errors", "keys"}),
    "delivery": frozenset({"core", "errors", "logs", "metrics", "store"}),
    "transmitter": frozenset({"auth", "core", "delivery", "errors", "keys", "logs", "metrics", "store"}),
    "ingest": frozenset({"core", "errors", "logs", "metrics", "store", "transmitter"}),
    "upstreams": frozenset({"core", "errors", "logs", "metrics", "store"}),
    "runtime": frozenset(
        {"auth", "config", "core", "delivery", "errors", "ingest", "keys", "store", "transmitter"}
        | {"upstreams", "logs", "metrics"}
    ),
    "web": frozenset(
        {"auth", "config", "core", "delivery", "errors", "ingest", "keys", "runtime", "store"}
        | {"transmitter", "upstreams", "logs", "metrics", "console"}
    ),
    # The web console (issue #14): an edge mounted by web's app; the admin stream listing it
    # shares with web lives in runtime.
    "console": frozenset({"auth", "core", "errors", "metrics", "runtime", "store"}),
    "cli": frozenset(
        {"auth", "config", "core", "errors", "ingest", "keys", "runtime", "store", "upstreams", "web"}
        | {"logs", "metrics"}
    ),
    "__init__": frozenset(),
    "__main__": frozenset({"cli"}),
}


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
HUB_MODULES = modules_under(HUB_DIR)
VOCABULARY_MODULES = [RECEIVERS_DIR / (name.split(".")[1] + ".py") for name in VOCABULARY]


def within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == ok or name.startswith(ok + ".") for ok in allowed)


def beyond(imported: set[str], root: str, allowed: tuple[str, ...]) -> list[str]:
    """The imported modules under ``root`` that are not within ``allowed``."""
    return sorted(name for name in imported if roots({name}) == {root} and not within(name, allowed))


def hub_imports(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), package=package_of(path, HUB_DIR))


def hub_part(path: Path) -> str:
    """The package (or root module) of ``hub`` that ``path`` belongs to."""
    parts = path.relative_to(HUB_DIR).with_suffix("").parts
    return parts[0]


def hub_part_of_module(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "hub" and len(parts) > 1 else None


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
    assert all(path.exists() for path in VOCABULARY_MODULES)


def test_every_part_of_the_hub_has_a_rule() -> None:
    parts = {hub_part(path) for path in HUB_MODULES}
    assert parts == set(HUB_PACKAGE_RULES), "a package without a rule (or a rule without a package)"


def test_the_package_rules_form_layers_without_cycles() -> None:
    # Repeatedly peel off parts whose allowed imports are all peeled already.
    remaining = dict(HUB_PACKAGE_RULES)
    peeled: set[str] = set()
    while remaining:
        ready = {part for part, allowed in remaining.items() if allowed <= peeled}
        assert ready, f"the rules have a cycle among {sorted(remaining)}"
        peeled |= ready
        for part in ready:
            del remaining[part]


# --- the rings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_modules_do_no_io(path: Path) -> None:
    assert roots(hub_imports(path)) & FORBIDDEN_IN_CORE == set(), f"{_id(path)} imports I/O or clock modules"


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_modules_use_only_the_vocabulary_of_receivers(path: Path) -> None:
    outside = beyond(hub_imports(path), "receivers", VOCABULARY)
    assert outside == [], f"{_id(path)} imports receivers modules outside the SSF vocabulary: {outside}"


@pytest.mark.parametrize("path", VOCABULARY_MODULES, ids=lambda p: str(p.relative_to(RECEIVERS_DIR.parent)))
def test_the_vocabulary_is_pure(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package="receivers")
    assert roots(imported) & FORBIDDEN_IN_CORE == set(), f"{path.name} imports I/O or clock modules"
    assert beyond(imported, "receivers", VOCABULARY) == []


@pytest.mark.parametrize("path", HUB_MODULES, ids=_id)
def test_hub_packages_import_only_what_their_rule_allows(path: Path) -> None:
    part = hub_part(path)
    imported = hub_imports(path)
    reached = {found for name in imported if (found := hub_part_of_module(name)) is not None} - {part}
    # "from hub import __version__" reads hub.__version__, the package's own metadata.
    reached.discard("__version__")
    assert reached <= HUB_PACKAGE_RULES[part], (
        f"{_id(path)} ({part}) reaches {sorted(reached - HUB_PACKAGE_RULES[part])}"
    )


@pytest.mark.parametrize("path", CORE_MODULES, ids=_id)
def test_core_modules_depend_only_on_the_core_and_errors(path: Path) -> None:
    outward = beyond(hub_imports(path), "hub", CORE_MAY_USE_FROM_HUB)
    assert outward == [], f"{_id(path)} imports outer rings: {outward}"


@pytest.mark.parametrize("path", RECEIVER_MODULES, ids=_id)
def test_receivers_do_not_import_the_hub(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package=package_of(path, RECEIVERS_DIR))
    assert "hub" not in roots(imported), f"{_id(path)} imports hub"
