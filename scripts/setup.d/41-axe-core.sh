#!/usr/bin/env bash
# axe-core (npm) for the browser tests' accessibility run: tests/ui/accessibility.py injects
# node_modules/axe-core/axe.min.js into every page it checks.
set -euo pipefail
cd "$(dirname "$0")/../../tests/ui/axe"
installed=node_modules/axe-core/axe.min.js
# `npm ci` only when the lock file changed since the last install (fast when done).
if [ -f "$installed" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
