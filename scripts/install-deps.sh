#!/usr/bin/env bash
# Installs the Debian packages l4lb needs to build and run (and with --test, the real
# peers the integration tests talk to: HAProxy and nginx for the PROXY protocol,
# systemd-analyze for the unit file, keepalived and iproute2 for scripts/ha-demo.sh, bird2
# (BGP) for scripts/ecmp-demo.sh (its packaged service is left disabled: the demo starts its own),
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
  --test) pkgs+=(haproxy nginx systemd keepalived bird2 iproute2 mariadb-server mariadb-client
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
# bird2's package enables (and, where services may start, starts) a host-wide BGP daemon; the
# tests start their own bird in network namespaces and want none on the host.
if [[ " ${missing[*]} " == *" bird2 "* ]]; then
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now bird >/dev/null 2>&1 || true
  else
    $SUDO systemctl disable bird >/dev/null 2>&1 || true       # offline: removes the links only
    pid=$(cat /run/bird/bird.pid 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = bird ]; then
      $SUDO kill "$pid" || true
    fi
  fi
fi
