#!/usr/bin/env bash
# Debian's OpenSSH server: tests/git_hosts runs a private sshd (own port, own host key,
# own authorized key) to publish to and read back from a git remote over SSH.
set -euo pipefail
if [ -x /usr/sbin/sshd ]; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
# The package may start a system instance on :22; the tests start their own.
pkill -x sshd 2>/dev/null || true
