#!/usr/bin/env bash
# Two l4lb nodes behind one virtual IP with keepalived (VRRP), all inside network namespaces
# this script creates and removes; it measures how long new client connections fail when the
# active node's l4lb stops (SIGTERM), and then when the other one is killed (kill -9).
#
#   sudo scripts/ha-demo.sh            (needs root, `ip netns`, keepalived, python3, curl)
#
# Topology (one L2 segment, a bridge in a namespace of its own; nothing is added to the host's
# own network namespace, and every namespace is named l4ha-<PID>-*, so runs do not collide):
#
#   client 10.99.0.50-69 ---+                 +--- lb1 10.99.0.2  l4lb :8080, admin 127.0.0.1:9900, keepalived
#                           +---- bridge -----+--- lb2 10.99.0.3  l4lb :8080, admin 127.0.0.1:9900, keepalived
#   backends 10.99.0.20:9000 (backend-1), 10.99.0.21:9000 (backend-2)   VIP 10.99.0.100 on lb1 or lb2
#
# l4lb runs conf/keepalived/l4lb.yaml and keepalived conf/keepalived/keepalived.conf, both as
# they are (`keepalived -i lb1` / `-i lb2`). Steps: wait for the VIP on lb1; check that each of
# 20 client addresses reaches the same backend through lb1, lb2 and the VIP (consistent_hash);
# a client connects to the VIP every 50 ms; SIGTERM lb1's l4lb while a connection is held open
# through it (so it drains: /health 503 "stopping") -> VIP moves to lb2 (the held connection is
# reset when used; a second SIGTERM ends lb1's drain); start lb1's
# l4lb again (the VIP stays on lb2: nopreempt); kill -9 lb2's l4lb -> VIP moves back to lb1.
# Prints the failover times and a last line
#   RESULT sigterm_failover_s=S kill9_failover_s=S affinity=same|DIFFERENT backends_seen=N ...
# Exit 0 when every step worked, 1 when one did not, 77 when this machine cannot run it (not
# root, network namespaces cannot be made or entered -- e.g. in a chroot --, keepalived
# missing). Bounded: gives up after ~55 s.
# Binaries: env L4LB_BIN, L4LB_TESTD (defaults build/l4lb, build/l4lb-testd; built if missing).
# --keep-logs: keep the per-process logs (their directory is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

keep_logs=0
[ "${1:-}" = "--keep-logs" ] && keep_logs=1

L4LB=${L4LB_BIN:-$ROOT/build/l4lb}
TESTD=${L4LB_TESTD:-$ROOT/build/l4lb-testd}
KA_CONF=$ROOT/conf/keepalived/keepalived.conf
LB_CONF=$ROOT/conf/keepalived/l4lb.yaml

VIP=10.99.0.100
PORT=8080
ADMIN=9900
declare -A ADDR=([lb1]=10.99.0.2 [lb2]=10.99.0.3)
mapfile -t CLIENT_ADDRS < <(seq -f '10.99.0.%g' 50 69)

START=$SECONDS
DEADLINE=$((SECONDS + 55))

say() { printf 'ha-demo: %s\n' "$*"; }
skip() { printf 'ha-demo: SKIP: %s\n' "$*"; exit 77; }

# ------------------------------------------------------------------ can this machine run it?
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, veth, a bridge)"
command -v ip >/dev/null || skip "ip (iproute2) is not installed: apt-get install iproute2"
command -v keepalived >/dev/null || skip "keepalived is not installed: apt-get install keepalived (scripts/install-deps.sh --test)"
command -v python3 >/dev/null || skip "python3 is not installed"
[ -x /usr/bin/curl ] || skip "/usr/bin/curl is not installed (keepalived's health script)"
if [ ! -x "$L4LB" ] || [ ! -x "$TESTD" ]; then
  make -s build/l4lb build/l4lb-testd >&2
fi

P=l4ha-$$
NS_BR=$P-br     # the bridge (the L2 segment)
NS_C=$P-c       # the client
NS_S=$P-be      # both backends
declare -A NS=([lb1]=$P-lb1 [lb2]=$P-lb2)
made_ns=()
names=()        # processes we started: "name" and pid, same index
pids=()
DIR=$(mktemp -d "/tmp/$P.XXXXXX")
ok=0

track() { names+=("$1"); pids+=("$2"); }

cleanup() {
  local rc=$? i p ns alive
  trap - EXIT INT TERM
  set +e
  # Our processes, by pid (newest first): SIGTERM, then SIGKILL whatever is left after 2 s.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null
  done
  for _ in $(seq 20); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "ha-demo: cleanup: killing ${names[i]} (pid ${pids[i]})" >&2
      kill -KILL "${pids[i]}" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  # Anything else still running inside our namespaces (e.g. keepalived's VRRP child), by pid;
  # then the namespaces, by name (their veths and the bridge go with them).
  for ns in "${made_ns[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      echo "ha-demo: cleanup: killing pid $p left in $ns" >&2
      kill -KILL "$p" 2>/dev/null
    done
  done
  for ns in "${made_ns[@]}"; do
    ip netns del "$ns" 2>/dev/null || echo "ha-demo: cleanup: could not delete namespace $ns" >&2
  done
  if [ "$ok" -ne 1 ] && [ "$rc" -ne 77 ]; then
    for f in "$DIR"/*.log; do
      [ -s "$f" ] || continue
      echo "--- $(basename "$f") (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ "$keep_logs" -eq 1 ]; then
    echo "ha-demo: logs kept in $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What `ip netns exec` / `ip -n` print when they cannot enter a namespace (its mount
# namespace cannot be set up: a chroot, some containers); printed by ip, never by l4lb.
NETNS_ENTER_ERR='"mount --make-rslave /" failed|unshare failed|setting the network namespace .* failed|mount of /sys failed|umount of /sys failed'
netns_enter_err() { grep -Ehs -m1 "$NETNS_ENTER_ERR" "$@" | head -n1 | head -c 200 || true; }
setup=1         # until the VIP is first up: failing to enter a namespace is this machine's doing

die() {
  local m
  [ "$setup" -eq 1 ] && m=$(netns_enter_err "$DIR"/*.log "$DIR"/*.err) || m=
  if [ -n "$m" ]; then
    skip "cannot enter a network namespace (ip netns exec): $m"
  fi
  printf 'ha-demo: FAIL: %s\n' "$*" >&2
  exit 1
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 50 ms; never past the overall deadline.
wait_for() {
  local secs=$1 what=$2 limit=$((SECONDS + $1))
  shift 2
  [ $limit -gt $DEADLINE ] && limit=$DEADLINE
  until "$@"; do
    [ $SECONDS -ge $limit ] && die "$what: not within ${secs} s (at +$((SECONDS - START)) s)"
    sleep 0.05
  done
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
# attach NS PORTNAME ADDR...: a veth from the bridge to eth0 in NS, with these addresses.
attach() {
  local ns=$1 port=$2 a
  shift 2
  ip -n "$NS_BR" link add "$port" type veth peer name eth0 netns "$ns" 2>"$DIR/veth.err" ||
    skip "cannot create a veth pair: $(head -c 200 "$DIR/veth.err")"
  ip -n "$NS_BR" link set "$port" master br0 up
  for a in "$@"; do ip -n "$ns" addr add "$a/24" dev eth0; done
  ip -n "$ns" link set eth0 up
}

mkns "$NS_BR"
ip -n "$NS_BR" link add br0 type bridge 2>"$DIR/br.err" || skip "cannot create a bridge: $(head -c 200 "$DIR/br.err")"
ip -n "$NS_BR" link set br0 up
for n in "$NS_C" "$NS_S" "${NS[lb1]}" "${NS[lb2]}"; do mkns "$n"; done
attach "$NS_C" c "${CLIENT_ADDRS[@]}"
attach "$NS_S" be 10.99.0.20 10.99.0.21
attach "${NS[lb1]}" lb1 "${ADDR[lb1]}"
attach "${NS[lb2]}" lb2 "${ADDR[lb2]}"
say "namespaces $P-{br,c,be,lb1,lb2} on 10.99.0.0/24; VIP $VIP"

# ------------------------------------------------------------------ backends, l4lb, keepalived
for i in 1 2; do
  ip netns exec "$NS_S" "$TESTD" --mode id --name "backend-$i" --listen "10.99.0.2$((i - 1)):9000" \
    >"$DIR/backend-$i.out" 2>"$DIR/backend-$i.log" &
  track "l4lb-testd backend-$i" $!
done
for i in 1 2; do
  wait_for 5 "backend-$i listening" grep -qs '^listening' "$DIR/backend-$i.out"
done

declare -A L4LB_PID
start_l4lb() {  # NODE
  ip netns exec "${NS[$1]}" "$L4LB" -c "$LB_CONF" >>"$DIR/l4lb-$1.log" 2>&1 &
  L4LB_PID[$1]=$!
  track "l4lb $1" $!
  disown $!    # no "Killed" notice from bash after the kill -9 below
}
healthy() { ip netns exec "${NS[$1]}" curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$ADMIN/health" 2>/dev/null; }
start_l4lb lb1
start_l4lb lb2
wait_for 10 "l4lb on lb1 healthy" healthy lb1
wait_for 10 "l4lb on lb2 healthy" healthy lb2

for n in lb1 lb2; do
  ip netns exec "${NS[$n]}" keepalived -n -l -G -D -P -i "$n" -f "$KA_CONF" \
    -p "$DIR/keepalived-$n.pid" -r "$DIR/keepalived-$n-vrrp.pid" >"$DIR/keepalived-$n.log" 2>&1 &
  track "keepalived $n" $!
done

vip_on() { ip -n "${NS[$1]}" -4 -o addr show dev eth0 | grep -q " $VIP/"; }
holder() { if vip_on lb1; then echo lb1; elif vip_on lb2; then echo lb2; else echo none; fi; }
wait_for 15 "VIP on lb1" vip_on lb1
setup=0
say "VIP $VIP on lb1 after $((SECONDS - START)) s (keepalived: both BACKUP, lb1 has the higher priority)"

# ------------------------------------------------------------------ the client (python3)
cat >"$DIR/client.py" <<'EOF'
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

def loop(host, port, src, out, stop):
    # One new connection every 50 ms (a black-holed one gives up after 0.2 s); one line each.
    end = time.time() + 60
    with open(out, "w") as f:
        while not os.path.exists(stop) and time.time() < end:
            t = time.time()
            ok, what = attempt(host, int(port), src, 0.2)
            f.write(f"{t:.6f} {'ok' if ok else 'fail'} {what}\n")
            f.flush()
            time.sleep(max(0.0, t + 0.05 - time.time()))

def hold(host, port, src, out, poke):
    # One connection held open through the VIP; when POKE appears, send a byte on it and
    # report what happens to it.
    s = socket.create_connection((host, int(port)), timeout=2, source_address=(src, 0))
    name = b""
    while not name.endswith(b"\n"):
        b = s.recv(256)
        if not b:
            break
        name += b
    with open(out, "w") as f:
        f.write(f"connected {name.strip().decode(errors='replace')}\n")
    end = time.time() + 50
    while not os.path.exists(poke) and time.time() < end:
        time.sleep(0.05)
    try:
        s.sendall(b"x")
        s.settimeout(2)
        b = s.recv(256)
        res = "open (echoed)" if b else "closed (EOF)"
    except socket.timeout:
        res = "no answer within 2 s"
    except OSError as e:
        res = "reset" if e.errno == errno.ECONNRESET else errno.errorcode.get(e.errno, str(e))
    with open(out, "a") as f:
        f.write(f"after {res}\n")

def affinity(host, port, out, *srcs):
    # The backend each client address reaches through host:port.
    got = {}
    for src in srcs:
        ok, what = attempt(host, int(port), src, 1.0)
        if not ok:
            sys.exit(f"{src} -> {host}:{port}: {what}")
        got[src] = what
    with open(out, "w") as f:
        json.dump(got, f)

def report(log, events, *maps):
    ev = []
    for line in open(events):
        name, t = line.split()
        ev.append((name, float(t)))
    att = []
    for line in open(log):
        t, res, what = line.split(" ", 2)
        att.append((float(t), res == "ok", what.strip()))
    results = {}
    bad = False
    for i, (name, t0) in enumerate(ev):
        if not name.startswith("stop-"):
            continue
        t1 = next((t for n, t in ev[i + 1:]), float("inf"))
        win = [a for a in att if t0 <= a[0] < t1]
        fails = [a for a in win if not a[1]]
        label = name[len("stop-"):]
        if not win:
            print(f"ha-demo: {label}: no client attempts recorded"); bad = True; continue
        if fails:
            last_fail = fails[-1][0]
            after = [a for a in win if a[0] > last_fail and a[1]]
            if not after:
                print(f"ha-demo: {label}: new connections never succeeded again"); bad = True; continue
            back = after[0][0] - t0
            span = after[0][0] - fails[0][0]
            kinds = sorted({a[2] for a in fails})
            print(f"ha-demo: {label}: new connections failed for {span:.2f} s "
                  f"({len(fails)} of {len(win)} attempts: {', '.join(kinds)}); "
                  f"all succeed again {back:.2f} s after the signal")
        else:
            back = 0.0
            print(f"ha-demo: {label}: no new connection failed ({len(win)} attempts)")
        results[label] = back
    for i, (name, t0) in enumerate(ev):
        if name.startswith("quiet-"):
            t1 = next((t for n, t in ev[i + 1:]), float("inf"))
            win = [a for a in att if t0 <= a[0] < t1]
            fails = [a for a in win if not a[1]]
            print(f"ha-demo: {name[len('quiet-'):]}: {len(fails)} of {len(win)} new connections failed")
            results[name] = len(fails)
    loaded = {}
    for m in maps:
        label, path = m.split("=", 1)
        loaded[label] = json.load(open(path))
    first = next(iter(loaded.values()))
    same = all(v == first for v in loaded.values())
    seen = sorted(set(first.values()))
    counts = {b: list(first.values()).count(b) for b in seen}
    if same:
        print(f"ha-demo: consistent_hash: each of {len(first)} client addresses reached the same backend "
              f"through {', '.join(loaded)} ({', '.join(f'{b}: {c}' for b, c in counts.items())})")
    else:
        bad = True
        for src in first:
            row = {k: v.get(src) for k, v in loaded.items()}
            if len(set(row.values())) > 1:
                print(f"ha-demo: consistent_hash: {src} reached different backends: {row}")
    print("RESULT " + " ".join([
        f"sigterm_failover_s={results.get('sigterm', -1):.2f}",
        f"kill9_failover_s={results.get('kill9', -1):.2f}",
        f"rejoin_failures={results.get('quiet-rejoin', -1)}",
        f"affinity={'same' if same else 'DIFFERENT'}",
        f"backends_seen={len(seen)}",
        f"clients={len(first)}"]))
    sys.exit(1 if bad else 0)

{"loop": loop, "hold": hold, "affinity": affinity, "report": report}[sys.argv[1]](*sys.argv[2:])
EOF

client() { ip netns exec "$NS_C" python3 "$DIR/client.py" "$@"; }
mark() { echo "$1 $EPOCHREALTIME" >>"$DIR/events"; }
: >"$DIR/events"

{
  client affinity "${ADDR[lb1]}" $PORT "$DIR/aff-lb1.json" "${CLIENT_ADDRS[@]}" || die "affinity through lb1"
  client affinity "${ADDR[lb2]}" $PORT "$DIR/aff-lb2.json" "${CLIENT_ADDRS[@]}" || die "affinity through lb2"
  client affinity $VIP $PORT "$DIR/aff-vip-lb1.json" "${CLIENT_ADDRS[@]}" || die "affinity through the VIP on lb1"
}
say "20 client addresses connected through lb1, lb2 and the VIP (on lb1)"

ip netns exec "$NS_C" python3 "$DIR/client.py" loop $VIP $PORT 10.99.0.50 "$DIR/client.out" "$DIR/stop" \
  2>"$DIR/client.log" &
track "client loop" $!
client_pid=$!
wait_for 5 "client loop running" test -s "$DIR/client.out"
sleep 1

# steady SECONDS: the last SECONDS of client attempts all succeeded (and there were some).
steady() {
  python3 - "$DIR/client.out" "$1" <<'EOF'
import sys, time
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
now = time.time()
recent = [l for l in lines if float(l[0]) >= now - float(sys.argv[2])]
sys.exit(0 if len(recent) >= 5 and all(l[1] == "ok" for l in recent) else 1)
EOF
}
wait_for 5 "client steady through lb1" steady 0.5

exited() { ! kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------------ 1: SIGTERM the active l4lb
# A connection held open through the VIP keeps lb1's l4lb in its drain (drain_timeout 10s),
# so keepalived sees /health answer 503 "stopping" -- not a refused connect.
ip netns exec "$NS_C" python3 "$DIR/client.py" hold $VIP $PORT 10.99.0.51 "$DIR/hold.out" "$DIR/poke" \
  2>"$DIR/hold.log" &
track "held connection" $!
hold_pid=$!
wait_for 5 "a connection held through the VIP" grep -qs '^connected' "$DIR/hold.out"

say "SIGTERM l4lb on lb1 (pid ${L4LB_PID[lb1]}) at +$((SECONDS - START)) s"
mark stop-sigterm
kill -TERM "${L4LB_PID[lb1]}"
wait_for 10 "VIP on lb2 after SIGTERM of lb1's l4lb" vip_on lb2
wait_for 10 "client steady through lb2" steady 1
client affinity $VIP $PORT "$DIR/aff-vip-lb2.json" "${CLIENT_ADDRS[@]}" || die "affinity through the VIP on lb2"
if exited "${L4LB_PID[lb1]}"; then
  say "VIP on $(holder); lb1's l4lb has already exited"
else
  h=$(ip netns exec "${NS[lb1]}" curl -sS -m 1 -w ' %{http_code}' "http://127.0.0.1:$ADMIN/health" 2>&1 || true)
  say "VIP on $(holder); lb1's l4lb is still draining the held connection, its /health: $h"
fi
touch "$DIR/poke"
wait_for 5 "the held connection's fate" exited "$hold_pid"
say "the connection that was open through the VIP on lb1, used after the move: $(sed -n 's/^after //p' "$DIR/hold.out") (lb2 has no socket for it)"
if ! exited "${L4LB_PID[lb1]}"; then
  kill -TERM "${L4LB_PID[lb1]}"   # a second SIGTERM ends the drain at once
  say "second SIGTERM to lb1's l4lb: drain cut short"
fi
wait_for 5 "l4lb on lb1 exited" exited "${L4LB_PID[lb1]}"

# ------------------------------------------------------------------ lb1 comes back
mark quiet-rejoin
n_backup=$(grep -c 'Entering BACKUP STATE' "$DIR/keepalived-lb1.log" || true)
start_l4lb lb1
wait_for 10 "l4lb on lb1 healthy again" healthy lb1
more_backup() { [ "$(grep -c 'Entering BACKUP STATE' "$DIR/keepalived-lb1.log")" -gt "$n_backup" ]; }
wait_for 10 "keepalived on lb1 back in BACKUP" more_backup
sleep 1
[ "$(holder)" = lb2 ] || die "VIP moved to $(holder) when lb1 came back (nopreempt should keep it on lb2)"
say "l4lb on lb1 restarted; lb1 is BACKUP again, VIP stays on lb2 (nopreempt)"

# ------------------------------------------------------------------ 2: kill -9 the other one
say "kill -9 l4lb on lb2 (pid ${L4LB_PID[lb2]}) at +$((SECONDS - START)) s"
mark stop-kill9
kill -KILL "${L4LB_PID[lb2]}"
wait_for 10 "VIP on lb1 after kill -9 of lb2's l4lb" vip_on lb1
wait_for 10 "client steady through lb1" steady 1
client affinity $VIP $PORT "$DIR/aff-vip-lb1-again.json" "${CLIENT_ADDRS[@]}" || die "affinity through the VIP back on lb1"
say "VIP on $(holder)"

mark end
touch "$DIR/stop"
wait_for 3 "client loop stopped" exited "$client_pid"

# ------------------------------------------------------------------ report
set +e
python3 "$DIR/client.py" report "$DIR/client.out" "$DIR/events" \
  "lb1=$DIR/aff-lb1.json" "lb2=$DIR/aff-lb2.json" "VIP-on-lb1=$DIR/aff-vip-lb1.json" \
  "VIP-on-lb2=$DIR/aff-vip-lb2.json" "VIP-back-on-lb1=$DIR/aff-vip-lb1-again.json"
rc=$?
set -e
say "done in $((SECONDS - START)) s"
[ $rc -eq 0 ] || exit 1
ok=1
