#!/usr/bin/env bash
# Sets everything up and runs the whole test suite. Arguments go to pytest.
# Each scripts/setup.d/*.sh prepares one part of the suite (Node packages, Chromium,
# the shared virtual environment for generated repositories, ...), in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
# Tools installed into the venv (kubectl fallback, ruff) are found by the tests.
export PATH="$PWD/.venv/bin:$PATH"
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== setup: $step"
  started=$SECONDS
  bash "$step"
  echo "== setup: $step took $((SECONDS - started)) s"
done
exec .venv/bin/python -m pytest "$@"
