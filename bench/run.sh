#!/usr/bin/env bash
# bench/run.sh — side-by-side benchmark of l4lb against HAProxy and nginx stream.
#
# usage: bench/run.sh [--quick] [--repeats N] [--only LIST] [--out FILE] [--keep]
#   --quick        ~3 minutes: 1 repeat, short runs (default: 3 repeats, < 13 minutes)
#   --repeats N    repeats per measurement (median and min–max are reported)
#   --only LIST    comma-separated subset of: direct,haproxy,haproxy-splice,nginx,floor,l4lb
#                  (default), and l4lb-splice,l4lb-copy (l4lb with `global: splice: always` / `never`;
#                  every test but idle and sni); floor = bench/floor_proxy.c, the least any read/write
#                  proxy does per request: a yardstick, run for the ka and nc tests only; needs a C compiler
#   --tests LIST   comma-separated subset of: bulk1,bulk8,bulk1cap,bulk8cap,ka,nc,idle,sni
#                  (bulk1cap/bulk8cap: bulk1/bulk8 with the balancer's processes in a cgroup limited
#                  to BENCH_CAP_PCT% of one core, cgroup v2 cpu.max or v1 cpu.cfs_quota_us; not direct)
#                  (sni: new connections that each send a captured TLS ClientHello to an address
#                  shared by 4 services routed by server name; direct, haproxy, nginx and l4lb
#                  only, each in a balancer process of its own; needs a C compiler; bench/sni_lib.sh)
#   --out FILE     results file (default bench/results.md)
#   --keep         keep the work directory (configs, logs, raw outputs) in /tmp
#   --wait-quiet S before each balancer round, wait (at most S s in total) for other load on
#                  the machine to drop below 25% (it is always measured and reported)
# env: L4LB_BIN (default build/l4lb), L4LB_DESC (free text: what that binary is), BENCH_PORT_BASE (default 61200),
#      BENCH_IDLE_CONNS (default 9800), BENCH_GEN_CPU (0), BENCH_LB_CPU (1), BENCH_SNI_CONNS (64),
#      BENCH_CAP_PCT (30: the capped tests' quota, % of one CPU per 100 ms period)
#
# Method: loopback only; the balancer alone on CPU $LB_CPU (taskset), load generators and
# backends on CPU $GEN_CPU; one worker/thread per balancer. Per unit of work the balancer's
# CPU time is read from /proc/PID/stat (utime+stime of the process and its children) before
# and after each run. Installs nothing; the capped tests create (and at exit remove) the cgroup
# l4lb-bench-PID.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/sni_lib.sh"

QUICK=0
REPEATS=
ONLY="direct,haproxy,haproxy-splice,nginx,floor,l4lb"
TESTS="bulk1,bulk8,bulk1cap,bulk8cap,ka,nc,idle,sni"
OUT="$BENCH_DIR/results.md"
KEEP=0
QUIET_LEFT=0
QUIET_WAITED=0
QUIET_ARG=0
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --repeats) REPEATS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --tests) TESTS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --wait-quiet) QUIET_LEFT=$2; QUIET_ARG=$2; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

if ((QUICK)); then
  : "${REPEATS:=1}"; BULK_T=3; WRK_T=4; BUDGET=170
else
  : "${REPEATS:=3}"; BULK_T=5; WRK_T=7; BUDGET=570
fi
# the budget is for the default number of repeats: more repeats asked for, more time given
((REPEATS > 3)) && BUDGET=$((BUDGET * REPEATS / 3))
IDLE_N=${BENCH_IDLE_CONNS:-9800}
CAP_PCT=${BENCH_CAP_PCT:-30}
[[ $CAP_PCT =~ ^[0-9]+$ ]] && ((CAP_PCT >= 1 && CAP_PCT <= 100)) || die "BENCH_CAP_PCT=$CAP_PCT: a whole percentage of one CPU, 1-100"
WRK_C=64
L4LB_BIN=${L4LB_BIN:-$ROOT_DIR/build/l4lb}
L4LB_BIN=$(realpath -m "$L4LB_BIN")
OUT=$(realpath -m "$OUT")

# ---- prerequisites (install nothing) -------------------------------------------------
missing=()
for t in haproxy nginx iperf3 wrk python3 taskset ss pgrep timeout; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
NGINX_STREAM_SO=$(find_stream_module || true)
[[ -n $NGINX_STREAM_SO ]] || missing+=("nginx stream module (Debian: libnginx-mod-stream)")
((${#missing[@]} == 0)) || die "missing: ${missing[*]} — install them (Debian: apt-get install haproxy nginx libnginx-mod-stream iperf3 wrk python3 util-linux iproute2 procps) and rerun"
[[ -x $L4LB_BIN ]] || die "l4lb binary $L4LB_BIN not found: run 'make build/l4lb' or set L4LB_BIN"
(($(nproc) >= 2)) || die "needs at least 2 CPUs (balancer on CPU $LB_CPU, generators on CPU $GEN_CPU)"
[[ $TESTS == sni ]] || for p in "$P_IPERF" "$P_HTTP" "$P_LB_BULK" "$P_LB_HTTP"; do
  port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done
if [[ ",$TESTS," == *",sni,"* ]]; then
  command -v "${CC:-cc}" >/dev/null 2>&1 || die "the sni test needs a C compiler (set CC)"
  for p in "$P_SNI_A" "$P_SNI_B" "$P_SNI_C" "$P_SNI_W" "$P_LB_SNI"; do
    port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
  done
fi

bench_renice
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

HARD=$(ulimit -Hn)
ulimit -n "$HARD"
((HARD >= 2 * IDLE_N + 200)) || log "warning: fd hard limit $HARD < 2*$IDLE_N+200; the idle test may fail"

WORK=$(mktemp -d /tmp/l4lb-bench.XXXXXX)
cd "$WORK"   # nothing the script runs may drop files into the caller's directory
RAW="$WORK/raw.tsv"
# Use a private copy of the binary: the shared tree may be rebuilt while we run.
cp "$L4LB_BIN" "$WORK/l4lb-bin"
L4LB_ID=$(l4lb_id "$L4LB_BIN")
L4LB_BIN_ORIG=$L4LB_BIN
L4LB_BIN="$WORK/l4lb-bin"
: >"$RAW"
trap on_exit EXIT
trap 'exit 130' INT TERM

# raw LB REP TEST KEY VALUE
raw() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# ---- measurements ------------------------------------------------------------------------

# Take a snapshot of balancer CPU (ticks, ns) and the LB core's busy jiffies.
snap() {
  if [[ -n ${LB_PID:-} ]]; then S_TICKS=$(cpu_ticks "$LB_PID"); S_NS=$(cpu_ns "$LB_PID"); else S_TICKS=0; S_NS=0; fi
  S_CORE=$(core_busy "$LB_CPU")
  S_WALL=$EPOCHREALTIME
}
# record deltas since snap as lb_cpu_s (stat), lb_cpu_ns_s (schedstat), core_s (/proc/stat cpuN)
record_cpu() {
  local lb=$1 rep=$2 test=$3 t0=$S_TICKS n0=$S_NS c0=$S_CORE w0=$S_WALL
  snap
  raw "$lb" "$rep" "$test" wall_s "$(awk -v a="$w0" -v b="$S_WALL" 'BEGIN{printf "%.3f", b-a}')"
  if [[ -n ${LB_PID:-} ]]; then
    raw "$lb" "$rep" "$test" lb_cpu_s "$(awk -v a="$t0" -v b="$S_TICKS" -v h="$CLK_TCK" 'BEGIN{printf "%.4f", (b-a)/h}')"
    raw "$lb" "$rep" "$test" lb_cpu_sched_s "$(awk -v a="$n0" -v b="$S_NS" 'BEGIN{printf "%.6f", (b-a)/1e9}')"
  fi
  raw "$lb" "$rep" "$test" core_s "$(awk -v a="$c0" -v b="$S_CORE" -v h="$CLK_TCK" 'BEGIN{printf "%.4f", (b-a)/h}')"
}

run_bulk() {  # LB REP STREAMS [cap] : test bulkN, or bulkNcap (the balancer already in the capped cgroup)
  local lb=$1 rep=$2 n=$3 cap=${4:-} out="$WORK/iperf-$1-$2-$3${4:-}.json" thr0=0
  [[ -z $cap ]] || thr0=$(cap_throttled_ns)
  snap
  timeout $((BULK_T + 20)) taskset -c "$GEN_CPU" iperf3 -c 127.0.0.1 -p "$LB_PORT_BULK" \
    -t "$BULK_T" -P "$n" -J >"$out" 2>&1 || { log "iperf3 failed ($lb, $n streams$cap): $(head -c 300 "$out")"; return 0; }
  record_cpu "$lb" "$rep" "bulk$n$cap"
  # how long the cgroup was held back by its quota during the run
  [[ -z $cap ]] || raw "$lb" "$rep" "bulk$n$cap" throttled_s "$(awk -v a="$thr0" -v b="$(cap_throttled_ns)" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
  python3 - "$out" "$lb" "$rep" "bulk$n$cap" >>"$RAW" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
if "error" in d:
    sys.stderr.write("iperf3: %s\n" % d["error"]); sys.exit(0)
r = d["end"]["sum_received"]
print("%s\t%s\t%s\tbytes\t%d" % (sys.argv[2], sys.argv[3], sys.argv[4], r["bytes"]))
print("%s\t%s\t%s\tgbps\t%.3f" % (sys.argv[2], sys.argv[3], sys.argv[4], r["bits_per_second"] / 1e9))
print("%s\t%s\t%s\tseconds\t%.3f" % (sys.argv[2], sys.argv[3], sys.argv[4], r["seconds"]))
EOF
  sleep 0.5
}

run_wrk() {  # LB REP ka|nc
  local lb=$1 rep=$2 mode=$3 out="$WORK/wrk-$1-$2-$3.txt" args
  args=(-c"$WRK_C" -t1 -d"${WRK_T}s" --latency --timeout 5s)
  [[ $mode == nc ]] && args+=(-H "Connection: close")
  snap
  timeout $((WRK_T + 20)) taskset -c "$GEN_CPU" wrk "${args[@]}" "http://127.0.0.1:$LB_PORT_HTTP/" >"$out" 2>&1 \
    || { log "wrk failed ($lb, $mode): $(head -c 300 "$out")"; return 0; }
  record_cpu "$lb" "$rep" "$mode"
  python3 - "$out" "$lb" "$rep" "$mode" >>"$RAW" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
key = "\t".join(sys.argv[2:5])
def ms(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", t)
if not m:
    sys.stderr.write("wrk output not understood:\n" + t); sys.exit(0)
print("%s\trequests\t%s" % (key, m.group(1)))
m2 = re.search(r"Requests/sec:\s+([\d.]+)", t)
if m2: print("%s\trps\t%s" % (key, m2.group(1)))
for p in ("50", "99"):
    m3 = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, t, re.M)
    if m3: print("%s\tp%s_ms\t%.4f" % (key, p, ms(m3.group(1), m3.group(2))))
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errs = sum(int(x) for x in e.groups()) if e else 0
n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs += int(n2.group(1)) if n2 else 0
print("%s\terrors\t%d" % (key, errs))
EOF
  sleep 0.5
}

run_idle() {  # LB REP
  local lb=$1 rep=$2 ready="$WORK/idle-ready" cpid i est
  local rss0=0 fd0=0 rss1=0 fd1=0 slab0 slab1 tm0 tm1
  rm -f "$ready"
  # Wait for sockets of earlier runs to be gone so the deltas are ours.
  for ((i = 0; i < 50; i++)); do (($(established_on "$P_HTTP") == 0)) && break; sleep 0.1; done
  sleep 0.5
  if [[ -n ${LB_PID:-} ]]; then rss0=$(rss_kib "$LB_PID"); fd0=$(fd_count "$LB_PID"); fi
  slab0=$(slab_kib); tm0=$(tcp_mem_pages)
  start_bg idle-client taskset -c "$GEN_CPU" python3 "$BENCH_DIR/idle_client.py" 127.0.0.1 "$LB_PORT_HTTP" "$IDLE_N" "$ready"
  cpid=$LASTPID
  for ((i = 0; i < 600; i++)); do
    [[ -s $ready ]] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -s $ready ]]; then
    log "idle client failed ($lb): $(tail -c 300 "$WORK/idle-client.log")"
    stop_pid "$cpid"; return 0
  fi
  # All client connects done; wait until the backend holds them all (through the balancer).
  for ((i = 0; i < 300; i++)); do
    est=$(established_on "$P_HTTP")
    ((est >= IDLE_N)) && break
    sleep 0.1
  done
  sleep 1.5
  if [[ -n ${LB_PID:-} ]]; then rss1=$(rss_kib "$LB_PID"); fd1=$(fd_count "$LB_PID"); fi
  slab1=$(slab_kib); tm1=$(tcp_mem_pages)
  est=$(established_on "$P_HTTP")
  raw "$lb" "$rep" idle conns "$est"
  raw "$lb" "$rep" idle connect_s "$(awk '{print $2}' "$ready")"
  if [[ -n ${LB_PID:-} ]]; then
    raw "$lb" "$rep" idle rss_kib_per_conn "$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_N" 'BEGIN{printf "%.3f", (b-a)/n}')"
    raw "$lb" "$rep" idle fds_per_conn "$(awk -v a="$fd0" -v b="$fd1" -v n="$IDLE_N" 'BEGIN{printf "%.3f", (b-a)/n}')"
    raw "$lb" "$rep" idle rss_kib_before "$rss0"
  fi
  raw "$lb" "$rep" idle slab_kib_per_conn "$(awk -v a="$slab0" -v b="$slab1" -v n="$IDLE_N" 'BEGIN{printf "%.3f", (b-a)/n}')"
  raw "$lb" "$rep" idle tcpmem_kib_per_conn "$(awk -v a="$tm0" -v b="$tm1" -v n="$IDLE_N" 'BEGIN{printf "%.3f", (b-a)*4/n}')"
  stop_pid "$cpid"
  # Let the balancer close its side before the next run.
  for ((i = 0; i < 100; i++)); do (($(established_on "$P_HTTP") == 0)) && break; sleep 0.1; done
}

run_sni() {  # LB REP : new connection with a ClientHello, routed by server name (bench/sni_lib.sh)
  local lb=$1 rep=$2 out="$WORK/sni-$1-$2.txt"
  sni_start_lb "$lb"
  # routing check first: each name to its backend, names that match nothing closed
  if ! sni_check "$lb"; then
    log "sni routing check FAILED ($lb): not measured; see below"
    cat "$WORK/sni-check-$lb.txt" >&2
    raw "$lb" "$rep" sni check_ok 0
    sni_stop_lb; return 0
  fi
  raw "$lb" "$rep" sni check_ok 1
  snap
  sni_load "$lb" "$out" || { log "sni_client failed ($lb): $(head -c 300 "$out")"; sni_stop_lb; return 0; }
  record_cpu "$lb" "$rep" sni
  # conns -> requests (report.py divides LB CPU by it, as for wrk), cps -> rps
  awk -F= -v k="$lb"$'\t'"$rep"$'\tsni' '
    $1 == "conns" {print k "\trequests\t" $2} $1 == "cps" {print k "\trps\t" $2}
    $1 ~ /^(errors|seconds|p50_ms|p90_ms|p99_ms|max_ms)$/ {print k "\t" $1 "\t" $2}' "$out" >>"$RAW"
  sni_stop_lb
  sleep 0.5
}

has_test() { [[ ",$TESTS," == *",$1,"* ]]; }
# runs LB TEST: whether TEST is measured for balancer LB (the floor proxy does request/response only)
# (sni: direct, haproxy, nginx and l4lb only; capped: not direct, which has no balancer to cap;
# l4lb-splice and l4lb-copy compare data paths: not idle)
runs() {
  has_test "$2" || return 1
  case $1:$2 in
    direct:bulk1cap|direct:bulk8cap|l4lb-splice:idle|l4lb-copy:idle) return 1 ;;
  esac
  case $2 in
    sni) [[ $1 == direct || $1 == haproxy || $1 == nginx || $1 == l4lb ]] ;;
    *) [[ $1 != floor ]] || [[ $2 == ka || $2 == nc ]] ;;
  esac
}
# seconds one round of LB takes, roughly
lb_seconds() {
  local lb=$1
  echo $(( $(runs "$lb" bulk1 && echo "$BULK_T" || echo 0) + $(runs "$lb" bulk8 && echo "$BULK_T" || echo 0) \
    + $(cap_seconds "$lb") \
    + $(runs "$lb" ka && echo "$WRK_T" || echo 0) + $(runs "$lb" nc && echo "$WRK_T" || echo 0) \
    + $(runs "$lb" idle && echo 8 || echo 0) + $(runs "$lb" sni && echo $((WRK_T + 2)) || echo 0) + 4 ))
}

# seconds the capped tests of LB take, roughly
cap_seconds() {
  echo $(( $(runs "$1" bulk1cap && echo $((BULK_T + 1)) || echo 0) + $(runs "$1" bulk8cap && echo $((BULK_T + 1)) || echo 0) ))
}
# any test that needs the iperf3 and nginx backends and the balancer of start_lb
runs_main() {
  local t
  for t in bulk1 bulk8 bulk1cap bulk8cap ka nc idle; do runs "$1" "$t" && return 0; done
  return 1
}

# ---- run -----------------------------------------------------------------------------------

log "work dir $WORK; repeats $REPEATS; bulk ${BULK_T}s; wrk ${WRK_T}s; idle $IDLE_N conns; balancers $ONLY"
T_START=$SECONDS
IFS=, read -r -a LBS <<<"$ONLY"
SNI_ANY=0
MAIN_ANY=0   # any test that uses the iperf3 and nginx backends
CAP_ANY=0
for lb in "${LBS[@]}"; do
  case $lb in direct|haproxy|haproxy-splice|nginx|floor|l4lb|l4lb-splice|l4lb-copy) ;; *) die "unknown balancer $lb (see --help)" ;; esac
  runs "$lb" sni && SNI_ANY=1
  runs_main "$lb" && MAIN_ANY=1
  runs "$lb" bulk1cap || runs "$lb" bulk8cap && CAP_ANY=1
  # l4lb-splice / l4lb-copy need an l4lb that knows `global: splice`: ask the binary first
  if [[ $lb == l4lb-splice || $lb == l4lb-copy ]] && runs_main "$lb"; then
    gen_l4lb "$WORK/check-$lb" "$(l4lb_splice_mode "$lb")"
    "$L4LB_BIN" -t -c "$WORK/check-$lb/l4lb.yaml" >"$WORK/check-$lb.log" 2>&1 \
      || die "$lb: $L4LB_BIN_ORIG rejects its config (global: splice: $(l4lb_splice_mode "$lb")): $(head -c 300 "$WORK/check-$lb.log")"
  fi
done
if ((CAP_ANY)); then
  cap_setup "$CAP_PCT" || die "the capped tests (bulk1cap, bulk8cap) need a cgroup with a CPU quota, and neither cgroup v2 nor v1 works here: ${CAP_WHY%; } (run as root, or leave them out of --tests)"
  log "capped tests: cgroup $CAP_VER $CAP_DIR, quota $CAP_PCT% of one CPU ($((CAP_PCT * CAP_PERIOD_US / 100)) µs per $CAP_PERIOD_US µs)${CAP_WEIGHT:+, $CAP_WEIGHT}"
fi
((MAIN_ANY)) && start_backends
if ((SNI_ANY)); then
  sni_prepare
  sni_start_backend
  log "sni: ClientHello of $SNI_HELLO_BYTES bytes; $SNI_C connections for ${WRK_T}s"
fi
sleep 0.5
ROUND_EST=0
SNI_ROUND=0
CAP_ROUND=0
for lb in "${LBS[@]}"; do
  ROUND_EST=$((ROUND_EST + $(lb_seconds "$lb")))
  runs "$lb" sni && SNI_ROUND=$((SNI_ROUND + WRK_T + 2))
  CAP_ROUND=$((CAP_ROUND + $(cap_seconds "$lb")))
done
# the sni and capped tests came after the budget was set: give them their own time, not that of the others
BUDGET=$((BUDGET + REPEATS * (SNI_ROUND + CAP_ROUND)))
DONE_REPS=0
for ((rep = 1; rep <= REPEATS; rep++)); do
  # stay inside the time budget: never start a round that would overrun it
  # (time spent in --wait-quiet does not count: the run is bounded by BUDGET + that wait)
  if ((rep > 1 && SECONDS - T_START - QUIET_WAITED + ROUND_EST > BUDGET)); then
    log "time budget (${BUDGET}s) reached: stopping after $DONE_REPS repeats"
    break
  fi
  # rotate the order each repeat, so no balancer always runs in the same slot of a round
  ORDER=("${LBS[@]:$(((rep - 1) % ${#LBS[@]}))}" "${LBS[@]:0:$(((rep - 1) % ${#LBS[@]}))}")
  for lb in "${ORDER[@]}"; do
    wait_quiet
    log "repeat $rep/$REPEATS: $lb (other load: ${BG_PCT}% of both CPUs)"
    raw "$lb" "$rep" round bg_pct "$BG_PCT"
    if runs_main "$lb"; then
      start_lb "$lb"
      runs "$lb" bulk1 && run_bulk "$lb" "$rep" 1
      runs "$lb" bulk8 && run_bulk "$lb" "$rep" 8
      if runs "$lb" bulk1cap || runs "$lb" bulk8cap; then
        cap_enter "$LB_PID"   # all of the balancer's processes and threads, in for these runs only
        raw "$lb" "$rep" round cap_threads "$CAP_NTHREADS"
        runs "$lb" bulk1cap && run_bulk "$lb" "$rep" 1 cap
        runs "$lb" bulk8cap && run_bulk "$lb" "$rep" 8 cap
        cap_leave
      fi
      runs "$lb" ka && run_wrk "$lb" "$rep" ka
      runs "$lb" nc && run_wrk "$lb" "$rep" nc
      runs "$lb" idle && run_idle "$lb" "$rep"
      stop_lb
    fi
    runs "$lb" sni && run_sni "$lb" "$rep"
  done
  DONE_REPS=$rep
done
ELAPSED=$((SECONDS - T_START))
cleanup_all

# ---- report ------------------------------------------------------------------------------
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
  echo "kernel=$(uname -r) (TCP congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control))"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "haproxy=$(haproxy -v 2>&1 | head -1)"
  echo "nginx=$(nginx -v 2>&1)"
  echo "iperf3=$(iperf3 -v 2>&1 | head -1)"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "l4lb=$L4LB_ID"
  echo "repeats=$DONE_REPS"
  echo "bulk_t=$BULK_T"
  echo "wrk_t=$WRK_T"
  echo "wrk_c=$WRK_C"
  echo "idle_n=$IDLE_N"
  ((CAP_ANY)) && echo "cap_pct=$CAP_PCT" && echo "cap_cgroup=$CAP_VER" \
    && echo "cap_how=$( [[ $CAP_VER == v2 ]] && echo "cpu.max $((CAP_PCT * CAP_PERIOD_US / 100)) $CAP_PERIOD_US" || echo "cpu.cfs_quota_us $((CAP_PCT * CAP_PERIOD_US / 100)), cpu.cfs_period_us $CAP_PERIOD_US")${CAP_WEIGHT:+, $CAP_WEIGHT} in ${CAP_DIR%/*}/l4lb-bench-PID"
  ((SNI_ANY)) && echo "sni_c=$SNI_C" && echo "sni_hello_bytes=$SNI_HELLO_BYTES" \
    && echo "python_ssl=$(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)')"
  echo "elapsed=$ELAPSED"
  echo "quiet_waited=$QUIET_WAITED"
  echo "load=$LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15-min load averages)"
  echo "nice=$BENCH_NICE$([[ -n $AUTOGROUP_OLD ]] && echo ' (process and session autogroup)')"
  echo "quick=$QUICK"
  echo "lb_cpu=$LB_CPU"
  echo "gen_cpu=$GEN_CPU"
  echo "cmdline=$([[ $L4LB_BIN_ORIG != "$ROOT_DIR/build/l4lb" ]] && echo "L4LB_BIN=$L4LB_BIN_ORIG ")$([[ $CAP_PCT != 30 ]] && echo "BENCH_CAP_PCT=$CAP_PCT ")bench/run.sh$( ((QUICK)) && echo ' --quick')$( ((QUIET_ARG)) && echo " --wait-quiet $QUIET_ARG")"
  echo "ports=iperf3 $P_IPERF, http backend $P_HTTP, balancer bulk $P_LB_BULK, balancer http $P_LB_HTTP$( ((SNI_ANY)) && echo ", sni backends $P_SNI_A-$P_SNI_W, balancer sni $P_LB_SNI")"
} >"$WORK/meta.txt"
python3 "$BENCH_DIR/report.py" --raw "$RAW" --meta "$WORK/meta.txt" --configs "$WORK" --out "$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cp "$WORK/meta.txt" "${OUT%.md}.meta"   # report.py --raw X.raw.tsv --meta X.meta regenerates X.md
log "done in ${ELAPSED}s: $OUT (raw: ${OUT%.md}.raw.tsv)"
