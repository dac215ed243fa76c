#!/usr/bin/env bash
# Sets everything up and starts the portal on embedded defaults at http://127.0.0.1:7007
# (SQLite under .ragportal/, local task queue, no cluster). Arguments go to `ragportal serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/ragportal serve "$@"
