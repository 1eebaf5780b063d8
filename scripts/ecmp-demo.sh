#!/usr/bin/env bash
# Three l4lb nodes active/active behind a router: each node announces the service address over
# BGP (BIRD) while its l4lb is healthy, the router installs one equal-cost route with a next hop
# per node and hashes flows over them. All inside network namespaces this script creates and
# removes; it measures how long new client connections fail when a node's l4lb stops (SIGTERM),
# is killed (kill -9), and when a whole node dies, and what a returning node does to open flows.
#
#   sudo scripts/ecmp-demo.sh          (needs root, `ip netns`, bird2 (bird, birdc), python3, curl)
#
# Topology (nothing is added to the host's own network namespace; every namespace is named
# l4ecmp-<PID>-*, so runs do not collide):
#
#   client 10.98.2.10-49 --- router 10.98.2.1 | 10.98.1.1 (r0) --- bridge ---+--- lb1 10.98.1.2 --+
#     (40 addresses)         bird, AS 65000                                   +--- lb2 10.98.1.3   | l4lb :8080, admin :9900,
#                            ECMP route 10.98.0.100/32                        +--- lb3 10.98.1.4 --+ bird AS 65001, health watcher;
#                                                                             |                      10.98.0.100/32 on lo
#   backends 10.98.1.20:9000 (backend-1), 10.98.1.21:9000 (backend-2) -------+
#
# The nodes run conf/bird/l4lb.yaml, conf/bird/bird.conf and conf/bird/l4lb-bird-health.sh, the
# router conf/bird/bird-router.conf, all as they are (the router with fib_multipath_hash_policy=1:
# L4 hash). Steps: wait for the route with three next hops; 150 connections from 40 addresses
# spread over the three nodes (each node's /stats); each client address reaches the same backend
# through lb1, lb2, lb3 and the service address (consistent_hash); two clients connect to the
# service address every 40 ms each; SIGTERM lb1's l4lb while connections are held open (it
# drains: /health 503 "stopping" -> withdrawn); lb1's l4lb comes back (counts the held flows
# through lb2/lb3 that its return moved); kill -9 lb2's l4lb; lb2 comes back; lb3 dies whole (its
# link to the segment goes down: no goodbye, BFD notices). Then the same return once more through
# a resilient nexthop group the script puts on the router for 10.98.0.101 (BIRD 2.0.12 installs
# classic multipath routes, never nexthop objects; see conf/bird/README.md).
# Prints what it measured and a last line
#   RESULT sigterm_window_s=S kill9_window_s=S node_down_window_s=S spread=a/b/c affinity=same ...
# Exit 0 when every step worked, 1 when one did not, 77 when this machine cannot run it (not
# root, network namespaces cannot be made or entered, bird2 missing). Bounded: gives up after ~90 s.
# Binaries: env L4LB_BIN, L4LB_TESTD (defaults build/l4lb, build/l4lb-testd; built if missing).
# --keep-logs: keep the per-process logs (their directory is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=ecmp-demo
. "$ROOT/scripts/lib/netns-demo.sh"   # keep_logs, L4LB, TESTD; skip, die, cleanup, mkns, ...

NODE_BIRD=$ROOT/conf/bird/bird.conf
ROUTER_BIRD=$ROOT/conf/bird/bird-router.conf
WATCHER=$ROOT/conf/bird/l4lb-bird-health.sh
LB_CONF=$ROOT/conf/bird/l4lb.yaml

SVC=10.98.0.100       # announced by BIRD
SVC_RES=10.98.0.101   # the resilient-group part: a static nexthop group on the router
PORT=8080
ADMIN=9900
NODES=(lb1 lb2 lb3)
declare -A ADDR=([lb1]=10.98.1.2 [lb2]=10.98.1.3 [lb3]=10.98.1.4)
declare -A NHID=([lb1]=1 [lb2]=2 [lb3]=3)
mapfile -t CLIENT_ADDRS < <(seq -f '10.98.2.%g' 10 49)

START=$SECONDS
DEADLINE=$((SECONDS + 90))
POLL=0.02
CLEANUP_SECOND_TERM=1   # an l4lb may hold connections whose clients were reset through another node

# ------------------------------------------------------------------ can this machine run it?
require_root_and_ip
command -v bird >/dev/null && command -v birdc >/dev/null ||
  skip "bird2 is not installed (bird, birdc): apt-get install bird2 (scripts/install-deps.sh --test)"
command -v python3 >/dev/null || skip "python3 is not installed"
command -v curl >/dev/null || skip "curl is not installed (the health watcher)"
build_if_missing

P=l4ecmp-$$
NS_BR=$P-br     # the nodes' segment (a bridge)
NS_R=$P-r       # the router
NS_C=$P-c       # the clients
NS_S=$P-be      # both backends
declare -A NS=([lb1]=$P-lb1 [lb2]=$P-lb2 [lb3]=$P-lb3)
declare -A BIRD_PID=() WATCH_PID=()
demo_init       # until the route is first up, failing to enter a namespace means: skip (77)

since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

# ------------------------------------------------------------------ namespaces
sysctl_in() { ip netns exec "$1" sysctl -qw "$2" >/dev/null; }

make_bridge
for n in "$NS_R" "$NS_C" "$NS_S" "${NS[lb1]}" "${NS[lb2]}" "${NS[lb3]}"; do mkns "$n"; done
attach "$NS_R" r r0 10.98.1.1
attach "$NS_S" be eth0 10.98.1.20 10.98.1.21
for n in "${NODES[@]}"; do
  attach "${NS[$n]}" "$n" eth0 "${ADDR[$n]}"
  ip -n "${NS[$n]}" addr add "$SVC/32" dev lo
  ip -n "${NS[$n]}" addr add "$SVC_RES/32" dev lo
  ip -n "${NS[$n]}" route add default via 10.98.1.1
done
# The clients are one routed hop away from the router (not on the nodes' segment).
ip -n "$NS_R" link add c0 type veth peer name eth0 netns "$NS_C"
ip -n "$NS_R" addr add 10.98.2.1/24 dev c0
ip -n "$NS_R" link set c0 up
for a in "${CLIENT_ADDRS[@]}"; do ip -n "$NS_C" addr add "$a/24" dev eth0; done
ip -n "$NS_C" link set eth0 up
ip -n "$NS_C" route add default via 10.98.2.1
sysctl_in "$NS_R" net.ipv4.ip_forward=1
sysctl_in "$NS_R" net.ipv4.fib_multipath_hash_policy=1     # L4: hash the 5-tuple
say "namespaces $P-{br,r,c,be,lb1,lb2,lb3}; service address $SVC on every node's lo"

# ------------------------------------------------------------------ backends, l4lb, bird, watchers
start_backends 10.98.1.20 10.98.1.21

start_bird() {  # NODE|router CONF
  local ns=${NS[$1]:-$NS_R}
  ip netns exec "$ns" bird -f -c "$2" -s "$DIR/bird-$1.ctl" -P "$DIR/bird-$1.pid" >>"$DIR/bird-$1.log" 2>&1 &
  BIRD_PID[$1]=$!
  track "bird $1" $!
  disown $!
}
start_watcher() {  # NODE
  ip netns exec "${NS[$1]}" "$WATCHER" -s "$DIR/bird-$1.ctl" >>"$DIR/watcher-$1.log" 2>&1 &
  WATCH_PID[$1]=$!
  track "health watcher $1" $!
  disown $!
}
for n in "${NODES[@]}"; do start_l4lb "$n"; done
for n in "${NODES[@]}"; do wait_for 10 "l4lb on $n healthy" healthy "$n"; done

bird -p -c "$ROUTER_BIRD" 2>"$DIR/parse.err" || die "bird-router.conf: $(cat "$DIR/parse.err")"
bird -p -c "$NODE_BIRD" 2>"$DIR/parse.err" || die "bird.conf: $(cat "$DIR/parse.err")"
start_bird router "$ROUTER_BIRD"
for n in "${NODES[@]}"; do start_bird "$n" "$NODE_BIRD"; done
for n in "${NODES[@]}"; do
  wait_for 5 "bird on $n answering" test -S "$DIR/bird-$n.ctl"
  start_watcher "$n"
done

# The router's kernel route to the service address: its next hops (node addresses), one a line.
nexthops() { ip -n "$NS_R" -4 route show "$1/32" 2>/dev/null | grep -o 'via [0-9.]*' | cut -d' ' -f2 | sort; }
n_nexthops() { [ "$(nexthops "$SVC" | wc -l)" -eq "$1" ]; }
routed_to() { nexthops "$SVC" | grep -qx "${ADDR[$1]}"; }
not_routed_to() { ! routed_to "$1"; }
wait_for 20 "route to $SVC with three next hops on the router" n_nexthops 3
setup=0
say "router: $SVC via $(nexthops "$SVC" | tr '\n' ' ')after $((SECONDS - START)) s ($(ip -n "$NS_R" -4 route show "$SVC/32" | head -n1 | sed 's/ *$//'))"

# ------------------------------------------------------------------ the client (python3)
{ client_py_head; cat <<'PYEOF'; } >"$DIR/client.py"

def loop(host, port, srcs, out, stop):
    # A new connection every 40 ms from the next source address (a new source port each time,
    # so the router's L4 hash picks a node afresh); a black-holed SYN gives up after 0.2 s.
    srcs = srcs.split(",")
    end = time.time() + 85
    i = 0
    with open(out, "w") as f:
        while not os.path.exists(stop) and time.time() < end:
            t = time.time()
            ok, what = attempt(host, int(port), srcs[i % len(srcs)], 0.2)
            i += 1
            f.write(f"{t:.6f} {'ok' if ok else 'fail'} {what}\n")
            f.flush()
            time.sleep(max(0.0, t + 0.04 - time.time()))

def spread(host, port, n, out, *srcs):
    # N connections, source addresses in turn; the backend each reached.
    got = []
    for i in range(int(n)):
        ok, what = attempt(host, int(port), srcs[i % len(srcs)], 1.0)
        if not ok:
            sys.exit(f"{srcs[i % len(srcs)]} -> {host}:{port}: {what}")
        got.append(what)
    json.dump(got, open(out, "w"))

def affinity(host, port, times, out, *srcs):
    # The backend each client address reaches through host:port (TIMES connections each: through
    # the service address they hash to different nodes; every one must give the same backend).
    got = {}
    for src in srcs:
        seen = set()
        for _ in range(int(times)):
            ok, what = attempt(host, int(port), src, 1.0)
            if not ok:
                sys.exit(f"{src} -> {host}:{port}: {what}")
            seen.add(what)
        got[src] = what if len(seen) == 1 else "MIXED:" + ",".join(sorted(seen))
    with open(out, "w") as f:
        json.dump(got, f)

def hold(host, port, n, out, poke, ping, *srcs):
    # N connections held open through host:port. With PING=1 each sends a byte every 0.3 s (an
    # active flow: the backend reads and discards it). When POKE appears: send a byte on each
    # and see whether it is still open (no answer within 0.5 s: the backend, in mode id, reads
    # it quietly) or was reset (its packets now reach a node that has no socket for it).
    conns = []
    for i in range(int(n)):
        s = socket.create_connection((host, int(port)), timeout=2,
                                     source_address=(srcs[i % len(srcs)], 0))
        name_line(s)
        conns.append(s)
    with open(out, "w") as f:
        f.write(f"connected {len(conns)}\n")
    end = time.time() + 60
    broken = set()
    while not os.path.exists(poke) and time.time() < end:
        if ping == "1":
            for i, s in enumerate(conns):
                if i in broken:
                    continue
                try:
                    s.sendall(b".")
                except OSError:
                    broken.add(i)
        time.sleep(0.3)
    res = {"open": 0, "reset": 0, "closed": 0, "other": 0}
    live = []
    for i, s in enumerate(conns):
        if i in broken:
            res["reset"] += 1
            continue
        try:
            s.sendall(b"x")
            live.append(s)
        except OSError as e:
            res["reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "other"] += 1
    time.sleep(0.5)             # a reset from a node that has no socket for it is back by now
    for s in live:
        s.setblocking(False)
        try:
            b = s.recv(256)
            res["open" if b else "closed"] += 1     # (mode id never answers: b"" is EOF)
        except BlockingIOError:
            res["open"] += 1
        except OSError as e:
            res["reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "other"] += 1
    with open(out, "a") as f:
        f.write("after " + " ".join(f"{k}={v}" for k, v in res.items()) + "\n")

def report(events, *logs):
    ev, att = load(events, *logs)
    results, bad = outages("ecmp-demo", ev, att, lambda t0, win, fails, t_ok, back: (
        f"{len(fails)} of {len(win)} new connections failed "
        f"({', '.join(sorted({a[2] for a in fails}))}), the last {fails[-1][0] - t0:.2f} s after it; "
        f"all succeed again {back:.2f} s after it"))
    json.dump(results, open(events + ".json", "w"))
    sys.exit(1 if bad else 0)

{"loop": loop, "spread": spread, "affinity": affinity, "hold": hold,
 "report": report}[sys.argv[1]](*sys.argv[2:])
PYEOF

: >"$DIR/events"
# total_connections of the service on NODE (its /stats)
accepted() {
  ip netns exec "${NS[$1]}" curl -fsS -m 1 "http://127.0.0.1:$ADMIN/stats" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["total_connections"])' 2>/dev/null || echo -1
}
active() {
  ip netns exec "${NS[$1]}" curl -fsS -m 1 "http://127.0.0.1:$ADMIN/stats" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["active_connections"])' 2>/dev/null || echo -1
}
declare -A BEFORE
snapshot() { local n; for n in "${NODES[@]}"; do BEFORE[$n]=$(accepted "$n"); done; }
delta() { echo $(($(accepted "$1") - BEFORE[$1])); }

# ------------------------------------------------------------------ spread and affinity
snapshot
client spread $SVC $PORT 150 "$DIR/spread.json" "${CLIENT_ADDRS[@]}" || die "150 connections to $SVC"
spread=$(for n in "${NODES[@]}"; do delta "$n"; done | paste -sd/)
say "150 connections from 40 addresses to $SVC: lb1/lb2/lb3 accepted $spread (+$((SECONDS - START)) s)"

for n in "${NODES[@]}"; do
  client affinity "${ADDR[$n]}" $PORT 1 "$DIR/aff-$n.json" "${CLIENT_ADDRS[@]}" || die "affinity through $n"
done
client affinity $SVC $PORT 3 "$DIR/aff-svc.json" "${CLIENT_ADDRS[@]}" || die "affinity through $SVC"
affinity=$(python3 - "$DIR"/aff-lb1.json "$DIR"/aff-lb2.json "$DIR"/aff-lb3.json "$DIR"/aff-svc.json <<'PYEOF'
import json, sys
maps = [json.load(open(p)) for p in sys.argv[1:]]
first = maps[0]
bad = [s for s in first if len({m[s] for m in maps}) > 1]
for s in bad:
    print(f"ecmp-demo: consistent_hash: {s} reached {[m[s] for m in maps]} (lb1, lb2, lb3, service x3)", file=sys.stderr)
seen = sorted(set(first.values()))
print(("same" if not bad else "DIFFERENT"), len(seen),
      ",".join(f"{b}:{list(first.values()).count(b)}" for b in seen))
PYEOF
)
read -r aff_same aff_backends aff_counts <<<"$affinity"
say "consistent_hash: 40 client addresses through lb1, lb2, lb3 and 3x through $SVC: $aff_same backend each ($aff_counts)"

# ------------------------------------------------------------------ the probe clients
half=$(( ${#CLIENT_ADDRS[@]} / 2 ))
srcs_a=$(IFS=,; echo "${CLIENT_ADDRS[*]:0:$half}")
srcs_b=$(IFS=,; echo "${CLIENT_ADDRS[*]:$half}")
ip netns exec "$NS_C" python3 "$DIR/client.py" loop $SVC $PORT "$srcs_a" "$DIR/probe-a.out" "$DIR/stop" 2>"$DIR/probe-a.log" &
track "probe a" $!
probe_a=$!
ip netns exec "$NS_C" python3 "$DIR/client.py" loop $SVC $PORT "$srcs_b" "$DIR/probe-b.out" "$DIR/stop" 2>"$DIR/probe-b.log" &
track "probe b" $!
probe_b=$!
wait_for 5 "probe clients running" test -s "$DIR/probe-b.out"

# steady SECONDS: the last SECONDS of probe attempts all succeeded (and there were some).
steady() {
  python3 - "$1" "$DIR/probe-a.out" "$DIR/probe-b.out" <<'PYEOF'
import sys, time
lines = [l.split() for p in sys.argv[2:] for l in open(p) if l.strip()]
now = time.time()
recent = [l for l in lines if float(l[0]) >= now - float(sys.argv[1])]
sys.exit(0 if len(recent) >= 8 and all(l[1] == "ok" for l in recent) else 1)
PYEOF
}
wait_for 5 "probes steady through three nodes" steady 0.5

# hold_start NAME N PING: N connections held through the service address (client.py hold).
declare -A HOLD_PID
hold_start() {
  rm -f "$DIR/poke-$1"
  ip netns exec "$NS_C" python3 "$DIR/client.py" hold "${4:-$SVC}" $PORT "$2" "$DIR/hold-$1.out" "$DIR/poke-$1" "$3" \
    "${CLIENT_ADDRS[@]}" 2>"$DIR/hold-$1.log" &
  HOLD_PID[$1]=$!
  track "held connections $1" $!
  wait_for 5 "$2 connections held ($1)" grep -qs '^connected' "$DIR/hold-$1.out"
}
hold_result() {   # NAME: prints "open=N reset=N closed=N other=N"
  touch "$DIR/poke-$1"
  wait_for 5 "the held connections' fate ($1)" exited "${HOLD_PID[$1]}"
  sed -n 's/^after //p' "$DIR/hold-$1.out"
}
kv() { sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" <<<"$1"; }
# withdrawn_after NODE LABEL WHAT CMD...: marks stop-LABEL, runs CMD (which takes NODE away) and
# waits for the router to drop NODE's next hop; WITHDRAWN: seconds from CMD to that.
withdrawn_after() {
  local node=$1 label=$2 what=$3 t
  shift 3
  mark "stop-$label"
  t=$EPOCHREALTIME
  "$@"
  wait_for 5 "route via $node withdrawn after $what" not_routed_to "$node"
  WITHDRAWN=$(since "$t" "$WAITED")
}

# ------------------------------------------------------------------ 1: SIGTERM lb1's l4lb
# Connections held open keep lb1's l4lb in its drain (drain_timeout 10s), so the watcher sees
# /health answer 503 "stopping" -- not a refused connect.
hold_start sigterm 30 0
held_lb1=$(active lb1)
say "SIGTERM l4lb on lb1 (pid ${L4LB_PID[lb1]}) at +$((SECONDS - START)) s; 30 connections held, $held_lb1 of them through lb1"
withdrawn_after lb1 sigterm SIGTERM kill -TERM "${L4LB_PID[lb1]}"
withdraw_sigterm=$WITHDRAWN
h=$(ip netns exec "${NS[lb1]}" curl -sS -m 1 -w ' %{http_code}' "http://127.0.0.1:$ADMIN/health" 2>&1 || true)
say "router: lb1's next hop withdrawn $withdraw_sigterm s after the SIGTERM (lb1's /health now: $h)"
wait_for 5 "probes steady through lb2 and lb3" steady 1
r=$(hold_result sigterm)
moved_sigterm=$(( $(kv "$r" reset) + $(kv "$r" closed) + $(kv "$r" other) - held_lb1 ))
say "held connections after the withdrawal: $r ($held_lb1 were lb1's; $moved_sigterm of lb2's and lb3's were moved between them by the rehash)"
exited "${L4LB_PID[lb1]}" || kill -TERM "${L4LB_PID[lb1]}"   # a second SIGTERM ends the drain
wait_for 5 "l4lb on lb1 exited" exited "${L4LB_PID[lb1]}"

# ------------------------------------------------------------------ lb1 comes back
hold_start rejoin1 40 1
mark quiet-rejoin-lb1
snapshot
start_l4lb lb1
wait_for 10 "route via lb1 again" routed_to lb1
t_back=$EPOCHREALTIME
sleep 1
r=$(hold_result rejoin1)
moved_rejoin1=$(( $(kv "$r" reset) + $(kv "$r" closed) + $(kv "$r" other) ))
took_lb1=$(delta lb1)
say "lb1's l4lb restarted: announced again; it took $took_lb1 new connections in its first second; of 40 connections held through lb2/lb3: $r"

# ------------------------------------------------------------------ 2: kill -9 lb2's l4lb
say "kill -9 l4lb on lb2 (pid ${L4LB_PID[lb2]}) at +$((SECONDS - START)) s"
withdrawn_after lb2 kill9 "kill -9" kill -KILL "${L4LB_PID[lb2]}"
withdraw_kill9=$WITHDRAWN
say "router: lb2's next hop withdrawn $withdraw_kill9 s after the kill -9"
wait_for 5 "probes steady through lb1 and lb3" steady 1

mark quiet-rejoin-lb2
start_l4lb lb2
wait_for 10 "route via lb2 again" routed_to lb2
sleep 0.5
say "lb2's l4lb restarted: three next hops again"

# ------------------------------------------------------------------ 3: lb3 dies whole
# Its link to the segment goes down (the bridge port, not the router's own interface): no
# goodbye from l4lb or BIRD, packets to lb3 vanish. The router's BFD notices.
say "lb3's link goes down (the whole node is gone) at +$((SECONDS - START)) s"
withdrawn_after lb3 node-down "the node died" ip -n "$NS_BR" link set lb3 down
withdraw_node=$WITHDRAWN
why=$(grep -m1 -o 'lb3: BFD session down\|lb3: Error: Hold timer expired' "$DIR/bird-router.log" || echo "lb3: reason not logged")
say "router: lb3's next hop withdrawn $withdraw_node s after its link went down (router's bird: \"$why\")"
wait_for 5 "probes steady through lb1 and lb2" steady 1
mark end
touch "$DIR/stop"
wait_for 3 "probe clients stopped" exited "$probe_a"
wait_for 3 "probe clients stopped" exited "$probe_b"
ip -n "$NS_BR" link set lb3 up
wait_for 10 "route via lb3 again" routed_to lb3

# ------------------------------------------------------------------ 4: a resilient nexthop group
# BIRD 2.0.12 installs classic multipath routes (hash-threshold: a next hop added or removed
# re-divides the hash space and moves flows between the others too). The kernel's resilient
# groups keep every bucket where it is unless it has been idle for idle_timer. Shown here with a
# static group for a second service address, $SVC_RES: one node away, flows held (active: a
# byte every 0.3 s), the node comes back.
moved_res=-1 took_res=-1
if ip -n "$NS_R" nexthop add id 1 via "${ADDR[lb1]}" dev r0 2>"$DIR/nh.err"; then
  for n in lb2 lb3; do ip -n "$NS_R" nexthop add id "${NHID[$n]}" via "${ADDR[$n]}" dev r0; done
  ip -n "$NS_R" nexthop add id 10 group 2/3 type resilient buckets 64 idle_timer 1 unbalanced_timer 0
  ip -n "$NS_R" route add "$SVC_RES/32" nhid 10
  hold_start resilient 40 1 "$SVC_RES"
  sleep 1.5           # buckets that carry no held flow go idle
  before_res=$(accepted lb1)
  ip -n "$NS_R" nexthop replace id 10 group 1/2/3 type resilient buckets 64 idle_timer 1 unbalanced_timer 0
  sleep 0.5
  buckets=$(ip -n "$NS_R" nexthop bucket show id 10 | grep -o 'nhid [0-9]*' | sort | uniq -c | awk '{printf "%s%s:%s", sep, $3, $1; sep="/"}')
  client spread "$SVC_RES" $PORT 60 "$DIR/spread-res.json" "${CLIENT_ADDRS[@]}" || die "60 connections to $SVC_RES"
  took_res=$(( $(accepted lb1) - before_res ))
  r=$(hold_result resilient)
  moved_res=$(( $(kv "$r" reset) + $(kv "$r" closed) + $(kv "$r" other) ))
  say "resilient group (64 buckets, idle_timer 1 s) for $SVC_RES: lb1 added back; buckets per next hop id now $buckets; lb1 took $took_res of 60 new connections; of 40 active flows held through lb2/lb3: $r"
else
  say "this kernel has no nexthop objects ($(head -c 120 "$DIR/nh.err")): resilient part skipped"
fi

# ------------------------------------------------------------------ report
set +e
python3 "$DIR/client.py" report "$DIR/events" "$DIR/probe-a.out" "$DIR/probe-b.out"
rc=$?
set -e
res() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], -1))' "$DIR/events.json" "$1"; }
fmt() { python3 -c 'import sys; print(f"{float(sys.argv[1]):.2f}")' "$1"; }
echo "RESULT sigterm_window_s=$(fmt "$(res sigterm)") kill9_window_s=$(fmt "$(res kill9)")" \
  "node_down_window_s=$(fmt "$(res node-down)") withdraw_sigterm_s=$withdraw_sigterm" \
  "withdraw_kill9_s=$withdraw_kill9 withdraw_node_down_s=$withdraw_node" \
  "rejoin_failures=$(( $(res quiet-rejoin-lb1) + $(res quiet-rejoin-lb2) ))" \
  "spread=$spread affinity=$aff_same backends_seen=$aff_backends clients=${#CLIENT_ADDRS[@]}" \
  "sigterm_moved_survivor_flows=$moved_sigterm rejoin_moved_flows=$moved_rejoin1/40 rejoin_new_flows=$took_lb1" \
  "resilient_moved_flows=$moved_res/40 resilient_new_flows=$took_res/60"
say "done in $((SECONDS - START)) s"
[ $rc -eq 0 ] || exit 1
ok=1
