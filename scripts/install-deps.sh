#!/usr/bin/env bash
# Installs the Debian packages l4lb needs to build and run (and with --test, the real
# peers the integration tests talk to: HAProxy and nginx for the PROXY protocol,
# systemd-analyze for the unit file, keepalived and iproute2 for scripts/ha-demo.sh,
# MariaDB for the TCP-check test, clang's libFuzzer and valgrind for make fuzz/valgrind; and
# with --package or --test, Debian's packaging tools for `make deb`: debhelper, dpkg-dev,
# lintian). Idempotent: installs only what is missing.
# Needs root, or sudo.
set -euo pipefail

pkgs=(g++ make pkg-config python3 curl
      libev-dev libyaml-cpp-dev libfmt-dev doctest-dev libsystemd-dev nlohmann-json3-dev libc-ares-dev)
packaging=(debhelper dpkg-dev lintian)
case "${1:-}" in
  "") ;;
  --test) pkgs+=(haproxy nginx systemd keepalived iproute2 mariadb-server mariadb-client
                 clang-14 libclang-rt-14-dev valgrind dnsmasq-base "${packaging[@]}") ;;
  --package) pkgs+=("${packaging[@]}") ;;
  *) echo "usage: scripts/install-deps.sh [--test | --package]" >&2; exit 2 ;;
esac

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
# Installing a server package must not start it (no daemon is wanted on a build machine).
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
