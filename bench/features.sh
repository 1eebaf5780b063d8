#!/usr/bin/env bash
# bench/features.sh — what the access log and admission (allow list + per-source limits) cost
# per NEW connection: l4lb with each feature off and on, and nginx stream with and without its
# access log for comparison. The "nc" workload of bench/run.sh: wrk -c64 -t1 with
# "Connection: close", so every request is a new client connection through the balancer.
#
# usage: bench/features.sh [--quick] [--fresh] [--repeats N] [--duration S] [--only LIST]
#                          [--out FILE] [--keep] [--wait-quiet S]
#   --quick        ~2 minutes (default: ~8 minutes)
#   (default)      slices: every configuration runs the whole time (each on its own port, all
#                  pinned to the one balancer CPU, idle but for its own slice); rounds of one
#                  wrk slice per configuration, back to back (the order rotated by one each
#                  round), until the time budget is spent (at most N rounds): 3 s slices (2 s with
#                  --quick). Short slices put each configuration under the same background load.
#   --fresh        a fresh balancer process per run instead, 7 rounds of 8 s (3 of 4 s with --quick)
#   --repeats N    at most N rounds; medians and min–max over the rounds
#   --duration S   seconds of wrk per slice/run
#   --only LIST    comma-separated subset of: l4lb,l4lb-log,l4lb-adm,nginx,nginx-log
#   --out FILE     results file (default bench/features-results.md; raw TSV next to it, .raw.tsv)
#   --keep         keep the work directory (configs, logs, wrk outputs, /stats) in /tmp
#   --wait-quiet S before each run, wait (at most S s in total) for other load on the machine to
#                  drop below 25% (lib.sh's wait_quiet; the load is always measured and reported)
# env: L4LB_BIN (default build/l4lb), BENCH_PORT_BASE (default 61400 here, so that it does not
#      collide with a bench/run.sh on 61200), BENCH_GEN_CPU (0), BENCH_LB_CPU (1), BENCH_NICE
#
# Configurations (one balancer process of its own per run, pinned to CPU $LB_CPU; wrk and the
# backend nginx on CPU $GEN_CPU; one worker):
#   l4lb      one service, round_robin, health_check none, 2 backends (the backend nginx on two
#             ports), workers 1, admin listener on (it is on in all three l4lb configurations:
#             the checks below read /stats and /metrics after each run, outside the measured time)
#   l4lb-log  + global.access_log: {path: <workdir>/l4lb-log/access.log, format: logfmt}
#   l4lb-adm  + services[].allow: 999 random 10.x.y.0/24 (fixed seed) then 127.0.0.0/8 (last, so a
#             linear scan would see every entry before the match) and
#             per_source: {max_connections: 100000, rate: 1000000} (never reached: all the work is
#             the lookup and the tracking of the one client address)
#   nginx     nginx stream, upstream of the same 2 backends (round robin), no access log
#   nginx-log + log_format (client, time, status, bytes both ways, session time, upstream address,
#             upstream bytes, connect time) and access_log <workdir>/nginx-log/access.log
#             (unbuffered, nginx's default: one write(2) per connection)
# Checks (per run with --fresh, over all slices otherwise): l4lb-log: lines in access.log (counted after l4lb stopped, which flushes it)
# against /stats total_connections, and l4lb_access_log_dropped_total; l4lb-adm: /stats
# rejected_connections (every reason) and refused_connections are 0; nginx-log: lines against
# wrk's count. CPU = Δ(utime+stime) of the balancer's processes (/proc/PID/stat) from just before
# wrk starts to 1.2 s after it ends (the access-log writer thread flushes at least once a second,
# and the connections open when wrk exits are closed then: that work belongs to the run), cross-
# checked with per-thread schedstat; per connection = over wrk's completed requests.
set -euo pipefail
: "${BENCH_PORT_BASE:=61400}"
export BENCH_PORT_BASE
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
MODE=slices
REPEATS=
DURATION=
ONLY="l4lb,l4lb-log,l4lb-adm,nginx,nginx-log"
OUT="$BENCH_DIR/features-results.md"
KEEP=0
QUIET_LEFT=0
QUIET_WAITED=0
QUIET_ARG=0
ARGS_ORIG=("$@")
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --repeats) REPEATS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --wait-quiet) QUIET_LEFT=$2; QUIET_ARG=$2; shift ;;
    --fresh) MODE=fresh ;;
    -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
if [[ $MODE == fresh ]]; then
  if ((QUICK)); then : "${REPEATS:=3}"; : "${DURATION:=4}"; BUDGET=130
  else : "${REPEATS:=7}"; : "${DURATION:=8}"; BUDGET=470; fi
else
  if ((QUICK)); then : "${REPEATS:=100}"; : "${DURATION:=2}"; BUDGET=115
  else : "${REPEATS:=1000}"; : "${DURATION:=3}"; BUDGET=470; fi
fi
SETTLE=1.2   # after wrk, before the closing CPU reading
WRK_C=64
P_HTTP2=$((PORT_BASE + 2))     # second port of the backend nginx
# each configuration its own listen port (base+20+i) and l4lb admin port (base+30+i)
conf_idx() { case $1 in l4lb) echo 0 ;; l4lb-log) echo 1 ;; l4lb-adm) echo 2 ;; nginx) echo 3 ;; nginx-log) echo 4 ;; esac; }
lport() { echo $((PORT_BASE + 20 + $(conf_idx "$1"))); }
aport() { echo $((PORT_BASE + 30 + $(conf_idx "$1"))); }
L4LB_BIN=$(realpath -m "${L4LB_BIN:-$ROOT_DIR/build/l4lb}")
OUT=$(realpath -m "$OUT")
IFS=, read -r -a CONFS <<<"$ONLY"
for c in "${CONFS[@]}"; do
  case $c in l4lb|l4lb-log|l4lb-adm|nginx|nginx-log) ;; *) die "unknown configuration $c" ;; esac
done

# ---- prerequisites (installs nothing) ----------------------------------------------------
missing=()
for t in nginx wrk python3 taskset ss pgrep timeout; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
NGINX_STREAM_SO=$(find_stream_module || true)
[[ -n $NGINX_STREAM_SO ]] || missing+=("nginx stream module (Debian: libnginx-mod-stream)")
((${#missing[@]} == 0)) || die "missing: ${missing[*]}"
[[ -x $L4LB_BIN ]] || die "l4lb binary $L4LB_BIN not found: run 'make build/l4lb' or set L4LB_BIN"
(($(nproc) >= 2)) || die "needs at least 2 CPUs"
for p in "$P_HTTP" "$P_HTTP2" $(for c in "${CONFS[@]}"; do lport "$c"; aport "$c"; done); do
  port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

bench_renice
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/l4lb-features.XXXXXX)
cd "$WORK"
RAW="$WORK/raw.tsv"
cp "$L4LB_BIN" "$WORK/l4lb-bin"   # private copy: the shared tree may be rebuilt meanwhile
L4LB_ID=$(l4lb_id "$L4LB_BIN")
L4LB_BIN_ORIG=$L4LB_BIN
L4LB_BIN="$WORK/l4lb-bin"
printf 'config\tround\tslot\tkey\tvalue\n' >"$RAW"
trap on_exit EXIT
trap 'exit 130' INT TERM

raw() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# ---- configurations ---------------------------------------------------------------------------
gen_backend() {   # the backend nginx of run.sh, listening on two ports
  local dir="$WORK/backend"
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 19900; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type text/plain;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$P_HTTP backlog=4096;
        listen 127.0.0.1:$P_HTTP2 backlog=4096;
        location / { return 200 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"; }
    }
}
EOF
}

gen_cidrs() {  # 999 distinct random 10.x.y.0/24 (fixed seed), then 127.0.0.0/8
  python3 - <<'EOF'
import random
r = random.Random(20261203)
seen = set()
while len(seen) < 999:
    seen.add((r.randrange(256), r.randrange(256)))
for x, y in sorted(seen, key=lambda _: r.random()):
    print("10.%d.%d.0/24" % (x, y))
print("127.0.0.0/8")
EOF
}

gen_l4lb_feat() {  # DIR KIND(l4lb|l4lb-log|l4lb-adm)
  local dir=$1 kind=$2
  mkdir -p "$dir"
  {
    echo "global:"
    echo "  workers: 1"
    echo "  log_level: warn"
    echo "  admin:"
    echo "    listen: 127.0.0.1:$(aport "$kind")"
    if [[ $kind == l4lb-log ]]; then
      echo "  access_log:"
      echo "    path: $dir/access.log"
      echo "    format: logfmt"
    fi
    echo "services:"
    echo "  - name: http"
    echo "    listen: 127.0.0.1:$(lport "$kind")"
    echo "    algorithm: round_robin"
    echo "    idle_timeout: 1h"
    echo "    health_check: {type: none}"
    if [[ $kind == l4lb-adm ]]; then
      echo "    allow:"
      sed 's/^/      - /' "$WORK/cidrs.txt"
      echo "    per_source: {max_connections: 100000, rate: 1000000}"
    fi
    echo "    backends:"
    echo "      - address: 127.0.0.1:$P_HTTP"
    echo "      - address: 127.0.0.1:$P_HTTP2"
  } >"$dir/l4lb.yaml"
}

gen_nginx_feat() {  # DIR KIND(nginx|nginx-log)
  local dir=$1 kind=$2
  mkdir -p "$dir"
  {
    nginx_stream_head "$dir"
    if [[ $kind == nginx-log ]]; then
      cat <<EOF
    log_format feat '\$remote_addr:\$remote_port [\$time_iso8601] \$protocol \$status \$bytes_received \$bytes_sent \$session_time "\$upstream_addr" \$upstream_bytes_sent \$upstream_bytes_received \$upstream_connect_time';
    access_log $dir/access.log feat;
EOF
    fi
    cat <<EOF
    upstream be {
        server 127.0.0.1:$P_HTTP;
        server 127.0.0.1:$P_HTTP2;
    }
    server {
        listen 127.0.0.1:$(lport "$kind") backlog=4096;
        proxy_pass be;
    }
}
EOF
  } >"$dir/nginx.conf"
}

declare -A PIDS=()
start_conf() {  # KIND : its balancer on LB_CPU; PIDS[KIND]
  local kind=$1 dir="$WORK/$1"
  rm -f "$dir/access.log"
  case $kind in
    l4lb*) start_bg "lb-$kind" taskset -c "$LB_CPU" "$L4LB_BIN" -c "$dir/l4lb.yaml" ;;
    nginx*) start_bg "lb-$kind" taskset -c "$LB_CPU" nginx -e "$dir/error.log" -c "$dir/nginx.conf" ;;
  esac
  PIDS[$kind]=$LASTPID
  if ! wait_listen "$(lport "$kind")" 10 || { [[ $kind == l4lb* ]] && ! wait_listen "$(aport "$kind")" 10; }; then
    cat "$WORK/lb-$kind.log" >&2 || true
    die "$kind did not start listening on $(lport "$kind")"
  fi
  sleep 0.3   # let nginx fork its worker
}

stop_conf() {  # KIND
  local kind=$1 i
  [[ -n ${PIDS[$kind]:-} ]] || return 0
  stop_pid "${PIDS[$kind]}"
  for ((i = 0; i < 50; i++)); do
    port_busy "$(lport "$kind")" || port_busy "$(aport "$kind")" || break
    sleep 0.1
  done
  PIDS[$kind]=
}

# l4lb /stats + /metrics -> raw keys (outside the measured window)
l4lb_checks() {  # KIND ROUND SLOT
  python3 - "$(aport "$1")" "$WORK/stats-$1-$2.json" "$1" "$2" "$3" >>"$RAW" <<'EOF' || log "could not read /stats ($1)"
import json, re, sys, urllib.request
port, path, k = sys.argv[1], sys.argv[2], "\t".join(sys.argv[3:6])
base = "http://127.0.0.1:%s" % port
st = urllib.request.urlopen(base + "/stats", timeout=5).read()
open(path, "wb").write(st)
s = json.loads(st)["services"][0]
print("%s\tlb_total_connections\t%d" % (k, s["total_connections"]))
print("%s\tlb_refused_connections\t%d" % (k, s["refused_connections"]))
rej = s.get("rejected_connections")
print("%s\tlb_rejected_connections\t%s" % (k, sum(rej.values()) if isinstance(rej, dict) else "NA"))
print("%s\tlb_backend_connections\t%s" % (k, "/".join(str(b["total_connections"]) for b in s["backends"])))
m = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
d = re.search(r"^l4lb_access_log_dropped_total(?:\{[^}]*\})? (\S+)$", m, re.M)
print("%s\taccess_log_dropped\t%s" % (k, d.group(1) if d else "NA"))
r = sum(float(v) for v in re.findall(r"^l4lb_service_connections_rejected_total\{[^}]*\} (\S+)$", m, re.M))
print("%s\tmetrics_rejected\t%d" % (k, r))
EOF
}

# measure KIND ROUND SLOT : one wrk run against the running balancer KIND, its CPU and wrk's numbers
measure() {
  local kind=$1 rnd=$2 slot=$3 out="$WORK/wrk-$1-$2.txt" t0 n0 t1 n1 pid=${PIDS[$1]}
  t0=$(cpu_ticks "$pid"); n0=$(cpu_ns "$pid")
  timeout $((DURATION + 20)) taskset -c "$GEN_CPU" wrk -c"$WRK_C" -t1 -d"${DURATION}s" --latency --timeout 5s \
    -H "Connection: close" "http://127.0.0.1:$(lport "$kind")/" >"$out" 2>&1 || log "wrk failed ($kind): $(head -c 300 "$out")"
  sleep "$SETTLE"
  t1=$(cpu_ticks "$pid"); n1=$(cpu_ns "$pid")
  raw "$kind" "$rnd" "$slot" lb_cpu_s "$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" 'BEGIN{printf "%.4f", (b-a)/h}')"
  raw "$kind" "$rnd" "$slot" lb_cpu_sched_s "$(awk -v a="$n0" -v b="$n1" 'BEGIN{printf "%.6f", (b-a)/1e9}')"
  python3 - "$out" "$kind" "$rnd" "$slot" >>"$RAW" <<'EOF'
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
m3 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)
if m3: print("%s\tp99_ms\t%.4f" % (key, ms(m3.group(1), m3.group(2))))
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errs = sum(int(x) for x in e.groups()) if e else 0
n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs += int(n2.group(1)) if n2 else 0
print("%s\terrors\t%d" % (key, errs))
EOF
}

# log_lines KIND ROUND SLOT : after KIND stopped: its access.log's lines; keep line 100 as a sample
log_lines() {
  local kind=$1 rnd=$2 slot=$3
  raw "$kind" "$rnd" "$slot" log_lines "$( [[ -f $WORK/$kind/access.log ]] && wc -l <"$WORK/$kind/access.log" || echo 0)"
  [[ -f $WORK/$kind/access.log ]] && { sed -n 100p "$WORK/$kind/access.log" >"$WORK/$kind/sample-line.txt"; rm -f "$WORK/$kind/access.log"; }
  return 0
}

run_fresh() {  # KIND ROUND SLOT : a fresh balancer for one run
  local kind=$1 rnd=$2 slot=$3
  wait_quiet
  log "round $rnd/$REPEATS: $kind (other load: ${BG_PCT}% of both CPUs)"
  raw "$kind" "$rnd" "$slot" bg_pct "$BG_PCT"
  start_conf "$kind"
  measure "$kind" "$rnd" "$slot"
  if [[ $kind == l4lb* ]]; then l4lb_checks "$kind" "$rnd" "$slot"; fi
  stop_conf "$kind"
  if [[ $kind == *-log ]]; then log_lines "$kind" "$rnd" "$slot"; fi
  sleep 0.3
}



# ---- run -------------------------------------------------------------------------------------
gen_cidrs >"$WORK/cidrs.txt"
gen_backend
for c in "${CONFS[@]}"; do
  case $c in l4lb*) gen_l4lb_feat "$WORK/$c" "$c" ;; nginx*) gen_nginx_feat "$WORK/$c" "$c" ;; esac
done
"$L4LB_BIN" -t -c "$WORK/l4lb-adm/l4lb.yaml" >/dev/null 2>&1 || [[ ",$ONLY," != *",l4lb-adm,"* ]] \
  || die "l4lb rejects the admission config: $("$L4LB_BIN" -t -c "$WORK/l4lb-adm/l4lb.yaml" 2>&1 | head -3)"
start_bg backend taskset -c "$GEN_CPU" nginx -e "$WORK/backend/error.log" -c "$WORK/backend/nginx.conf"
wait_listen "$P_HTTP" 10 && wait_listen "$P_HTTP2" 10 || die "backend nginx did not start"
log "work dir $WORK; mode $MODE; at most $REPEATS rounds of ${DURATION}s (budget ${BUDGET}s); configurations $ONLY"
if [[ $MODE == slices ]]; then
  for c in "${CONFS[@]}"; do start_conf "$c"; done
  sleep 1
  ROUND_EST=$(( ${#CONFS[@]} * (DURATION + 2) + 1 ))
else
  ROUND_EST=$(( ${#CONFS[@]} * (DURATION + 5) ))
fi
T_START=$SECONDS
DONE=0
for ((rnd = 1; rnd <= REPEATS; rnd++)); do
  if ((rnd > 1 && SECONDS - T_START - QUIET_WAITED + ROUND_EST > BUDGET)); then
    log "time budget (${BUDGET}s) reached: stopping after $DONE rounds"; break
  fi
  k=$(((rnd - 1) % ${#CONFS[@]}))
  ORDER=("${CONFS[@]:$k}" "${CONFS[@]:0:$k}")
  slot=0
  if [[ $MODE == fresh ]]; then
    for c in "${ORDER[@]}"; do slot=$((slot + 1)); run_fresh "$c" "$rnd" "$slot"; done
  else
    wait_quiet
    log "round $rnd: ${ORDER[*]} (other load: ${BG_PCT}% of both CPUs)"
    for c in "${ORDER[@]}"; do
      slot=$((slot + 1))
      raw "$c" "$rnd" "$slot" bg_pct "$BG_PCT"
      measure "$c" "$rnd" "$slot"
    done
  fi
  DONE=$rnd
done
ELAPSED=$((SECONDS - T_START))
if [[ $MODE == slices ]]; then   # the checks over all slices: round 0 in the raw file
  for c in "${CONFS[@]}"; do if [[ $c == l4lb* ]]; then l4lb_checks "$c" 0 0; fi; done
  for c in "${CONFS[@]}"; do stop_conf "$c"; done
  for c in "${CONFS[@]}"; do if [[ $c == *-log ]]; then log_lines "$c" 0 0; fi; done
fi
cleanup_all

CMDLINE=
[[ $L4LB_BIN_ORIG != "$ROOT_DIR/build/l4lb" ]] && CMDLINE+="L4LB_BIN=$L4LB_BIN_ORIG "
[[ $BENCH_PORT_BASE != 61400 ]] && CMDLINE+="BENCH_PORT_BASE=$BENCH_PORT_BASE "
CMDLINE+="bench/features.sh${ARGS_ORIG[*]:+ ${ARGS_ORIG[*]}}"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cmdline=$CMDLINE"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
  echo "kernel=$(uname -r)"
  echo "nginx=$(nginx -v 2>&1)"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "l4lb=$L4LB_ID"
  echo "mode=$MODE"
  echo "settle=${SETTLE} s"
  echo "rounds=$DONE"
  echo "duration=$DURATION"
  echo "wrk_c=$WRK_C"
  echo "elapsed=$ELAPSED"
  echo "quiet_waited=$QUIET_WAITED"
  echo "load=$LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15-min load averages)"
  echo "nice=$BENCH_NICE$([[ -n $AUTOGROUP_OLD ]] && echo ' (process and session autogroup)')"
  echo "lb_cpu=$LB_CPU"
  echo "gen_cpu=$GEN_CPU"
  echo "ports=backend $P_HTTP+$P_HTTP2, balancers $((PORT_BASE + 20))-$((PORT_BASE + 24)), l4lb admin $((PORT_BASE + 30))-$((PORT_BASE + 32))"
  echo "sample_l4lb_log=$(cat "$WORK/l4lb-log/sample-line.txt" 2>/dev/null)"
  echo "sample_nginx_log=$(cat "$WORK/nginx-log/sample-line.txt" 2>/dev/null)"
} >"$WORK/meta.txt"
cp "$RAW" "${OUT%.md}.raw.tsv"
cp "$WORK/meta.txt" "${OUT%.md}.meta"
python3 "$BENCH_DIR/features_report.py" --raw "$RAW" --meta "$WORK/meta.txt" --out "$OUT"
log "done in ${ELAPSED}s: $OUT (raw: ${OUT%.md}.raw.tsv)"
