"""High availability: two l4lb nodes behind a keepalived virtual IP (scripts/ha-demo.sh).

The demo builds its own network namespaces (l4ha-<PID>-*), runs l4lb with
conf/keepalived/l4lb.yaml and keepalived with conf/keepalived/keepalived.conf on two nodes,
stops the active l4lb (SIGTERM), lets the first node come back, then kill -9s the other, and
measures how long new client connections to the virtual IP fail. It also checks that
consistent_hash sends each of 20 client addresses to the same backend through node A, node B
and the virtual IP on either node. Needs root, `ip netns` and keepalived; skipped otherwise.
"""

from __future__ import annotations

import os

import harness as h
import netns_demo

SCRIPT = os.path.join(h.ROOT, "scripts", "ha-demo.sh")
MAX_FAILOVER_S = 3.0


@h.timeout(100)
def test_ha_keepalived_failover_within_3s_and_same_backend_through_either_node():
    netns_demo.skip_unless_runnable("l4ha", {
        "keepalived": "keepalived is not installed (apt-get install keepalived; "
                      "scripts/install-deps.sh --test)"})
    text, res = netns_demo.run_demo(SCRIPT, "l4ha", timeout=75, max_elapsed=60)
    sigterm = float(res["sigterm_failover_s"])
    kill9 = float(res["kill9_failover_s"])
    assert 0 <= sigterm <= MAX_FAILOVER_S, \
        f"new connections failed for {sigterm}s after SIGTERM of the active l4lb (max {MAX_FAILOVER_S}s)"
    assert 0 <= kill9 <= MAX_FAILOVER_S, \
        f"new connections failed for {kill9}s after kill -9 of the active l4lb (max {MAX_FAILOVER_S}s)"
    assert res["rejoin_failures"] == "0", \
        f"{res['rejoin_failures']} new connections failed while the stopped node came back (nopreempt)"
    assert res["affinity"] == "same", "a client reached different backends through lb1, lb2 or the VIP"
    assert int(res["backends_seen"]) == 2, \
        f"20 client addresses all reached one backend: the affinity check proves little ({res})"
    assert "/health: {\"status\":\"stopping\"} 503" in text or "already exited" in text, \
        "the draining node's /health did not answer 503 stopping"
    return f"failover of new connections: SIGTERM {sigterm:.2f}s, kill -9 {kill9:.2f}s"
