#!/usr/bin/env bash
# Creates .venv with the pinned packages (once; again only when a requirements file changes).
# Usage: scripts/setup_env.sh [--test]   (--test adds playwright and Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "MSD Studio needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
files=(requirements.txt pyproject.toml)
[ "${1:-}" = "--test" ] && files+=(requirements-test.txt requirements-trackers.txt)
stamp=".venv/.installed-$(cat "${files[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  echo "Installing MSD Studio's pinned packages into .venv (a few minutes the first time)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  [ "${1:-}" = "--test" ] && .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser test..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
