# shellcheck shell=bash
# What scripts/ha-demo.sh and scripts/ecmp-demo.sh share: both build an L2 segment of network
# namespaces (a bridge in a namespace of its own, veths to it), run l4lb, l4lb-testd backends
# and a python3 client inside them, and must leave nothing behind. Sourced by both, after ROOT:
#   . "$ROOT/scripts/lib/netns-demo.sh"
# It only defines things (and reads --keep-logs, L4LB_BIN, L4LB_TESTD); the caller sets, before
# it calls them: DEMO (its name: every line it prints starts with "$DEMO: "), START, DEADLINE
# (wait_for never waits past it), POLL (wait_for's interval), P (the namespace prefix), NS_BR
# (the bridge's namespace), NS_S (the backends'), NS_C (the client's), NS (node -> namespace),
# LB_CONF, ADMIN; and optionally CLEANUP_SECOND_TERM=1 (cleanup sends every l4lb a second
# SIGTERM, which ends a drain at once).
# Exit codes: 0 every step worked, 1 one did not (die), 77 this machine cannot run it (skip).

keep_logs=0
if [ "${1:-}" = "--keep-logs" ]; then keep_logs=1; fi

L4LB=${L4LB_BIN:-$ROOT/build/l4lb}
TESTD=${L4LB_TESTD:-$ROOT/build/l4lb-testd}
declare -A L4LB_PID=()

say() { printf '%s: %s\n' "$DEMO" "$*"; }
skip() { printf '%s: SKIP: %s\n' "$DEMO" "$*"; exit 77; }

# ------------------------------------------------------------------ can this machine run it?
require_root_and_ip() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, veth, a bridge)"
  command -v ip >/dev/null || skip "ip (iproute2) is not installed: apt-get install iproute2"
}
build_if_missing() {
  if [ ! -x "$L4LB" ] || [ ! -x "$TESTD" ]; then
    make -s build/l4lb build/l4lb-testd >&2
  fi
}

# ------------------------------------------------------------------ state, cleanup by pid
# demo_init: the log directory, the lists of what we made, and the traps that remove it all.
demo_init() {
  made_ns=()
  names=()        # processes we started: "name" and pid, same index
  pids=()
  DIR=$(mktemp -d "/tmp/$P.XXXXXX")
  ok=0
  setup=1         # until the service is first reachable: failing to enter a namespace is this machine's doing
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

track() { names+=("$1"); pids+=("$2"); }

cleanup() {
  local rc=$? i n p ns alive
  trap - EXIT INT TERM
  set +e
  # Our processes, by pid (newest first): SIGTERM, then SIGKILL whatever is left after 2 s.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null
  done
  if [ "${CLEANUP_SECOND_TERM:-0}" -eq 1 ]; then
    # A second SIGTERM ends an l4lb's drain at once (one may still hold connections whose
    # clients were reset through another node: it cannot know they are gone).
    sleep 0.1
    for n in "${!L4LB_PID[@]}"; do kill -TERM "${L4LB_PID[$n]}" 2>/dev/null; done
  fi
  for _ in $(seq 20); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "$DEMO: cleanup: killing ${names[i]} (pid ${pids[i]})" >&2
      kill -KILL "${pids[i]}" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  # Anything else still running inside our namespaces (keepalived's VRRP child, a curl or birdc
  # of a watcher), by pid; then the namespaces, by name (their veths and the bridge go with them).
  for ns in "${made_ns[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      echo "$DEMO: cleanup: killing pid $p left in $ns" >&2
      kill -KILL "$p" 2>/dev/null
    done
  done
  for ns in "${made_ns[@]}"; do
    ip netns del "$ns" 2>/dev/null || echo "$DEMO: cleanup: could not delete namespace $ns" >&2
  done
  if [ "$ok" -ne 1 ] && [ "$rc" -ne 77 ]; then
    for f in "$DIR"/*.log; do
      [ -s "$f" ] || continue
      echo "--- $(basename "$f") (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ "$keep_logs" -eq 1 ]; then
    echo "$DEMO: logs kept in $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}

# What `ip netns exec` / `ip -n` print when they cannot enter a namespace (its mount
# namespace cannot be set up: a chroot, some containers); printed by ip, never by l4lb.
NETNS_ENTER_ERR='"mount --make-rslave /" failed|unshare failed|setting the network namespace .* failed|mount of /sys failed|umount of /sys failed'
netns_enter_err() { grep -Ehs -m1 "$NETNS_ENTER_ERR" "$@" | head -n1 | head -c 200 || true; }

die() {
  local m
  [ "$setup" -eq 1 ] && m=$(netns_enter_err "$DIR"/*.log "$DIR"/*.err) || m=
  if [ -n "$m" ]; then
    skip "cannot enter a network namespace (ip netns exec): $m"
  fi
  printf '%s: FAIL: %s\n' "$DEMO" "$*" >&2
  exit 1
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every POLL s; never past the overall deadline.
# On success WAITED holds the time it returned ($EPOCHREALTIME).
wait_for() {
  local secs=$1 what=$2 limit=$((SECONDS + $1))
  shift 2
  [ $limit -gt $DEADLINE ] && limit=$DEADLINE
  until "$@"; do
    [ $SECONDS -ge $limit ] && die "$what: not within ${secs} s (at +$((SECONDS - START)) s)"
    sleep "$POLL"
  done
  WAITED=$EPOCHREALTIME
}

# ------------------------------------------------------------------ namespaces
mkns() {
  ip netns add "$1" 2>"$DIR/netns.err" || {
    [ ${#made_ns[@]} -eq 0 ] && skip "cannot create a network namespace: $(head -c 200 "$DIR/netns.err")"
    die "ip netns add $1: $(cat "$DIR/netns.err")"
  }
  made_ns+=("$1")
  # Creating one is not enough: entering it (ip netns exec, ip -n) needs a mount namespace.
  ip netns exec "$1" true 2>"$DIR/netns.err" || {
    [ ${#made_ns[@]} -eq 1 ] && skip "cannot enter a network namespace: $(head -c 200 "$DIR/netns.err")"
    die "ip netns exec $1 true: $(cat "$DIR/netns.err")"
  }
  ip -n "$1" link set lo up
}
# make_bridge: NS_BR, the first namespace, with the bridge br0 (the L2 segment) in it.
make_bridge() {
  mkns "$NS_BR"
  ip -n "$NS_BR" link add br0 type bridge 2>"$DIR/br.err" || skip "cannot create a bridge: $(head -c 200 "$DIR/br.err")"
  ip -n "$NS_BR" link set br0 up
}
# attach NS PORTNAME IFNAME ADDR...: a veth from the bridge to IFNAME in NS, with these addresses.
attach() {
  local ns=$1 port=$2 ifname=$3 a
  shift 3
  ip -n "$NS_BR" link add "$port" type veth peer name "$ifname" netns "$ns" 2>"$DIR/veth.err" ||
    skip "cannot create a veth pair: $(head -c 200 "$DIR/veth.err")"
  ip -n "$NS_BR" link set "$port" master br0 up
  for a in "$@"; do ip -n "$ns" addr add "$a/24" dev "$ifname"; done
  ip -n "$ns" link set "$ifname" up
}

# ------------------------------------------------------------------ processes in the namespaces
# start_backends ADDR...: backend-1, backend-2, ... (l4lb-testd --mode id) on ADDR:9000 in NS_S;
# returns once each is listening.
start_backends() {
  local i=0 a
  for a in "$@"; do
    i=$((i + 1))
    ip netns exec "$NS_S" "$TESTD" --mode id --name "backend-$i" --listen "$a:9000" \
      >"$DIR/backend-$i.out" 2>"$DIR/backend-$i.log" &
    track "l4lb-testd backend-$i" $!
  done
  for ((i = 1; i <= $#; i++)); do
    wait_for 5 "backend-$i listening" grep -qs '^listening' "$DIR/backend-$i.out"
  done
}
start_l4lb() {  # NODE
  ip netns exec "${NS[$1]}" "$L4LB" -c "$LB_CONF" >>"$DIR/l4lb-$1.log" 2>&1 &
  L4LB_PID[$1]=$!
  track "l4lb $1" $!
  disown $!    # no "Killed" notice from bash after a kill -9
}
healthy() { ip netns exec "${NS[$1]}" curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$ADMIN/health" 2>/dev/null; }
exited() { ! kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------------ the client (python3)
# client_py_head: the start of each demo's $DIR/client.py (it appends its own commands):
# attempt() makes one connection and reads the backend's name line (name_line()); load(), windows() and
# outages() turn the client's log and the marked events into the failure windows.
client_py_head() {
  cat <<'PYEOF'
import errno, json, os, socket, sys, time

def attempt(host, port, src, ctimeout):
    s = socket.socket()
    try:
        s.bind((src, 0))
        s.settimeout(ctimeout)
        s.connect((host, port))
        s.settimeout(1.0)
        data = b""
        while not data.endswith(b"\n") and len(data) < 256:
            b = s.recv(256)
            if not b:
                return False, "closed"
            data += b
        return True, data.strip().decode(errors="replace")
    except socket.timeout:
        return False, "timeout"
    except OSError as e:
        return False, errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()

def name_line(s):
    # What the backend sends first on a new connection: its name and a newline.
    name = b""
    while not name.endswith(b"\n"):
        b = s.recv(256)
        if not b:
            break
        name += b
    return name

def load(events, *logs):
    # The events the script marked, (name, time), and every client attempt in LOGS, (time, ok,
    # what), in time order.
    ev = []
    for line in open(events):
        name, t = line.split()
        ev.append((name, float(t)))
    att = []
    for log in logs:
        for line in open(log):
            t, res, what = line.split(" ", 2)
            att.append((float(t), res == "ok", what.strip()))
    att.sort()
    return ev, att

def windows(ev, att, kind):
    # Each event named KIND+LABEL: LABEL, its time, the attempts up to the next event, and
    # those of them that failed.
    for i, (name, t0) in enumerate(ev):
        if name.startswith(kind):
            t1 = next((t for n, t in ev[i + 1:]), float("inf"))
            win = [a for a in att if t0 <= a[0] < t1]
            yield name[len(kind):], t0, win, [a for a in win if not a[1]]

def outages(demo, ev, att, failed):
    # Prints what each stop-LABEL window did to new connections (failed(t0, win, fails, t_ok,
    # back) words one in which some failed) and each quiet-LABEL window's failures. Returns
    # {LABEL: seconds until all succeed again, quiet-LABEL: failures} and whether one went wrong.
    results, bad = {}, False
    for label, t0, win, fails in windows(ev, att, "stop-"):
        if not win:
            print(f"{demo}: {label}: no client attempts recorded"); bad = True; continue
        if fails:
            after = [a for a in win if a[0] > fails[-1][0] and a[1]]
            if not after:
                print(f"{demo}: {label}: new connections never succeeded again"); bad = True; continue
            back = after[0][0] - t0
            print(f"{demo}: {label}: " + failed(t0, win, fails, after[0][0], back))
        else:
            back = 0.0
            print(f"{demo}: {label}: no new connection failed ({len(win)} attempts)")
        results[label] = back
    for label, t0, win, fails in windows(ev, att, "quiet-"):
        print(f"{demo}: {label}: {len(fails)} of {len(win)} new connections failed")
        results["quiet-" + label] = len(fails)
    return results, bad
PYEOF
}
client() { ip netns exec "$NS_C" python3 "$DIR/client.py" "$@"; }
mark() { echo "$1 $EPOCHREALTIME" >>"$DIR/events"; }
