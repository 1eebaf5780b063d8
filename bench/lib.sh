# bench/lib.sh — shared helpers for bench/run.sh and bench/profile.sh (sourced, not run).
# Everything is loopback-only; every process started here is recorded by PID and
# stopped by PID in cleanup (trap), never by name.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")

# Fixed high ports (override the base with BENCH_PORT_BASE). The default sits above the
# ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 on Debian), where tests that
# bind port 0 on a shared machine cannot take them.
PORT_BASE=${BENCH_PORT_BASE:-61200}
P_IPERF=$((PORT_BASE + 0))     # iperf3 -s           (backend, CPU 0)
P_HTTP=$((PORT_BASE + 1))      # nginx HTTP backend  (backend, CPU 0) — also holds the idle connections
P_LB_BULK=$((PORT_BASE + 10))  # balancer -> P_IPERF
P_LB_HTTP=$((PORT_BASE + 11))  # balancer -> P_HTTP

GEN_CPU=${BENCH_GEN_CPU:-0}    # load generators + backends
LB_CPU=${BENCH_LB_CPU:-1}      # the balancer, alone
CLK_TCK=$(getconf CLK_TCK)

STARTED_PIDS=()
LASTPID=
WORK=${WORK:-}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# start_bg NAME CMD... : run CMD in the background, output to $WORK/NAME.log; PID in $LASTPID.
start_bg() {
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  LASTPID=$!
  STARTED_PIDS+=("$LASTPID")
}

# stop_pid PID : TERM, wait up to 5 s, then KILL (only a PID this script started).
stop_pid() {
  local pid=$1 i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup_all() {
  local i
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED_PIDS[$i]}"
  done
  STARTED_PIDS=()
}

# wait_listen PORT [SECONDS] : until something listens on 127.0.0.1:PORT.
wait_listen() {
  local port=$1 limit=${2:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.05
  done
  return 1
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# pid_tree PID : PID and its direct children (nginx master + worker).
pid_tree() {
  echo "$1"
  pgrep -P "$1" 2>/dev/null || true
}

# cpu_ticks PID : utime+stime (clock ticks) of PID and its children, from /proc/PID/stat.
cpu_ticks() {
  local p total=0 v
  for p in $(pid_tree "$1"); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# cpu_ns PID : on-CPU nanoseconds of every thread of PID and its children (schedstat);
# finer-grained cross-check of cpu_ticks.
cpu_ns() {
  local p total=0 f v
  for p in $(pid_tree "$1"); do
    for f in /proc/"$p"/task/*/schedstat; do
      v=$(awk '{print $1}' "$f" 2>/dev/null) || v=0
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}

# core_busy CPU : busy jiffies (everything but idle+iowait) of one core, from /proc/stat.
core_busy() {
  awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# rss_kib PID : summed VmRSS of PID and its children.
rss_kib() {
  local p total=0 v
  for p in $(pid_tree "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# fd_count PID : summed open fds of PID and its children.
fd_count() {
  local p total=0 v
  for p in $(pid_tree "$1"); do
    v=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) || v=0
    total=$((total + v))
  done
  echo "$total"
}

# kernel memory: slab kB (meminfo) and TCP socket-buffer pages (sockstat).
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
tcp_mem_pages() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }

# established TCP sockets whose local port is PORT (the backend's side of each connection).
established_on() { ss -Htn state established "sport = :$1" 2>/dev/null | wc -l; }

# ---- configuration generators ------------------------------------------------------
# The machine may be shared (compilers, tests): run everything at high priority so the
# balancer and the generators are not preempted (BENCH_NICE=0 disables; needs root).
# With CONFIG_SCHED_AUTOGROUP (sched_autogroup_enabled=1) CPU is shared between sessions first,
# so a task's nice only matters inside its session: also set this session's autogroup nice;
# AUTOGROUP_OLD holds the old one, which on_exit restores.
bench_renice() {
  BENCH_NICE=${BENCH_NICE:--20}
  AUTOGROUP_OLD=
  [[ $BENCH_NICE != 0 ]] || return 0
  renice -n "$BENCH_NICE" -p $$ >/dev/null 2>&1 || log "warning: could not renice to $BENCH_NICE"
  if [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 && -w /proc/$$/autogroup ]]; then
    AUTOGROUP_OLD=$(awk '{print $3}' /proc/$$/autogroup)
    echo "$BENCH_NICE" >/proc/$$/autogroup 2>/dev/null || AUTOGROUP_OLD=
  fi
}

# l4lb_id BIN: what that binary is (version, path, build time, sha256, git tree, $L4LB_DESC).
l4lb_id() {
  local bin=$1 id
  id="$("$bin" --version 2>&1) ($bin, built $(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$bin" | cut -c1-12)"
  if [[ $bin == "$ROOT_DIR"/* ]]; then
    id+=", tree at git $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT_DIR" diff --quiet -- src include 2>/dev/null || echo ' + uncommitted changes in src/include')"
  fi
  echo "$id${L4LB_DESC:+, $L4LB_DESC})"
}

# The scripts' EXIT trap: stop what they started, restore the autogroup nice, and remove
# $WORK unless --keep or a failure.
on_exit() {
  local rc=$?
  cleanup_all
  [[ -z ${CAP_DIR:-} ]] || cap_remove
  if [[ -n ${AUTOGROUP_OLD:-} ]]; then echo "$AUTOGROUP_OLD" >/proc/$$/autogroup 2>/dev/null || true; fi
  if ((KEEP)) || ((rc != 0)); then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}


# Backend HTTP server: a separate nginx, 1 worker, small body, keep-alive unbounded.
gen_backend_nginx() {
  local dir=$1
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
    client_header_timeout 3600s;   # the idle test parks 9,800 silent connections here
    server {
        listen 127.0.0.1:$P_HTTP backlog=4096;
        location / { return 200 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"; }
    }
}
EOF
}

# HAProxy, 1 thread; MODE = auto | forced
gen_haproxy() {
  local dir=$1 mode=$2 splice
  mkdir -p "$dir"
  if [[ $mode == forced ]]; then
    splice=$'    option splice-request\n    option splice-response'
  else
    splice='    option splice-auto'
  fi
  cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    # 9,800 idle connections need 19,600 fds; HAProxy reserves 2 fds per pipe on top of
    # 2 per connection (maxpipes defaults to maxconn/4), so cap pipes to fit the 20,000 fd limit.
    maxconn 9850
    maxpipes 64
    pidfile $dir/haproxy.pid

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
$splice

frontend fe_bulk
    bind 127.0.0.1:$P_LB_BULK
    default_backend be_bulk

backend be_bulk
    server s1 127.0.0.1:$P_IPERF

frontend fe_http
    bind 127.0.0.1:$P_LB_HTTP
    default_backend be_http

backend be_http
    server s1 127.0.0.1:$P_HTTP
EOF
}

# The start of an nginx stream balancer's config (1 worker; DIR for its pid and log), up to
# the open stream block: the caller adds its servers and the closing brace.
nginx_stream_head() {
  local dir=$1
  cat <<EOF
load_module $NGINX_STREAM_SO;
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 19990; }
stream {
    proxy_connect_timeout 5s;
    proxy_timeout 1h;
EOF
}

# nginx stream balancer, 1 worker.
gen_nginx_stream() {
  local dir=$1
  mkdir -p "$dir"
  { nginx_stream_head "$dir"; cat <<EOF
    server {
        listen 127.0.0.1:$P_LB_BULK backlog=4096;
        proxy_pass 127.0.0.1:$P_IPERF;
    }
    server {
        listen 127.0.0.1:$P_LB_HTTP backlog=4096;
        proxy_pass 127.0.0.1:$P_HTTP;
    }
}
EOF
  } >"$dir/nginx.conf"
}

# l4lb, 1 worker; SPLICE (optional) = always | never adds `splice: SPLICE` under global
# (nothing = the default, auto).
gen_l4lb() {
  local dir=$1 splice=${2:-} extra=
  mkdir -p "$dir"
  [[ -z $splice ]] || extra=$'\n'"  splice: $splice"
  cat >"$dir/l4lb.yaml" <<EOF
global:
  workers: 1
  log_level: warn$extra
services:
  - name: bulk
    listen: 127.0.0.1:$P_LB_BULK
    idle_timeout: 1h
    health_check: {type: none}
    backends:
      - address: 127.0.0.1:$P_IPERF
  - name: http
    listen: 127.0.0.1:$P_LB_HTTP
    idle_timeout: 1h
    health_check: {type: none}
    backends:
      - address: 127.0.0.1:$P_HTTP
EOF
}

find_stream_module() {
  local c
  for c in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so \
           /usr/lib64/nginx/modules/ngx_stream_module.so; do
    [[ -f $c ]] && { echo "$c"; return 0; }
  done
  return 1
}

# l4lb_splice_mode NAME : the `global: splice` value of balancer NAME (l4lb-splice: always,
# l4lb-copy: never, l4lb: none written, i.e. the default auto).
l4lb_splice_mode() {
  case $1 in l4lb-splice) echo always ;; l4lb-copy) echo never ;; *) echo "" ;; esac
}

# start_lb NAME : start balancer NAME pinned to LB_CPU; sets LB_PID ("" for direct),
# LB_PORT_BULK, LB_PORT_HTTP.
start_lb() {
  local name=$1 dir="$WORK/$1"
  LB_PID=
  LB_PORT_BULK=$P_LB_BULK
  LB_PORT_HTTP=$P_LB_HTTP
  case $name in
    direct)
      LB_PORT_BULK=$P_IPERF; LB_PORT_HTTP=$P_HTTP; return 0 ;;
    haproxy)
      gen_haproxy "$dir" auto
      start_bg "lb-$name" taskset -c "$LB_CPU" haproxy -db -f "$dir/haproxy.cfg" ;;
    haproxy-splice)
      gen_haproxy "$dir" forced
      start_bg "lb-$name" taskset -c "$LB_CPU" haproxy -db -f "$dir/haproxy.cfg" ;;
    nginx)
      gen_nginx_stream "$dir"
      start_bg "lb-$name" taskset -c "$LB_CPU" nginx -e "$dir/error.log" -c "$dir/nginx.conf" ;;
    l4lb|l4lb-splice|l4lb-copy)
      gen_l4lb "$dir" "$(l4lb_splice_mode "$name")"
      start_bg "lb-$name" taskset -c "$LB_CPU" "$L4LB_BIN" -c "$dir/l4lb.yaml" ;;
    floor)  # the yardstick: request/response only, so only the HTTP port
      mkdir -p "$dir"
      [[ -x $dir/floor_proxy ]] || ${CC:-cc} -O2 -o "$dir/floor_proxy" "$BENCH_DIR/floor_proxy.c" \
        || die "could not compile bench/floor_proxy.c (set CC)"
      start_bg "lb-$name" taskset -c "$LB_CPU" "$dir/floor_proxy" "$P_LB_HTTP" "$P_HTTP" ;;
    *) die "unknown balancer $name" ;;
  esac
  LB_PID=$LASTPID
  if { [[ $name != floor ]] && ! wait_listen "$P_LB_BULK" 10; } || ! wait_listen "$P_LB_HTTP" 10; then
    cat "$WORK/lb-$name.log" >&2 || true
    ss -Hltnp "( sport = :$P_LB_BULK or sport = :$P_LB_HTTP )" >&2 || true
    die "$name did not start listening on $P_LB_BULK/$P_LB_HTTP"
  fi
  sleep 0.3   # let nginx fork its worker
}

stop_lb() {
  [[ -n ${LB_PID:-} ]] || return 0
  stop_pid "$LB_PID"
  local i
  for ((i = 0; i < 50; i++)); do
    port_busy "$P_LB_BULK" || port_busy "$P_LB_HTTP" || break
    sleep 0.1
  done
  LB_PID=
}

start_backends() {
  gen_backend_nginx "$WORK/backend-nginx"
  start_bg backend-iperf3 taskset -c "$GEN_CPU" iperf3 -s -B 127.0.0.1 -p "$P_IPERF"
  BACKEND_IPERF_PID=$LASTPID
  start_bg backend-nginx taskset -c "$GEN_CPU" nginx -e "$WORK/backend-nginx/error.log" \
    -c "$WORK/backend-nginx/nginx.conf"
  BACKEND_NGINX_PID=$LASTPID
  wait_listen "$P_IPERF" 10 || die "iperf3 -s did not start (see $WORK/backend-iperf3.log)"
  wait_listen "$P_HTTP" 10 || die "backend nginx did not start (see $WORK/backend-nginx.log)"
}

# ---- other load on the machine (also in bench/run.sh, which defines its own copy) --------
# bg_busy: CPU use of everything else (both cores, % over 1 s) while the caller is idle, in BG_PCT.
# wait_quiet: with QUIET_LEFT > 0 (seconds left over the whole run), wait for it to drop below
# 25%; QUIET_WAITED counts the seconds waited.
bg_busy() {
  local a b
  a=$(awk '$1 ~ /^cpu[0-9]/ {busy += $2 + $3 + $4 + $7 + $8 + $9; tot += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9} END {print busy, tot}' /proc/stat)
  sleep 1
  b=$(awk '$1 ~ /^cpu[0-9]/ {busy += $2 + $3 + $4 + $7 + $8 + $9; tot += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9} END {print busy, tot}' /proc/stat)
  BG_PCT=$(awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0)}')
}
wait_quiet() {
  bg_busy
  while ((BG_PCT > 25 && ${QUIET_LEFT:-0} > 0)); do
    log "machine busy (${BG_PCT}%), waiting (up to ${QUIET_LEFT}s more)"
    sleep 4; QUIET_LEFT=$((QUIET_LEFT - 5)); QUIET_WAITED=$((${QUIET_WAITED:-0} + 5))
    bg_busy
  done
}

# thread_ns PID TID : on-CPU nanoseconds of one thread (schedstat).
thread_ns() { awk '{print $1}' "/proc/$1/task/$2/schedstat" 2>/dev/null || echo 0; }

# ---- CPU cap: a cgroup that limits the balancer to a share of one core ------------------
# cap_setup PCT : create the cgroup l4lb-bench-$$ with a quota of PCT% of one CPU per 100 ms
# period: cgroup v2 if its cpu controller can be enabled (cpu.max "QUOTA PERIOD" in a child of
# the cgroup2 root, +cpu in the root's cgroup.subtree_control), else v1 (cpu.cfs_period_us and
# cpu.cfs_quota_us in a child of the hierarchy that has the cpu controller). Sets CAP_DIR,
# CAP_VER (v2|v1) and CAP_HOME (this script's own cgroup in that hierarchy, where cap_leave puts
# the processes back). Returns 1 with the reasons in CAP_WHY if neither works.
# A task in a cgroup of its own no longer gets the session autogroup's nice (bench_renice): the
# group's weight is what competes with the rest of the machine, so it is given the weight of
# BENCH_NICE (v2 cpu.weight.nice, v1 cpu.shares = 1024 × 1.25^-nice); CAP_WEIGHT says which.
CAP_DIR=
CAP_VER=
CAP_HOME=
CAP_WHY=
CAP_WEIGHT=
CAP_PERIOD_US=100000
cap_setup() {
  local pct=$1 name="l4lb-bench-$$" quota root rel
  quota=$((pct * CAP_PERIOD_US / 100))
  CAP_WHY=
  root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
  if [[ -z $root ]]; then
    CAP_WHY+="no cgroup2 mount; "
  elif ! grep -qw cpu "$root/cgroup.controllers" 2>/dev/null; then
    CAP_WHY+="cgroup v2 at $root: no cpu controller in cgroup.controllers (it is bound to a v1 hierarchy, or not delegated); "
  elif ! grep -qw cpu "$root/cgroup.subtree_control" 2>/dev/null \
       && ! echo +cpu 2>/dev/null >"$root/cgroup.subtree_control"; then
    CAP_WHY+="cgroup v2 at $root: cannot enable +cpu in cgroup.subtree_control; "
  elif ! mkdir "$root/$name" 2>/dev/null; then
    CAP_WHY+="cgroup v2: cannot create $root/$name; "
  elif [[ ! -e $root/$name/cpu.max ]] || ! echo "$quota $CAP_PERIOD_US" 2>/dev/null >"$root/$name/cpu.max"; then
    rmdir "$root/$name" 2>/dev/null || true
    CAP_WHY+="cgroup v2: $root/$name has no writable cpu.max; "
  else
    CAP_DIR=$root/$name CAP_VER=v2
    CAP_WEIGHT=
    if [[ ${BENCH_NICE:-0} != 0 ]]; then
      echo "$BENCH_NICE" 2>/dev/null >"$CAP_DIR/cpu.weight.nice" && CAP_WEIGHT="cpu.weight.nice $BENCH_NICE" \
        || log "warning: could not set $CAP_DIR/cpu.weight.nice to $BENCH_NICE"
    fi
    rel=$(awk -F: '$1 == "0" && $2 == "" {print $3; exit}' /proc/$$/cgroup)
    CAP_HOME=${root%/}$rel
    [[ -w $CAP_HOME/cgroup.procs ]] || CAP_HOME=$root
    return 0
  fi
  root=$(awk '$3 == "cgroup" {n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == "cpu") {print $2; exit}}' /proc/mounts)
  if [[ -z $root ]]; then
    CAP_WHY+="no cgroup v1 hierarchy with the cpu controller; "
  elif ! mkdir "$root/$name" 2>/dev/null; then
    CAP_WHY+="cgroup v1: cannot create $root/$name; "
  elif [[ ! -e $root/$name/cpu.cfs_quota_us ]] \
       || ! { echo "$CAP_PERIOD_US" >"$root/$name/cpu.cfs_period_us" && echo "$quota" >"$root/$name/cpu.cfs_quota_us"; } 2>/dev/null; then
    rmdir "$root/$name" 2>/dev/null || true
    CAP_WHY+="cgroup v1: $root/$name has no writable cpu.cfs_period_us/cpu.cfs_quota_us (not a cpu cgroup?); "
  else
    CAP_DIR=$root/$name CAP_VER=v1
    CAP_WEIGHT=
    if [[ ${BENCH_NICE:-0} != 0 ]]; then
      CAP_WEIGHT=$(awk -v n="$BENCH_NICE" 'BEGIN {w = int(1024 / 1.25 ^ n); print (w < 2 ? 2 : w > 262144 ? 262144 : w)}')
      echo "$CAP_WEIGHT" 2>/dev/null >"$CAP_DIR/cpu.shares" && CAP_WEIGHT="cpu.shares $CAP_WEIGHT (nice $BENCH_NICE)" \
        || { log "warning: could not set $CAP_DIR/cpu.shares to $CAP_WEIGHT"; CAP_WEIGHT=; }
    fi
    rel=$(awk -F: '{n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == "cpu") {print $3; exit}}' /proc/$$/cgroup)
    CAP_HOME=${root%/}$rel
    [[ -w $CAP_HOME/cgroup.procs ]] || CAP_HOME=$root
    return 0
  fi
  return 1
}

# cap_enter PID : move PID and its children (nginx master + worker) into the capped cgroup.
# cgroup.procs moves a whole process, every thread of it (v1 and v2); then check that every
# thread is there. Sets CAP_NTHREADS.
cap_enter() {
  local p t n=0
  for p in $(pid_tree "$1"); do
    echo "$p" >"$CAP_DIR/cgroup.procs" || die "could not move pid $p into $CAP_DIR"
  done
  for p in $(pid_tree "$1"); do
    for t in /proc/"$p"/task/*; do
      [[ -e $t/cgroup ]] || continue
      grep -q ":/${CAP_DIR##*/}\$" "$t/cgroup" || die "thread ${t##*/} of pid $p is not in $CAP_DIR: $(cat "$t/cgroup")"
      n=$((n + 1))
    done
  done
  CAP_NTHREADS=$n
}

# cap_leave : every process in the capped cgroup back to CAP_HOME.
cap_leave() {
  local p
  [[ -n $CAP_DIR && -d $CAP_DIR ]] || return 0
  for p in $(cat "$CAP_DIR/cgroup.procs" 2>/dev/null); do
    echo "$p" 2>/dev/null >"$CAP_HOME/cgroup.procs" || log "warning: could not move pid $p out of $CAP_DIR"
  done
}

# cap_throttled_ns : time the cgroup spent throttled so far (cpu.stat: v1 throttled_time in ns,
# v2 throttled_usec).
cap_throttled_ns() {
  [[ -r $CAP_DIR/cpu.stat ]] || { echo 0; return 0; }
  awk '$1 == "throttled_time" {print $2; f = 1; exit} $1 == "throttled_usec" {print $2 * 1000; f = 1; exit}
       END {if (!f) print 0}' "$CAP_DIR/cpu.stat"
}

# cap_remove : (EXIT trap) empty the cgroup and remove it.
cap_remove() {
  local i
  cap_leave
  for ((i = 0; i < 20; i++)); do
    rmdir "$CAP_DIR" 2>/dev/null && { CAP_DIR=; return 0; }
    [[ -d $CAP_DIR ]] || { CAP_DIR=; return 0; }
    sleep 0.1
  done
  log "warning: could not remove cgroup $CAP_DIR (remove it with rmdir)"
}
