#!/usr/bin/env bash
# bench/reload_p99.sh — what a reload costs l4lb's data path: keep-alive latency (p50/p99/max)
# without reloads (a) and with a SIGHUP every 0.5 s (b), 100 services and 1,000 backends given
# by host names in /etc/hosts, workers: 2; swap_us and the reload's wall time.
#
# usage: bench/reload_p99.sh [--duration S] [--interval S] [--rounds N] [--out FILE] [--keep]
#                            [--wait-quiet S] [--control-cpu LIST]
#   --duration S   length of each wrk run (default 20)
#   --interval S   seconds between SIGHUPs in the (b) runs (default 0.5)
#   --rounds N     rounds of (a) and (b) per binary, interleaved; medians reported (default 3)
#   --out FILE     results (default bench/reload-results.md; raw values in FILE.raw.tsv, FILE.meta)
#   --keep         keep the work directory (configs, logs, wrk outputs) in /tmp
#   --wait-quiet S before each run, wait (at most S s in total) for other load below 25%
#   --control-cpu LIST  move l4lb's main thread (only) to these CPUs once it runs: the control
#                  thread in the current design; worker 0 + control in the previous one
# env: L4LB_BIN (default build/l4lb; "new"), L4LB_OLD_BIN (optional, another l4lb run side by
#      side as "old", e.g. one built from b051eb2), L4LB_DESC / L4LB_OLD_DESC (free text: what
#      each binary is), BENCH_PORT_BASE, BENCH_GEN_CPU, BENCH_LB_CPU
#
# /etc/hosts gets 1,000 names l4lb-bench-bNNNN.test -> 127.77.X.Y in a marked block: it is
# backed up first and restored byte for byte by the EXIT trap (on failure and ctrl-C too).
# Loopback only; l4lb on CPU $LB_CPU, wrk, the nginx backend and the helper on CPU $GEN_CPU.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=20
INTERVAL=0.5
ROUNDS=3
OUT="$BENCH_DIR/reload-results.md"
KEEP=0
QUIET_LEFT=0
QUIET_WAITED=0
QUIET_ARG=0
CONTROL_CPU=
ARGS="$*"
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --wait-quiet) QUIET_LEFT=$2; QUIET_ARG=$2; shift ;;
    --control-cpu) CONTROL_CPU=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

N_SERVICES=100
PER_SERVICE=10                      # backends per service: 1,000 in all
WRK_C=32
WRK_T=2
P_ADMIN=$((PORT_BASE + 12))
P_CLOSED=$((PORT_BASE + 2))         # the 990 backends of services s002-s100: nothing listens there
HOSTS=/etc/hosts
HOSTS_BEGIN="# >>> bench/reload_p99.sh: test names, removed when it exits"
HOSTS_END="# <<< bench/reload_p99.sh"
PY="$BENCH_DIR/reload_p99.py"

missing=()
for t in nginx wrk python3 taskset ss cmp; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: apt-get install nginx wrk python3 util-linux iproute2 diffutils)"
((EUID == 0)) || die "run as root (it edits /etc/hosts)"
declare -A BIN=([new]=$(realpath -m "${L4LB_BIN:-$ROOT_DIR/build/l4lb}"))
DESIGNS=(new)
[[ -n ${L4LB_OLD_BIN:-} ]] && { BIN[old]=$(realpath -m "$L4LB_OLD_BIN"); DESIGNS+=(old); }
OUT=$(realpath -m "$OUT")   # the script runs in its work directory
for d in "${DESIGNS[@]}"; do [[ -x ${BIN[$d]} ]] || die "l4lb binary ${BIN[$d]} not found (make build/l4lb, or set L4LB_BIN)"; done
for p in "$P_HTTP" "$P_LB_HTTP" "$P_ADMIN" "$P_CLOSED"; do port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"; done
grep -qF "$HOSTS_BEGIN" "$HOSTS" && die "$HOSTS still has a block from an earlier run: delete the lines from '$HOSTS_BEGIN' to '$HOSTS_END'"

bench_renice
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/l4lb-reload.XXXXXX)
cd "$WORK"
RAW="$WORK/raw.tsv"
: >"$RAW"
raw() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# ---- /etc/hosts: backup, marked block, restore -----------------------------------------
HOSTS_BACKUP=
hosts_add() {
  local i
  HOSTS_BACKUP="$WORK/hosts.orig"
  cp -p "$HOSTS" "$HOSTS_BACKUP"
  {
    cat "$HOSTS_BACKUP"
    [[ -z $(tail -c1 "$HOSTS_BACKUP") ]] || echo
    echo "$HOSTS_BEGIN"
    for ((i = 1; i <= N_SERVICES * PER_SERVICE; i++)); do
      printf '127.77.%d.%d l4lb-bench-b%04d.test\n' $(((i - 1) / 100)) $(((i - 1) % 100 + 1)) "$i"
    done
    echo "$HOSTS_END"
  } >"$WORK/hosts.bench"
  cat "$WORK/hosts.bench" >"$HOSTS"   # in place: /etc/hosts may be a bind mount
}
hosts_restore() {
  [[ -n $HOSTS_BACKUP ]] || return 0
  # Unchanged since we wrote it (or cut short while writing): the backup, byte for byte.
  if head -c "$(stat -c %s "$HOSTS")" "$WORK/hosts.bench" | cmp -s - "$HOSTS"; then
    cat "$HOSTS_BACKUP" >"$HOSTS"
  elif grep -qF "$HOSTS_BEGIN" "$HOSTS"; then  # someone else changed it meanwhile: drop only our block
    awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' "$HOSTS" >"$WORK/hosts.now"
    cat "$WORK/hosts.now" >"$HOSTS"
  fi
  if cmp -s "$HOSTS" "$HOSTS_BACKUP"; then
    log "$HOSTS restored (identical to its backup)"
  else
    log "warning: $HOSTS differs from its backup $HOSTS_BACKUP (kept)"; KEEP=1
  fi
  HOSTS_BACKUP=
}
finish() { local rc=$?; set +e; hosts_restore; (exit $rc); on_exit; }  # on_exit reads $? and exits with it
trap finish EXIT
trap 'exit 130' INT TERM

# ---- configuration -------------------------------------------------------------------------
gen_config() {  # 100 services x 10 backends, all by name; service s001 carries the traffic
  local s b i port listen
  {
    printf 'global:\n  workers: 2\n  log_level: info\n  admin:\n    listen: 127.0.0.1:%d\nservices:\n' "$P_ADMIN"
    for ((s = 1; s <= N_SERVICES; s++)); do
      if ((s == 1)); then listen=127.0.0.1; port=$P_HTTP; else listen=127.78.0.$s; port=$P_CLOSED; fi
      printf '  - name: s%03d\n    listen: %s:%d\n    idle_timeout: 1h\n    health_check: {type: none}\n    backends:\n' \
        "$s" "$listen" "$P_LB_HTTP"
      for ((b = 1; b <= PER_SERVICE; b++)); do
        i=$(((s - 1) * PER_SERVICE + b))
        printf '      - address: l4lb-bench-b%04d.test:%d\n' "$i" "$port"
      done
    done
  } >"$WORK/l4lb.yaml"
}
# The backend nginx of lib.sh, listening on the 10 addresses service 1's names resolve to.
gen_backend() {
  local listen="" b
  gen_backend_nginx "$WORK/backend-nginx"
  for ((b = 1; b <= PER_SERVICE; b++)); do listen+="listen 127.77.0.$b:$P_HTTP backlog=4096; "; done
  sed -i "s|listen 127.0.0.1:$P_HTTP backlog=4096;|$listen|" "$WORK/backend-nginx/nginx.conf"
}

# ---- one run: fresh l4lb, wrk for DURATION s, SIGHUPs every INTERVAL s in mode b ------------
run_one() {  # DESIGN ROUND a|b
  local d=$1 r=$2 m=$3 tag="$1-$2-$3" iv=0 drv m0 m1 c0 c1 i t v
  [[ $m == b ]] && iv=$INTERVAL
  wait_quiet
  log "round $r/$ROUNDS: $d ($m) (other load: ${BG_PCT}% of both CPUs)"
  raw "$d" "$r" "$m" bg_pct "$BG_PCT"
  start_bg "lb-$tag" env NOTIFY_SOCKET="$WORK/notify.sock" taskset -c "$LB_CPU" "$WORK/l4lb-$d" -c "$WORK/l4lb.yaml"
  LB_PID=$LASTPID
  wait_listen "$P_LB_HTTP" 30 || { cat "$WORK/lb-$tag.log" >&2; die "l4lb ($d) did not start"; }
  [[ -z $CONTROL_CPU ]] || taskset -p -c "$CONTROL_CPU" "$LB_PID" >/dev/null
  sleep 1
  m0=$(thread_ns "$LB_PID" "$LB_PID"); c0=$(cpu_ns "$LB_PID")
  start_bg "drive-$tag" taskset -c "$GEN_CPU" python3 "$PY" drive "$LB_PID" "$iv" "$DURATION" "$WORK/notify.sock"
  drv=$LASTPID
  timeout $((${DURATION%.*} + 30)) taskset -c "$GEN_CPU" wrk -c"$WRK_C" -t"$WRK_T" -d"${DURATION}s" --latency --timeout 5s \
    "http://127.0.0.1:$P_LB_HTTP/" >"$WORK/wrk-$tag.txt" 2>&1 || log "wrk failed ($tag): $(head -c 300 "$WORK/wrk-$tag.txt")"
  wait "$drv" || log "reload driver failed ($tag): $(tail -c 300 "$WORK/drive-$tag.log")"
  m1=$(thread_ns "$LB_PID" "$LB_PID"); c1=$(cpu_ns "$LB_PID")
  for t in /proc/"$LB_PID"/task/*; do  # the other threads (data workers), since l4lb started
    [[ ${t##*/} == "$LB_PID" ]] && continue
    v=$(awk '{printf "%.3f", $1 / 1e9}' "$t/schedstat" 2>/dev/null) && [[ -n $v ]] && raw "$d" "$r" "$m" thread_cpu_s "$v"
  done
  stop_pid "$LB_PID"
  for ((i = 0; i < 50; i++)); do port_busy "$P_LB_HTTP" || break; sleep 0.1; done
  raw "$d" "$r" "$m" main_cpu_s "$(awk -v a="$m0" -v b="$m1" 'BEGIN {printf "%.6f", (b - a) / 1e9}')"
  raw "$d" "$r" "$m" lb_cpu_s "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.6f", (b - a) / 1e9}')"
  { python3 "$PY" wrk "$WORK/wrk-$tag.txt" || true; cat "$WORK/drive-$tag.log"
    grep 'reload ok' "$WORK/lb-$tag.log" | grep -o 'swap_us=[0-9]*' | tr '=' ' ' || true
    echo "log_reloads_ok $(grep -c 'reload ok' "$WORK/lb-$tag.log" || true)"
  } | awk -v p="$d	$r	$m" 'NF == 2 {print p "\t" $1 "\t" $2}' >>"$RAW"
}

# ---- run -----------------------------------------------------------------------------------
T_START=$SECONDS
declare -A ID
for d in "${DESIGNS[@]}"; do cp "${BIN[$d]}" "$WORK/l4lb-$d"; done
ID[new]=$(l4lb_id "${BIN[new]}")
[[ -z ${BIN[old]:-} ]] || ID[old]=$(L4LB_DESC=${L4LB_OLD_DESC:-} l4lb_id "${BIN[old]}")
hosts_add
gen_config
declare -A CHECK_MS  # `l4lb -t`: read the file and resolve the names, nothing running
for d in "${DESIGNS[@]}"; do
  t0=$EPOCHREALTIME
  "$WORK/l4lb-$d" -t -c "$WORK/l4lb.yaml" >/dev/null 2>"$WORK/check-$d.log" || { cat "$WORK/check-$d.log" >&2; die "config rejected by $d"; }
  CHECK_MS[$d]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
done
gen_backend
start_bg backend-nginx taskset -c "$GEN_CPU" nginx -e "$WORK/backend-nginx/error.log" -c "$WORK/backend-nginx/nginx.conf"
wait_listen "$P_HTTP" 10 || die "backend nginx did not start (see $WORK/backend-nginx.log)"
log "work dir $WORK; ${#DESIGNS[@]} binaries (${DESIGNS[*]}), $ROUNDS rounds, ${DURATION}s runs, SIGHUP every ${INTERVAL}s in (b)"

for ((r = 1; r <= ROUNDS; r++)); do
  ORDER=()
  for d in "${DESIGNS[@]}"; do ORDER+=("$d a" "$d b"); done
  if ((r % 2 == 0)); then  # every other round backwards: no run always in the same slot
    for ((i = 0, j = ${#ORDER[@]} - 1; i < j; i++, j--)); do t=${ORDER[i]}; ORDER[i]=${ORDER[j]}; ORDER[j]=$t; done
  fi
  for o in "${ORDER[@]}"; do run_one "${o% *}" "$r" "${o#* }"; done
done
ELAPSED=$((SECONDS - T_START))
cleanup_all
hosts_restore

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
  echo "kernel=$(uname -r)"
  echo "nginx=$(nginx -v 2>&1)"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  for d in "${DESIGNS[@]}"; do echo "l4lb_$d=${ID[$d]}"; echo "check_ms_$d=${CHECK_MS[$d]}"; done
  echo "load=$LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after; waited ${QUIET_WAITED}s for quiet"
  echo "nice=$BENCH_NICE$([[ -n $AUTOGROUP_OLD ]] && echo ' (process and session autogroup)')"
  echo "cmdline=$([[ ${BIN[new]} != "$ROOT_DIR/build/l4lb" ]] && echo "L4LB_BIN=${L4LB_BIN} ")${L4LB_OLD_BIN:+L4LB_OLD_BIN=$L4LB_OLD_BIN }bench/reload_p99.sh${ARGS:+ $ARGS}"
  echo "elapsed=$ELAPSED"
  echo "duration=$DURATION"
  echo "interval=$INTERVAL"
  echo "services=$N_SERVICES"
  echo "backends=$((N_SERVICES * PER_SERVICE))"
  echo "live_backends=$PER_SERVICE"
  echo "wrk_c=$WRK_C"
  echo "wrk_t=$WRK_T"
  echo "lb_cpu=$LB_CPU"
  echo "gen_cpu=$GEN_CPU"
  echo "control_cpu=$CONTROL_CPU"
} >"$WORK/meta.txt"
python3 "$PY" report --raw "$RAW" --meta "$WORK/meta.txt" --out "$OUT"
cp "$RAW" "${OUT%.md}.raw.tsv"
cp "$WORK/meta.txt" "${OUT%.md}.meta"
log "done in ${ELAPSED}s: $OUT"
