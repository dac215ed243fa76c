#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/ui). Playwright drives it through
# executable_path; `playwright install` cannot download its own browsers here.
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
