#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromedriver) when missing,
# for the live chart page's browser test (testkit/tests/it/query_browser.rs),
# which runs this script before it starts. Needs root (or passwordless sudo)
# and the Debian package mirrors; prints the two paths on success.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have chromium || ! have chromedriver; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || { echo "chromium/chromedriver missing and not root: cannot install" >&2; exit 1; }
    sudo="sudo -n"
  fi
  # One installer at a time (parallel test processes may both get here).
  exec 9>/tmp/insite-chromium-install.lock
  flock 9
  if ! have chromium || ! have chromedriver; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq chromium chromium-driver >&2
  fi
fi
command -v chromium
command -v chromedriver
