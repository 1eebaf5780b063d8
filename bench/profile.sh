#!/usr/bin/env bash
# bench/profile.sh — where l4lb spends its CPU, and how many syscalls it makes per request,
# next to HAProxy and nginx, under the same keep-alive and new-connection loads as bench/run.sh.
#
# usage: bench/profile.sh [--duration S] [--only LIST] [--out FILE] [--keep]
#   --duration S   seconds per measured run (default 5)
#   --only LIST    balancers, comma-separated, from: l4lb,haproxy,haproxy-splice,nginx,floor
#                  (default l4lb,haproxy,nginx)
#   --out FILE     default bench/profile.md
# env: L4LB_BIN, BENCH_PORT_BASE, BENCH_NICE as for bench/run.sh.
#
# For each balancer and load (keep-alive wrk -c64, and wrk with "Connection: close"):
#   1. perf record -g (cpu-clock; the VM has no hardware counters) on the balancer -> top symbols
#   2. perf stat on the syscalls:sys_enter_* tracepoints of the balancer -> exact syscall counts
#      at full speed, divided by wrk's request count
#   3. strace -c -f on the balancer -> syscall counts per request (ptrace slows the balancer a
#      lot, so batching differs: more epoll_wait per request than at full speed)
# Each step is a separate wrk run, so one tool never distorts another's numbers.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DUR=5
ONLY="l4lb,haproxy,nginx"
OUT="$BENCH_DIR/profile.md"
KEEP=0
while (($#)); do
  case $1 in
    --duration) DUR=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
L4LB_BIN=${L4LB_BIN:-$ROOT_DIR/build/l4lb}
L4LB_BIN=$(realpath -m "$L4LB_BIN")
OUT=$(realpath -m "$OUT")
WRK_C=64

missing=()
for t in haproxy nginx wrk iperf3 perf strace python3 taskset ss pgrep; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
NGINX_STREAM_SO=$(find_stream_module || true)
[[ -n $NGINX_STREAM_SO ]] || missing+=("nginx stream module")
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: apt-get install linux-perf strace ...)"
[[ -x $L4LB_BIN ]] || die "l4lb binary $L4LB_BIN not found (make build/l4lb, or set L4LB_BIN)"
for p in "$P_IPERF" "$P_HTTP" "$P_LB_BULK" "$P_LB_HTTP"; do
  port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

bench_renice
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/l4lb-profile.XXXXXX)
cd "$WORK"   # nothing the script runs may drop files into the caller's directory
mkdir -p "$WORK/bin" && cp "$L4LB_BIN" "$WORK/bin/l4lb"   # private copy: the shared tree may be rebuilt meanwhile
L4LB_ID=$(l4lb_id "$L4LB_BIN")
L4LB_BIN="$WORK/bin/l4lb"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
trap on_exit EXIT
trap 'exit 130' INT TERM

# What perf can do here.
PERF_HW=yes
if perf stat -e instructions true 2>&1 | grep -q 'not supported'; then PERF_HW=no; fi
PERF_REC=no
if perf record -e cpu-clock -g -o "$WORK/probe.data" -- true >/dev/null 2>&1; then PERF_REC=yes; fi
PERF_TP=no
if perf stat -e 'raw_syscalls:sys_enter' -- true >/dev/null 2>&1; then PERF_TP=yes; fi
log "perf: hardware counters $PERF_HW, cpu-clock sampling $PERF_REC, syscall tracepoints $PERF_TP"

# wrk_bg MODE OUTFILE : wrk for DUR seconds in the background on the generator core; pid in WRK_PID
wrk_bg() {
  local mode=$1 out=$2 args
  args=(-c"$WRK_C" -t1 -d"${DUR}s" --latency --timeout 5s)
  [[ $mode == nc ]] && args+=(-H "Connection: close")
  taskset -c "$GEN_CPU" wrk "${args[@]}" "http://127.0.0.1:$LB_PORT_HTTP/" >"$out" 2>&1 &
  WRK_PID=$!
  STARTED_PIDS+=("$WRK_PID")
}
wrk_requests() { awk '/requests in/ {print $1}' "$1"; }

start_backends
RESULTS="$WORK/results.tsv"   # lb mode tool key value
: >"$RESULTS"
IFS=, read -r -a LBS <<<"$ONLY"
for lb in "${LBS[@]}"; do
  for mode in ka nc; do
    log "$lb, $mode"
    start_lb "$lb"
    # warm-up
    taskset -c "$GEN_CPU" wrk -c"$WRK_C" -t1 -d1s "http://127.0.0.1:$LB_PORT_HTTP/" >/dev/null 2>&1 || true

    # 1. perf record
    if [[ $PERF_REC == yes ]]; then
      wrk_bg "$mode" "$WORK/wrk-$lb-$mode-perf.txt"
      sleep 0.5
      perf record -e cpu-clock -g -o "$WORK/perf-$lb-$mode.data" -p "$(pid_tree "$LB_PID" | paste -sd,)" \
        -- sleep $((DUR - 1)) >"$WORK/perf-record-$lb-$mode.log" 2>&1 || true
      wait "$WRK_PID" || true
      perf report -i "$WORK/perf-$lb-$mode.data" --stdio --no-children --sort sym -g none \
        --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >"$WORK/top-self-$lb-$mode.txt" || true
      perf report -i "$WORK/perf-$lb-$mode.data" --stdio --children --sort sym -g none \
        --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' | grep -v ' 0x0000' | head -30 \
        >"$WORK/top-children-$lb-$mode.txt" || true   # (unwound user frames without frame pointers are bogus: dropped)
      perf report -i "$WORK/perf-$lb-$mode.data" --stdio --no-children --sort dso -g none \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >"$WORK/top-dso-$lb-$mode.txt" || true
      sleep 0.5
    fi

    # 2. perf stat on syscall tracepoints (exact counts, small overhead)
    if [[ $PERF_TP == yes ]]; then
      wrk_bg "$mode" "$WORK/wrk-$lb-$mode-pstat.txt"
      # plus the calls that fail: EAGAIN reads/splices are wasted work, failed epoll_ctl/accept4 too
      perf stat -x, -e 'syscalls:sys_enter_*' \
        -e syscalls:sys_exit_recvfrom --filter 'ret == -11' -e syscalls:sys_exit_read --filter 'ret == -11' \
        -e syscalls:sys_exit_splice --filter 'ret == -11' -e syscalls:sys_exit_epoll_ctl --filter 'ret < 0' \
        -e syscalls:sys_exit_accept4 --filter 'ret < 0' -e syscalls:sys_exit_sendto --filter 'ret < 0' \
        -p "$(pid_tree "$LB_PID" | paste -sd,)" \
        -o "$WORK/pstat-$lb-$mode.csv" -- sleep $((DUR + 1)) >/dev/null 2>&1 || true
      wait "$WRK_PID" || true
      req=$(wrk_requests "$WORK/wrk-$lb-$mode-pstat.txt")
      printf '%s\t%s\tpstat\trequests\t%s\n' "$lb" "$mode" "${req:-0}" >>"$RESULTS"
      awk -F, -v lb="$lb" -v mode="$mode" '$3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
          sub(/^syscalls:sys_enter_/, "", $3); printf "%s\t%s\tpstat\t%s\t%s\n", lb, mode, $3, $1 }' \
        "$WORK/pstat-$lb-$mode.csv" >>"$RESULTS"
      awk -F, -v lb="$lb" -v mode="$mode" '$3 ~ /^syscalls:sys_exit_/ && $1 ~ /^[0-9]+$/ {
          sub(/^syscalls:sys_exit_/, "", $3); printf "%s\t%s\tpfail\t%s\t%s\n", lb, mode, $3, $1 }' \
        "$WORK/pstat-$lb-$mode.csv" >>"$RESULTS"
      sleep 0.5
    fi

    # 3. strace -c -f
    wrk_bg "$mode" "$WORK/wrk-$lb-$mode-strace.txt"
    strace -c -f -o "$WORK/strace-$lb-$mode.txt" -p "$LB_PID" $(pgrep -P "$LB_PID" | sed 's/^/-p /') \
      >/dev/null 2>&1 &
    SPID=$!
    STARTED_PIDS+=("$SPID")
    wait "$WRK_PID" || true
    kill -INT "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    req=$(wrk_requests "$WORK/wrk-$lb-$mode-strace.txt")
    printf '%s\t%s\tstrace\trequests\t%s\n' "$lb" "$mode" "${req:-0}" >>"$RESULTS"
    awk -v lb="$lb" -v mode="$mode" '
      /^-+/ || /% time/ || /total$/ {next}
      NF >= 5 { name = $NF; calls = $4; if (calls ~ /^[0-9]+$/) printf "%s\t%s\tstrace\t%s\t%s\n", lb, mode, name, calls }' \
      "$WORK/strace-$lb-$mode.txt" >>"$RESULTS"
    stop_lb
    sleep 0.5
  done
done
cleanup_all

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
  echo "kernel=$(uname -r)"
  echo "l4lb=$L4LB_ID"
  echo "haproxy=$(haproxy -v 2>&1 | head -1)"
  echo "nginx=$(nginx -v 2>&1)"
  echo "perf_hw=$PERF_HW"
  echo "perf_rec=$PERF_REC"
  echo "perf_tp=$PERF_TP"
  echo "dur=$DUR"
  echo "wrk_c=$WRK_C"
  echo "lbs=$ONLY"
  echo "load=$LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
} >"$WORK/meta.txt"
python3 "$BENCH_DIR/profile_report.py" "$WORK" "$OUT"
log "done: $OUT"
