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

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
