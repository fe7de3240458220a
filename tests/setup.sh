#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing that is already there:
# Debian packages (redis-server, curl, g++ for libFuzzer, chromium for the browser CORS test), a
# Python venv with the real Kubernetes clients, and the nightly toolchain with cargo-fuzz for the
# fuzz targets (fuzz/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(curl redis-server g++ chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v kubectl >/dev/null || { echo "kubectl is required (https://kubernetes.io/docs/tasks/tools/)"; exit 1; }

if [ -f tests/python/requirements.txt ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "== python venv"
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -m pip install -q -r tests/python/requirements.txt; then
    echo "pip install failed"; exit 1
  fi
fi

# The fuzz targets build with libFuzzer on the nightly toolchain; cargo-fuzz drives them.
if ! rustup run nightly cargo --version >/dev/null 2>&1; then
  echo "== rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "== cargo install cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
