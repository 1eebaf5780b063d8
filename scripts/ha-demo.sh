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
DEMO=ha-demo
. "$ROOT/scripts/lib/netns-demo.sh"   # keep_logs, L4LB, TESTD; skip, die, cleanup, mkns, ...

KA_CONF=$ROOT/conf/keepalived/keepalived.conf
LB_CONF=$ROOT/conf/keepalived/l4lb.yaml

VIP=10.99.0.100
PORT=8080
ADMIN=9900
declare -A ADDR=([lb1]=10.99.0.2 [lb2]=10.99.0.3)
mapfile -t CLIENT_ADDRS < <(seq -f '10.99.0.%g' 50 69)

START=$SECONDS
DEADLINE=$((SECONDS + 55))
POLL=0.05

# ------------------------------------------------------------------ can this machine run it?
require_root_and_ip
command -v keepalived >/dev/null || skip "keepalived is not installed: apt-get install keepalived (scripts/install-deps.sh --test)"
command -v python3 >/dev/null || skip "python3 is not installed"
[ -x /usr/bin/curl ] || skip "/usr/bin/curl is not installed (keepalived's health script)"
build_if_missing

P=l4ha-$$
NS_BR=$P-br     # the bridge (the L2 segment)
NS_C=$P-c       # the client
NS_S=$P-be      # both backends
declare -A NS=([lb1]=$P-lb1 [lb2]=$P-lb2)
demo_init       # until the VIP is first up, failing to enter a namespace means: skip (77)

# ------------------------------------------------------------------ namespaces
make_bridge
for n in "$NS_C" "$NS_S" "${NS[lb1]}" "${NS[lb2]}"; do mkns "$n"; done
attach "$NS_C" c eth0 "${CLIENT_ADDRS[@]}"
attach "$NS_S" be eth0 10.99.0.20 10.99.0.21
attach "${NS[lb1]}" lb1 eth0 "${ADDR[lb1]}"
attach "${NS[lb2]}" lb2 eth0 "${ADDR[lb2]}"
say "namespaces $P-{br,c,be,lb1,lb2} on 10.99.0.0/24; VIP $VIP"

# ------------------------------------------------------------------ backends, l4lb, keepalived
start_backends 10.99.0.20 10.99.0.21
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
{ client_py_head; cat <<'EOF'; } >"$DIR/client.py"

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
    name = name_line(s)
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
    ev, att = load(events, log)
    results, bad = outages("ha-demo", ev, att, lambda t0, win, fails, t_ok, back: (
        f"new connections failed for {t_ok - fails[0][0]:.2f} s "
        f"({len(fails)} of {len(win)} attempts: {', '.join(sorted({a[2] for a in fails}))}); "
        f"all succeed again {back:.2f} s after the signal"))
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
