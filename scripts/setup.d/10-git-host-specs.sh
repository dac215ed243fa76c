#!/usr/bin/env bash
# GitHub's official OpenAPI description (npm @octokit/openapi), against which
# tests/git_hosts checks every REST call publish:github makes.
set -euo pipefail
cd "$(dirname "$0")/../../tests/git_hosts"
installed=node_modules/@octokit/openapi/package.json
# `npm ci` only when the lock file changed since the last install (fast when done).
if [ -f "$installed" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
