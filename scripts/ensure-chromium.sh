#!/usr/bin/env bash
# The dashboard tests (tests/ui/) drive Debian's headless chromium through its chromedriver;
# install both when either is absent (needs root or sudo). Nothing is started here.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "chromium or chromedriver not found: installing Debian's chromium and chromium-driver"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
