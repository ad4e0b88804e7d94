#!/usr/bin/env bash
# The multi-instance tests start a throwaway Redis server on 127.0.0.1; install Debian's
# redis-server package when its binary is absent (needs root or sudo). Nothing is started here.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server not found: installing Debian's redis-server package"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
