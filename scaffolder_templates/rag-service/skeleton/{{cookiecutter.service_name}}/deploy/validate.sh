#!/usr/bin/env bash
# Renders every overlay and the monitoring bundle, and checks the Prometheus rules.
# Needs kubectl (kustomize is built in) and promtool.
set -euo pipefail
cd "$(dirname "$0")/.."
for overlay in deploy/k8s/overlays/*/; do
  echo "kustomize: ${overlay}"
  kubectl kustomize "${overlay}" >/dev/null
done
echo "kustomize: monitoring/"
kubectl kustomize monitoring/ >/dev/null
promtool check rules monitoring/prometheus-rules.yaml
