#!/usr/bin/env bash
# Renders every overlay and the monitoring bundle, and checks the Prometheus rules.
# Needs kubectl (kustomize is built in) and promtool (Debian/Ubuntu package `prometheus`).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in kubectl promtool; do
  if ! command -v "$tool" >/dev/null; then
    echo "validate-deploy needs $tool on PATH" >&2
    exit 2
  fi
done
for overlay in deploy/k8s/overlays/*/; do
  echo "kustomize: ${overlay}"
  kubectl kustomize "${overlay}" >/dev/null
done
echo "kustomize: monitoring/"
kubectl kustomize monitoring/ >/dev/null
promtool check rules monitoring/prometheus-rules.yaml
