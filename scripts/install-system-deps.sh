#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages audiochat runs and tests with, if any is missing.
set -euo pipefail

declare -A commands=(
  [redis-server]=redis-server
  [ffmpeg]=ffmpeg
  [espeak-ng]=espeak-ng
  [sox]=sox
  # scripts/stack.sh waits for the gateway's /readyz with it.
  [curl]=curl
  # tests/integration/test_proxy.py runs deploy/nginx.conf, the compose file's proxy.
  [nginx]=nginx
  # The web page's browser test: headless Chromium with a fake microphone (Playwright drives it).
  [chromium]=chromium
  [chromium-driver]=chromedriver
)
missing=()
for package in "${!commands[@]}"; do
  command -v "${commands[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
