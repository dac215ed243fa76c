#!/usr/bin/env bash
# A real OpenID provider for the sign-in tests (tests/auth): npm oidc-provider, the
# certified Node implementation, run by tests/oidc_provider/provider.mjs.
set -euo pipefail
cd "$(dirname "$0")/../../tests/oidc_provider"
installed=node_modules/oidc-provider/package.json
# `npm ci` only when the lock file changed since the last install (fast when done).
if [ -f "$installed" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
