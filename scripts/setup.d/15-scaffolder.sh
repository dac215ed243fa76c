#!/usr/bin/env bash
# Scaffolder tests: real git (publish:git) and a redis-server binary (the Redis-restart
# test runs a private instance on a free port, besides the shared one on :6379).
set -euo pipefail
if command -v git >/dev/null && command -v redis-server >/dev/null; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends git redis-server >/dev/null
