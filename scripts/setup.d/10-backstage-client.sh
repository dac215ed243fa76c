#!/usr/bin/env bash
# Backstage's published catalog client (npm), used by tests/catalog/test_backstage_client.py
# to check that the catalog API works unchanged with Backstage's own clients.
set -euo pipefail
cd "$(dirname "$0")/../../tests/backstage_client"
installed=node_modules/@backstage/catalog-client/package.json
# `npm ci` only when the lock file changed since the last install (fast when done).
if [ -f "$installed" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
