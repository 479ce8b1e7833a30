"""The dependency lock stays in step with pyproject.toml (tests/lockfile.py)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests import lockfile

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(text)}


@pytest.fixture
def project() -> dict[str, object]:
    return lockfile.load_project()


def test_committed_locks_match_pyproject(project):
    for lock in lockfile.LOCKS:
        assert lockfile.disagreement(lock, project) is None


def test_a_dependency_added_without_relocking_is_named_in_one_line(project):
    changed = copy.deepcopy(project)
    changed["project"]["dependencies"].append("rich>=13")
    message = lockfile.disagreement(lockfile.RUNTIME, changed)
    assert message is not None
    assert "\n" not in message
    assert "requirements.txt is out of date with pyproject.toml" in message
    assert "'rich>=13'" in message
    assert lockfile.REFRESH_COMMAND in message


def test_a_changed_dev_range_and_a_dropped_dependency_are_both_named(project):
    changed = copy.deepcopy(project)
    dev = changed["project"]["optional-dependencies"]["dev"]
    dev[dev.index("pytest>=8")] = "pytest>=99"
    changed["project"]["dependencies"].remove("sniffio>=1.3")
    message = lockfile.disagreement(lockfile.DEV, changed)
    assert message is not None
    assert "'[dev] pytest>=99'" in message
    assert "no longer has '[dev] pytest>=8'" in message
    assert "no longer has 'sniffio>=1.3'" in message


def test_a_missing_lock_is_reported(project, tmp_path):
    missing = lockfile.Lock(tmp_path / "requirements.txt", extras=())
    assert lockfile.disagreement(missing, project) == (
        f"requirements.txt is missing; create it with `{lockfile.REFRESH_COMMAND}`"
    )


def test_check_exits_1_with_the_message_on_stderr(monkeypatch, capsys):
    project = lockfile.load_project()
    project["project"]["dependencies"].append("rich>=13")  # type: ignore[index]
    monkeypatch.setattr(lockfile, "load_project", lambda: project)
    assert lockfile.check() == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2  # one line per lock
    assert all(line.startswith("lock check: ") for line in err)


def test_every_direct_dependency_is_pinned_within_its_range(project):
    runtime, dev = pins(lockfile.RUNTIME.path), pins(lockfile.DEV.path)
    meta = project["project"]
    assert isinstance(meta, dict)
    for text in meta["dependencies"]:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in runtime, f"{name} is not in requirements.txt"
        assert requirement.specifier.contains(runtime[name]), (name, runtime[name])
    for text in meta["optional-dependencies"]["dev"]:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert requirement.specifier.contains(dev[name]), (name, dev.get(name))


def test_dev_lock_pins_the_runtime_set_exactly_as_set_up_does():
    runtime, dev = pins(lockfile.RUNTIME.path), pins(lockfile.DEV.path)
    assert {name: dev.get(name) for name in runtime} == runtime


def test_every_pin_is_hash_checked():
    for lock in lockfile.LOCKS:
        blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.path.read_text(encoding="utf-8"))
        for block in blocks:
            if PIN.match(block):
                assert "--hash=sha256:" in block, block.splitlines()[0]
