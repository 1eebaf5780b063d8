#!/usr/bin/env bash
# bench/dns_cpu.sh — the control thread's CPU per 1,000 DNS names re-resolved per second.
#
# usage: bench/dns_cpu.sh [--names N] [--duration S] [--out FILE]
#   --names N      resolve: true entries, one name each (default 1000)
#   --duration S   measured seconds (default 30)
#   --out FILE     also write the markdown result there (e.g. bench/dns-results.md)
#
# dnsmasq (dnsmasq-base) on a loopback port serves N names (TTL 1 s) from a hosts file;
# l4lb has one service with N `resolve: true` entries and dns.min_ttl = max_ttl = 1s, so
# every name is re-resolved (A + AAAA) about once a second and every answer is the same
# as the last. Over --duration seconds it reads the utime+stime of l4lb's control thread
# (the main thread: /proc/PID/task/PID/stat) and the lookups counted by
# l4lb_dns_lookups_total, and reports CPU ms per second per 1,000 names/s. It also counts
# `dns changed` lines in the window: an unchanged answer must apply nothing (0).
# Every process started here is stopped by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAMES=1000 DURATION=30 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --names) NAMES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--names N] [--duration S] [--out FILE]" >&2; exit 2 ;;
  esac
done
L4LB=${L4LB_BIN:-$ROOT/build/l4lb}
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$L4LB" ] || { echo "build l4lb first (make)" >&2; exit 1; }
[ -x "$DNSMASQ" ] || { echo "dnsmasq not installed (scripts/install-deps.sh --test)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/l4lb-dns-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DNS_PORT=$(free_port); ADMIN_PORT=$(free_port); LISTEN_PORT=$(free_port)

for ((i = 0; i < NAMES; i++)); do
  echo "127.1.$((i / 250)).$((i % 250 + 1)) n$i.bench.test"
done > "$WORK/hosts"

"$DNSMASQ" --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null \
  --addn-hosts="$WORK/hosts" --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --local-ttl=1 --local=/test/ --cache-size=0 --user="$(id -un)" \
  --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/dnsmasq.log" &
PIDS+=($!)

{
  echo "global:"
  echo "  log_level: info"
  echo "  admin: {listen: 127.0.0.1:$ADMIN_PORT}"
  echo "  dns: {servers: [\"127.0.0.1:$DNS_PORT\"], min_ttl: 1s, max_ttl: 1s, timeout: 1s}"
  echo "services:"
  echo "  - name: bench"
  echo "    listen: 127.0.0.1:$LISTEN_PORT"
  echo "    health_check: {type: none}"
  echo "    backends:"
  for ((i = 0; i < NAMES; i++)); do echo "      - {address: \"n$i.bench.test:9\", resolve: true}"; done
} > "$WORK/l4lb.yaml"
"$L4LB" -c "$WORK/l4lb.yaml" 2> "$WORK/l4lb.log" &
LB=$!
PIDS+=($LB)

lookups() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk '/^l4lb_dns_lookups_total\{/ { s += $NF } END { printf "%d\n", s }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$LB/task/$LB/stat"; }

for _ in $(seq 50); do
  n=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats" 2>/dev/null |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"][0]["backends"]))' 2>/dev/null || echo 0)
  [ "$n" = "$NAMES" ] && break
  sleep 0.2
done
[ "$n" = "$NAMES" ] || { echo "only $n of $NAMES names resolved" >&2; tail "$WORK/l4lb.log" >&2; exit 1; }
sleep 3  # settle: the first (changing) lookups are over

TCK=$(getconf CLK_TCK)
changed0=$(grep -c 'msg="dns changed"' "$WORK/l4lb.log" || true)
l0=$(lookups); c0=$(cpu_ticks); t0=$(date +%s.%N)
sleep "$DURATION"
l1=$(lookups); c1=$(cpu_ticks); t1=$(date +%s.%N)
changed1=$(grep -c 'msg="dns changed"' "$WORK/l4lb.log" || true)
failed=$(grep -c 'msg="dns failed"' "$WORK/l4lb.log" || true)

python3 - "$l0" "$l1" "$c0" "$c1" "$t0" "$t1" "$TCK" "$NAMES" "$((changed1 - changed0))" "$failed" "$OUT" <<'PY'
import sys, datetime, platform, os
l0, l1, c0, c1 = map(int, sys.argv[1:5])
t0, t1 = float(sys.argv[5]), float(sys.argv[6])
tck, names, changed, failed, out = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
secs = t1 - t0
rate = (l1 - l0) / secs                  # entries re-resolved per second (each: A + AAAA)
cpu = (c1 - c0) / tck / secs             # control thread: CPU seconds per second
per_k = cpu * 1000 / (rate / 1000) if rate else float("nan")
cpus = os.cpu_count()
text = f"""# Backends from DNS: control-thread CPU

`bench/dns_cpu.sh --names {names} --duration {secs:.0f}` ({datetime.date.today()}, {platform.machine()}, {cpus} CPUs shared
with other work; dnsmasq on loopback, TTL 1 s, `dns.min_ttl = max_ttl = 1s`, one service with
{names} `resolve: true` entries, health checks off).

| names | re-resolved names/s | queries/s (A + AAAA) | control thread CPU | **CPU per 1,000 names/s** | `dns changed` in window | `dns failed` |
|---|---|---|---|---|---|---|
| {names} | {rate:.0f} | {2 * rate:.0f} | {cpu * 100:.1f}% of a core | **{per_k:.1f} ms/s** ({per_k / 10:.2f}% of a core) | {changed} | {failed} |

Each re-resolution is two c-ares queries over UDP on the control thread's libev loop; an
answer equal to the last set is compared (sorted, O(n)) and dropped: no expansion, no pool
rebuild, no WorldStop (`dns changed` = {changed} over the window shows that nothing was
applied). The data workers are not involved at all.
"""
print(text)
if out:
    open(out, "w").write(text)
PY
