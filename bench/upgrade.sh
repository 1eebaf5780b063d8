#!/usr/bin/env bash
# bench/upgrade.sh — N SIGUSR2 upgrades of l4lb under load: refused and cut connections
# (must be 0 and 0) and the handover times; writes bench/upgrade-results.md.
# usage: bench/upgrade.sh [--upgrades N] [--streams K] [--workers W] [--out FILE] [--append]
# Every process is started and stopped by PID (bench/upgrade_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/l4lb build/l4lb-testd
exec python3 bench/upgrade_bench.py "$@"
