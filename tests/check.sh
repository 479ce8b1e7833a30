#!/usr/bin/env bash
# The project's test command (README "Test"): installs what the tests need into
# ./.venv, then runs lint (ruff), types (mypy) and the test suite (pytest).
# Extra arguments go to pytest, e.g. `bash tests/check.sh -k poll`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "ssf-hub needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V))" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

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

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Two workers (pytest-xdist): most tests wait on sockets and subprocesses, not the CPU.
# SSF_HUB_TEST_WORKERS=0 runs everything in one process.
.venv/bin/python -m pytest -n "${SSF_HUB_TEST_WORKERS:-2}" "$@"
# Every benchmark once, small (tests/bench/README.md): a smoke run, never a pass/fail on speed.
if [ "${SSF_HUB_SKIP_BENCH:-0}" != "1" ]; then
  echo "== benchmarks (smoke run; SSF_HUB_SKIP_BENCH=1 skips it)"
  .venv/bin/python -m tests.bench.all --quick
fi
