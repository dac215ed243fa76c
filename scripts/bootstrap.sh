#!/usr/bin/env bash
# Creates .venv/ with rag-portal installed (editable) and its test tools.
# Idempotent and fast when nothing changed: pip only runs when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "rag-portal needs Python >= 3.11 (found $("$PYTHON" --version))" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

extras=${1:-}
stamp=".venv/.installed${extras:+-$extras}"
fingerprint=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
  target="."
  [ -n "$extras" ] && target=".[$extras]"
  .venv/bin/python -m pip install --quiet -e "$target"
  echo "$fingerprint" > "$stamp"
fi
