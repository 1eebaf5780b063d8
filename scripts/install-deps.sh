#!/usr/bin/env bash
# Installs the Debian packages l4lb needs to build and test. Idempotent: installs only
# what is missing. Needs root (or sudo when run by make as another user).
set -euo pipefail

pkgs=(g++ make pkg-config python3 curl
      libev-dev libyaml-cpp-dev libfmt-dev doctest-dev libsystemd-dev nlohmann-json3-dev)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
