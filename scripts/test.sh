#!/usr/bin/env bash
# Install everything the test suite needs (Python dev extras, Soketi, pusher-js, laravel-echo) and run it:
# ruff, mypy --strict, then pytest. Extra arguments go to pytest (e.g. scripts/test.sh -k presence).
# Uses the active virtualenv, or creates .venv when none is active.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install --quiet --upgrade pip >/dev/null
python -m pip install --quiet -e ".[dev]"

if command -v npm >/dev/null 2>&1; then
  if [ ! -x peers/node_modules/.bin/soketi ] || [ peers/package.json -nt peers/node_modules/.package-lock.json ]; then
    echo "installing Node peers (Soketi, pusher-js, laravel-echo) into peers/node_modules ..."
    npm install --prefix peers --no-audit --no-fund --loglevel=error
  fi
else
  echo "warning: npm not found; Soketi and Node interop tests will be skipped (they fail under CI=true)" >&2
fi

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy --strict"
mypy
echo "== pytest"
python -m pytest "$@"
