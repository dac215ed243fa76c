#!/usr/bin/env bash
# Debian's prometheus package: the real server (SLA collection tests) and promtool
# (rule checks of generated repositories).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a system instance on :9090; the tests start their own.
pkill -x prometheus 2>/dev/null || true
