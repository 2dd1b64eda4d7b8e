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

# Front-end tests (tests/ui) drive Debian's chromium through Playwright; Playwright's own browser is never
# downloaded. Installed here when missing (as root, with apt-get); under CI=true the tests fail without it.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (Debian package) for the browser tests ..."
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium not found; the NiceGUI browser test will be skipped (it fails under CI=true)" >&2
  fi
fi

# The cluster tests (tests/cluster) run `quvel serve --redis` nodes on a real redis-server (the Debian
# package), never a mock. Installed here when missing; under CI=true the tests fail without it.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (Debian package) for the cluster tests ..."
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "warning: redis-server not found; the cluster tests will be skipped (they fail under CI=true)" >&2
  fi
fi

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy --strict"
mypy
echo "== pytest"
python -m pytest "$@"
