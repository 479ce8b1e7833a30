#!/usr/bin/env bash
# The project's test command (README "Test"): installs what the tests need into
# ./.venv, then runs lint (ruff), types (mypy) and the test suite (pytest).
# Extra arguments go to pytest, e.g. `bash tests/check.sh -k poll`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "ssf-hub needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V))" >&2; exit 1; }

# The lock must match pyproject.toml (a dependency added without re-locking stops here).
"$PYTHON" -m tests.lockfile check

# Install exactly the locked set: a venv is built from requirements-dev.txt and stamped with
# its hash; when the lock changes, the venv is built anew, so nothing left over from an
# earlier lock stays installed.
LOCK_STAMP=$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' requirements-dev.txt)
if [ "$(cat .venv/.ssf-hub-lock 2>/dev/null || true)" != "$LOCK_STAMP" ]; then
  echo "== installing the locked dependencies (requirements-dev.txt) into .venv"
  rm -rf .venv
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  .venv/bin/python -m pip check
  echo "$LOCK_STAMP" > .venv/.ssf-hub-lock
fi

# The Redis backend's tests start their own redis-server, and a Redis Cluster formed with
# redis-cli (tests/support/redis.py); redis-tools, which has redis-cli, is a dependency of
# redis-server but named too, so a machine with only the server gets it.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools (Debian packages)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools
fi

# The console's browser tests (tests/console) drive Debian's chromium headless; they never skip,
# so a machine without it gets it here (a missing browser after this fails those tests).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (Debian package, for the console's browser tests)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Four workers (pytest-xdist) on a 2-core machine: most tests wait on sockets and
# subprocesses, not the CPU (measured: 3.4-3.8 min against 6.4 min with two workers, three
# full runs each, all green). SSF_HUB_TEST_WORKERS=0 runs everything in one process.
.venv/bin/python -m pytest -n "${SSF_HUB_TEST_WORKERS:-4}" "$@"
# Every benchmark once, small (tests/bench/README.md): a smoke run, never a pass/fail on speed.
if [ "${SSF_HUB_SKIP_BENCH:-0}" != "1" ]; then
  echo "== benchmarks (smoke run; SSF_HUB_SKIP_BENCH=1 skips it)"
  .venv/bin/python -m tests.bench.all --quick
fi
