#!/usr/bin/env bash
# The tests start a throwaway PostgreSQL server on 127.0.0.1; install Debian's server package
# when its binaries are absent (needs root or sudo). Nothing is started or configured here.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
echo "PostgreSQL server binaries not found: installing Debian's postgresql package"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
