"""The dependency lock: refresh it, and check that it still matches pyproject.toml.

Two hashed requirements files at the top level, the format pip installs natively
(``pip install -r``; hash-checking mode turns on by itself):

- ``requirements.txt``: what ``ssf-hub serve`` needs, plus the build backend, so the
  project installs with ``--no-build-isolation`` and nothing floats at set-up.
- ``requirements-dev.txt``: the same pins plus the test, lint and type tools.

Both are resolved universally (every platform, Python 3.11 and newer) by uv, pinned
below; uv is needed only to refresh the lock, never to install from it.

    python3 -m tests.lockfile check     # one line and exit 1 when pyproject.toml moved on
    python3 -m tests.lockfile refresh   # re-resolve to the newest allowed versions

Each lock starts with the inputs it was resolved from (``# input: <requirement>``), so
``check`` needs only the standard library and can name what changed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
UV_VERSION = "0.13.9"
REFRESH_COMMAND = "python3 -m tests.lockfile refresh"
INPUT_PREFIX = "# input: "


@dataclass(frozen=True)
class Lock:
    path: Path
    extras: tuple[str, ...]
    constraint: Path | None = None


RUNTIME = Lock(ROOT / "requirements.txt", extras=())
DEV = Lock(ROOT / "requirements-dev.txt", extras=("dev",), constraint=RUNTIME.path)
LOCKS = (RUNTIME, DEV)


def _normalise(requirement: str) -> str:
    return " ".join(requirement.split())


def lock_inputs(project: dict[str, object], extras: Sequence[str]) -> list[str]:
    """The requirements a lock is resolved from, in a stable order."""
    build = project.get("build-system", {})
    meta = project.get("project", {})
    assert isinstance(build, dict) and isinstance(meta, dict)
    inputs = [f"python {meta.get('requires-python', '')}"]
    inputs += [f"build: {_normalise(r)}" for r in build.get("requires", [])]
    inputs += [_normalise(r) for r in meta.get("dependencies", [])]
    optional = meta.get("optional-dependencies", {})
    for extra in extras:
        inputs += [f"[{extra}] {_normalise(r)}" for r in optional.get(extra, [])]
    return inputs


def recorded_inputs(lock_path: Path) -> list[str]:
    lines = lock_path.read_text(encoding="utf-8").splitlines()
    return [line[len(INPUT_PREFIX) :] for line in lines if line.startswith(INPUT_PREFIX)]


def disagreement(lock: Lock, project: dict[str, object]) -> str | None:
    """One line naming how ``lock`` and pyproject.toml disagree, or None when they agree."""
    name = lock.path.name
    if not lock.path.exists():
        return f"{name} is missing; create it with `{REFRESH_COMMAND}`"
    wanted = lock_inputs(project, lock.extras)
    have = recorded_inputs(lock.path)
    if wanted == have:
        return None
    added = [r for r in wanted if r not in have]
    dropped = [r for r in have if r not in wanted]
    changes = [f"pyproject.toml has '{r}'" for r in added] + [f"no longer has '{r}'" for r in dropped]
    detail = "; ".join(changes) or "the inputs are in another order"
    return f"{name} is out of date with pyproject.toml ({detail}): re-lock with `{REFRESH_COMMAND}`"


def load_project() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def check() -> int:
    project = load_project()
    problems = [p for p in (disagreement(lock, project) for lock in LOCKS) if p]
    for problem in problems:
        print(f"lock check: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _uv(tool_dir: Path) -> Path:
    venv.create(tool_dir, with_pip=True)
    python = tool_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], check=True)
    return tool_dir / "bin" / "uv"


def _resolve(uv: Path, lock: Lock, project: dict[str, object], work: Path) -> None:
    build = project.get("build-system", {})
    assert isinstance(build, dict)
    build_in = work / "build-requirements.in"
    build_in.write_text("\n".join(build.get("requires", [])) + "\n", encoding="utf-8")
    out = work / lock.path.name
    command = [str(uv), "pip", "compile", "--quiet", "--universal", "--python-version", "3.11"]
    command += ["--generate-hashes", "--no-header", "--upgrade", "--output-file", str(out)]
    for extra in lock.extras:
        command += ["--extra", extra]
    if lock.constraint is not None:
        command += ["--constraint", str(lock.constraint)]
    command += [str(PYPROJECT), str(build_in)]
    subprocess.run(command, check=True, cwd=ROOT)
    # uv names the temporary input file in its "via" notes: name what it stands for instead,
    # so a refresh that changes no version changes no line.
    body = out.read_text(encoding="utf-8").replace(f"-r {build_in}", "pyproject.toml [build-system]")
    contents = " + ".join(("runtime", *lock.extras))
    header = [
        f"# ssf-hub dependency lock ({contents})",
        f"# Made by `{REFRESH_COMMAND}` (uv {UV_VERSION}); do not edit by hand.",
        "# Install: pip install -r " + lock.path.name + " (hash-checked), then",
        "#          pip install --no-deps --no-build-isolation -e .",
    ]
    header += [INPUT_PREFIX + r for r in lock_inputs(project, lock.extras)]
    lock.path.write_text("\n".join(header) + "\n\n" + body, encoding="utf-8")


def refresh() -> int:
    project = load_project()
    with tempfile.TemporaryDirectory(prefix="ssf-hub-lock-") as tmp:
        work = Path(tmp)
        uv = _uv(work / "uv")
        for lock in LOCKS:
            _resolve(uv, lock, project, work)
            print(f"wrote {lock.path.relative_to(ROOT)}")
    print("now run the test command (bash tests/check.sh) against the refreshed lock")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["check"]:
        return check()
    if args == ["refresh"]:
        return refresh()
    print("usage: python3 -m tests.lockfile check|refresh", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
