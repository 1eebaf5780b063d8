"""Backend selection through real sockets: least_connections and its weighted form
follow live counts, ip_hash and consistent_hash are sticky (consistent_hash moves only the
clients of a removed backend, independent of file order), random spreads, smooth
weighted_round_robin gives nginx's exact sequence, backups, drain, per-backend
max_connections, and live counts back at 0 after every kind of ending."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import threading
import time

import harness as h

RELOAD_RX = re.compile(r'\bmsg="reload (ok|failed)"')

# ---------------------------------------------------------------------------- helpers


def _admin_global(**extra) -> tuple[dict, int]:
    port = h.free_port()
    g = dict(extra)
    g["admin"] = {"listen": f"127.0.0.1:{port}"}
    return g, port


def _start(services: list[dict], **global_opts) -> tuple[h.L4lb, int, dict]:
    """Starts l4lb with SERVICES and an admin port; returns (l4lb, admin port, config)."""
    g, admin = _admin_global(**global_opts)
    cfg = h.config(*services, **g)
    lb = h.start_l4lb(cfg)
    h.eventually(lambda: not h.is_port_free(admin), timeout=3.0, msg="admin port listening")
    return lb, admin, cfg


def _stats(admin: int) -> dict:
    s = h.connect(admin, timeout=3.0)
    s.sendall(f"GET /stats HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n"
              .encode())
    data = h.recv_all(s, timeout=3.0)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head[:100]
    return json.loads(body)


def _svc(st: dict, name: str = "web") -> dict:
    for s in st["services"]:
        if s["name"] == name:
            return s
    h.fail(f"no service {name} in /stats: {st}")


def _be(svc: dict, addr: str) -> dict:
    for b in svc["backends"]:
        if b["address"] == addr:
            return b
    h.fail(f"no backend {addr} in service {svc['name']}: {[b['address'] for b in svc['backends']]}")


def _live(admin: int, name: str = "web") -> dict[str, int]:
    return {b["address"]: b["active_connections"] for b in _svc(_stats(admin), name)["backends"]}


def _totals(admin: int, name: str = "web") -> dict[str, int]:
    return {b["address"]: b["total_connections"] for b in _svc(_stats(admin), name)["backends"]}


def _wait_live(admin: int, want: dict[str, int], name: str = "web", timeout: float = 3.0) -> None:
    last = {}

    def ok():
        nonlocal last
        last = _live(admin, name)
        return all(last.get(a) == n for a, n in want.items())
    try:
        h.eventually(ok, timeout=timeout, msg=f"live counts {want}")
    except AssertionError:
        h.fail(f"live counts never became {want}; last /stats said {last}")


def _connect_from(addr, src: str, timeout: float = 3.0) -> socket.socket:
    """Connects from source address SRC (bound before connect)."""
    host, port = h.split_addr(addr)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.ctx().add_sock(s)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    return s


def _name_via(addr, src: str | None = None, timeout: float = 2.0) -> str:
    s = _connect_from(addr, src, timeout) if src else h.connect(addr, timeout=timeout)
    line = h.recv_line(s, timeout=timeout)
    s.close()
    return line.decode().rstrip("\n")


def _echo_ok(s: socket.socket, payload: bytes) -> None:
    h.send_all(s, payload, timeout=3.0)
    got = h.recv_exactly(s, len(payload), timeout=3.0)
    assert got == payload, f"echo mismatch: sent {payload[:40]!r}, got {got[:40]!r}"


def _echo_close(s: socket.socket) -> None:
    s.shutdown(socket.SHUT_WR)
    rest = h.recv_all(s, timeout=3.0)
    assert rest == b"", f"bytes after the echo: {rest[:40]!r}"
    s.close()


def _open_held(addr, admin: int, tag: bytes) -> tuple[socket.socket, str]:
    """Opens a client to an echo service, proves it works, and finds from /stats the
    backend it landed on (the one whose live count rose). Returns (socket, backend)."""
    before = _live(admin)
    s = h.connect(addr, timeout=3.0)
    _echo_ok(s, tag)
    after = _live(admin)
    rose = [a for a in after if after[a] > before.get(a, 0)]
    assert len(rose) == 1, f"cannot tell where the client went: before {before}, after {after}"
    return s, rose[0]


def _write_atomic(path: str, cfg) -> None:
    text = cfg if isinstance(cfg, str) else h.to_yaml(cfg)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _reload(lb: h.L4lb, cfg) -> None:
    """Rewrites lb's config file, sends SIGHUP and waits for msg="reload ok"."""
    _write_atomic(lb.config_path, cfg)
    off = lb.log_offset()
    lb.signal(signal.SIGHUP)
    line = lb.wait_for_log(RELOAD_RX, timeout=5.0, start=off)
    if '"reload ok"' not in line:
        time.sleep(0.2)
        text = lb.stderr_text().encode()[off:].decode(errors="replace")
        h.fail(f"reload not ok: {[l for l in text.splitlines() if 'reload' in l]}")


def _src(i: int) -> str:
    """Source address number i (0-based): 127.0.0.2, 127.0.0.3, ... (stays in 127/8)."""
    n = i + 2
    return f"127.0.{n // 256}.{n % 256}" if n >= 256 else f"127.0.0.{n}"


# ---------------------------------------------------------------------------- least connections


@h.timeout(30)
def test_least_connections_avoids_loaded_backend():
    names = ["a", "b", "c"]
    echos = [h.start_backend("echo", name=n) for n in names]
    listen = f"127.0.0.1:{h.free_port()}"
    lb, admin, _ = _start([h.service(listen, echos, algorithm="least_connections")])

    # 15 held clients: find out where each landed.
    held: dict[str, list[socket.socket]] = {e.addr: [] for e in echos}
    for i in range(15):
        s, addr = _open_held(listen, admin, f"held-{i}".encode())
        held[addr].append(s)
    spread = {a: len(v) for a, v in held.items()}
    assert sorted(spread.values()) == [5, 5, 5], \
        f"15 held clients under least_connections spread as {spread}, want 5/5/5"

    # Keep the 5 on one backend X, close the rest.
    x = echos[0].addr
    others = [e.addr for e in echos if e.addr != x]
    for a in others:
        for s in held[a]:
            _echo_close(s)
    _wait_live(admin, {x: 5, others[0]: 0, others[1]: 0})

    tot0 = _totals(admin)
    seq = []
    for i in range(10):
        before = _totals(admin)
        s = h.connect(listen, timeout=3.0)
        _echo_ok(s, f"short-{i}".encode())
        _echo_close(s)
        _wait_live(admin, {x: 5, others[0]: 0, others[1]: 0})
        after = _totals(admin)
        got = [a for a in after if after[a] > before[a]]
        seq.append(got[0] if len(got) == 1 else f"?{got}")
    tot1 = _totals(admin)
    delta = {a: tot1[a] - tot0[a] for a in tot1}
    label = {e.addr: e.name for e in echos}
    seq_names = [label.get(a, a) for a in seq]
    assert delta[x] == 0, \
        f"backend with 5 live connections got {delta[x]} of 10 new clients; sequence {seq_names}"
    assert delta[others[0]] + delta[others[1]] == 10, delta
    assert all(4 <= delta[a] <= 6 for a in others), \
        f"ties not rotated: the two idle backends got {[delta[a] for a in others]}; {seq_names}"
    # The 5 held ones were untouched.
    for i, s in enumerate(held[x]):
        _echo_ok(s, f"still-{i}".encode())
    return f"10 new clients: {seq_names}"


@h.timeout(30)
def test_weighted_least_connections_follows_live_over_weight():
    a = h.start_backend("echo", name="a")
    b = h.start_backend("echo", name="b")
    w = {a.addr: 3, b.addr: 1}
    label = {a.addr: "a", b.addr: "b"}
    listen = f"127.0.0.1:{h.free_port()}"
    lb, admin, _ = _start([h.service(listen, [{"address": a.addr, "weight": 3},
                                             {"address": b.addr, "weight": 1}],
                                    algorithm="weighted_least_connections")])
    held: dict[str, list[socket.socket]] = {a.addr: [], b.addr: []}
    log: list[str] = []
    ties = 0

    def expected(live: dict[str, int]) -> str | None:
        # live/weight compared exactly: la * wb vs lb * wa
        la, lb_ = live[a.addr] * w[b.addr], live[b.addr] * w[a.addr]
        if la < lb_:
            return a.addr
        if lb_ < la:
            return b.addr
        return None

    def one(i: int) -> None:
        nonlocal ties
        live = _live(admin)
        want = expected(live)
        s, got = _open_held(listen, admin, f"c{i}".encode())
        held[got].append(s)
        log.append(f"({live[a.addr]},{live[b.addr]})->{label[got]}")
        if want is None:
            ties += 1
        else:
            assert got == want, \
                (f"live a={live[a.addr]} (w3) b={live[b.addr]} (w1): picked {label[got]}, "
                 f"lowest live/weight is {label[want]}; history {log}")

    for i in range(8):
        one(i)
    assert (len(held[a.addr]), len(held[b.addr])) == (6, 2), \
        f"8 held clients with weights 3:1 ended as a={len(held[a.addr])} b={len(held[b.addr])}; {log}"
    # Free 3 on a: (3,2) -> a, a, a back to (6,2).
    for s in held[a.addr][:3]:
        _echo_close(s)
    del held[a.addr][:3]
    _wait_live(admin, {a.addr: 3, b.addr: 2})
    for i in range(8, 11):
        one(i)
    # Free both on b: (6,0) -> b, b.
    for s in held[b.addr]:
        _echo_close(s)
    held[b.addr].clear()
    _wait_live(admin, {a.addr: 6, b.addr: 0})
    for i in range(11, 13):
        one(i)
    assert (len(held[a.addr]), len(held[b.addr])) == (6, 2), log
    return " ".join(log)


# ---------------------------------------------------------------------------- hashing


@h.timeout(30)
def test_ip_hash_sticky_per_source_address():
    names = ["a", "b", "c"]
    backends = [h.start_backend("id", name=n) for n in names]
    lb = h.start_service(backends, algorithm="ip_hash")
    mapping: dict[str, str] = {}
    for rnd in range(3):
        for i in range(50):
            src = _src(i)
            got = _name_via(lb.listen, src=src)
            if rnd == 0:
                mapping[src] = got
            else:
                assert got == mapping[src], \
                    f"client {src}: round 1 went to {mapping[src]}, round {rnd + 1} to {got}"
    used = {n: list(mapping.values()).count(n) for n in names}
    assert sum(1 for n in used.values() if n) > 1, f"every client on one backend: {used}"
    return f"50 clients x3, per backend {used}"


def _map_clients(listen: str, n: int) -> dict[str, str]:
    return {_src(i): _name_via(listen, src=_src(i)) for i in range(n)}


@h.timeout(40)
def test_consistent_hash_remove_readd_and_order_independent():
    names = ["a", "b", "c", "d"]
    backends = [h.start_backend("id", name=n) for n in names]
    listen = f"127.0.0.1:{h.free_port()}"
    svc = h.service(listen, backends, algorithm="consistent_hash")
    lb, admin, cfg = _start([svc])
    n = 60
    orig = _map_clients(listen, n)
    again = _map_clients(listen, n)
    assert orig == again, f"mapping not stable: {[(k, orig[k], again[k]) for k in orig if orig[k] != again[k]]}"
    share = {x: list(orig.values()).count(x) for x in names}
    assert all(share.values()), f"a backend has no client of {n}: {share}"

    # Remove the backend with the most clients.
    gone = max(names, key=lambda x: share[x])
    kept = [b for b in backends if b.name != gone]
    cfg2 = h.config(h.service(listen, kept, algorithm="consistent_hash"), **cfg["global"])
    _reload(lb, cfg2)
    after = _map_clients(listen, n)
    wrong = []
    for src in orig:
        if orig[src] == gone:
            if after[src] == gone:
                wrong.append(f"{src}: still on removed {gone}")
        elif after[src] != orig[src]:
            wrong.append(f"{src}: {orig[src]} -> {after[src]}")
    assert not wrong, (f"removing {gone} ({share[gone]} of {n} clients) moved other clients: "
                       f"{wrong[:10]} ({len(wrong)} in all)")

    # Re-add it: the original mapping comes back.
    _reload(lb, cfg)
    back = _map_clients(listen, n)
    diff = [f"{s}: {orig[s]} -> {back[s]}" for s in orig if back[s] != orig[s]]
    assert not diff, f"after re-adding {gone}, {len(diff)} clients differ from the start: {diff[:10]}"

    # A second instance, backends listed in reverse order, other listen address: same choice.
    listen2 = f"127.0.0.1:{h.free_port()}"
    lb2 = h.start_l4lb(h.config(h.service(listen2, list(reversed(backends)),
                                          algorithm="consistent_hash")))
    other = _map_clients(listen2, n)
    diff = [f"{s}: {orig[s]} vs {other[s]}" for s in orig if other[s] != orig[s]]
    assert not diff, (f"two instances (backends in reverse order) disagree for {len(diff)} of {n} "
                      f"clients: {diff[:10]}")
    assert lb.alive() and lb2.alive()
    return f"shares {share}; removed {gone}"


@h.timeout(40)
def test_consistent_hash_removal_moves_about_one_nth():
    """For each of N=4 backends in turn: removing it moves between 0.5/N and 1.5/N of
    3000 clients (source addresses), and only clients of the removed backend."""
    names = ["a", "b", "c", "d"]
    backends = [h.start_backend("id", name=n) for n in names]
    listen = f"127.0.0.1:{h.free_port()}"
    lb, admin, cfg = _start([h.service(listen, backends, algorithm="consistent_hash")])
    n = 3000
    orig = _map_clients(listen, n)
    share = {x: list(orig.values()).count(x) for x in names}
    problems = []
    notes = []
    for gone in names:
        cfg2 = h.config(h.service(listen, [b for b in backends if b.name != gone],
                                  algorithm="consistent_hash"), **cfg["global"])
        _reload(lb, cfg2)
        line = [l for l in lb.log_lines() if '"reload ok"' in l][-1]
        after = _map_clients(listen, n)
        moved = [s for s in orig if after[s] != orig[s]]
        bad = [(s, orig[s], after[s]) for s in moved if orig[s] != gone]
        notes.append(f"-{gone}: {len(moved)} moved")
        if bad:
            problems.append(f"removing {gone} ({backends[names.index(gone)].addr}) also moved "
                            f"{len(bad)} clients of other backends: {bad[:5]}; l4lb logged "
                            f"table_moved={line.partition('table_moved=')[2].split(' ')[0]}")
        if not 0.5 / 4 * n <= len(moved) <= 1.5 / 4 * n:
            problems.append(f"removing {gone} moved {len(moved)} of {n} clients "
                            f"(want {n * 0.125:.0f}..{n * 0.375:.0f})")
        _reload(lb, cfg)
    backs = ", ".join(f"{b.name}={b.addr}" for b in backends)
    assert not problems, f"backends {backs}; shares {share}:\n  " + "\n  ".join(problems)
    return f"shares {share}; {'; '.join(notes)}"


# ---------------------------------------------------------------------------- random, smooth WRR


@h.timeout(40)
def test_random_spreads_300_over_3():
    names = ["a", "b", "c"]
    backends = [h.start_backend("id", name=n) for n in names]
    lb = h.start_service(backends, algorithm="random")
    seen = [_name_via(lb.listen) for _ in range(300)]
    counts = {n: seen.count(n) for n in names}
    assert sum(counts.values()) == 300, f"unexpected names: {set(seen) - set(names)}"
    assert all(60 <= c <= 140 for c in counts.values()), f"random spread {counts}"
    return f"counts {counts}"


@h.timeout(40)
def test_random_follows_weights():
    names = ["a", "b", "c"]
    backends = [h.start_backend("id", name=n) for n in names]
    weighted = [{"address": b.addr, "weight": w} for b, w in zip(backends, (4, 1, 1))]
    lb = h.start_service(weighted, algorithm="random")
    seen = [_name_via(lb.listen) for _ in range(300)]
    counts = {n: seen.count(n) for n in names}
    # expected 200 / 50 / 50
    assert 160 <= counts["a"] <= 240 and all(20 <= counts[n] <= 85 for n in "bc"), f"random spread {counts}"
    return f"counts {counts} for weights 4:1:1"


@h.timeout(30)
def test_weighted_round_robin_smooth_sequence():
    a = h.start_backend("id", name="a")
    b = h.start_backend("id", name="b")
    c = h.start_backend("id", name="c")
    lb = h.start_service([{"address": a.addr, "weight": 5}, {"address": b.addr, "weight": 1},
                          {"address": c.addr, "weight": 1}], algorithm="weighted_round_robin")
    seen = [_name_via(lb.listen) for _ in range(21)]
    want = list("aabacaa") * 3
    assert seen == want, f"weights 5:1:1 gave {''.join(seen)}, want {''.join(want)}"


# ---------------------------------------------------------------------------- backup


@h.timeout(30)
def test_backup_only_when_regulars_down():
    a = h.start_backend("id", name="a")
    b = h.start_backend("id", name="b")
    c = h.start_backend("id", name="backup")
    listen = f"127.0.0.1:{h.free_port()}"
    hc = {"type": "tcp", "interval": "200ms", "timeout": "200ms", "unhealthy_threshold": 1}
    lb, admin, _ = _start([h.service(listen, [a, b, {"address": c.addr, "backup": True}],
                                     algorithm="round_robin", health_check=hc)])

    def states():
        return {x["address"]: x["state"] for x in _svc(_stats(admin))["backends"]}

    h.eventually(lambda: all(s == "up" for s in states().values()), timeout=3.0,
                 msg="all backends up")
    seen = [_name_via(listen) for _ in range(10)]
    assert set(seen) == {"a", "b"}, f"regulars up: 10 clients went to {seen}"

    a.stop()
    b.stop()
    st = h.eventually(lambda: (lambda s: s if s[a.addr] == "down" and s[b.addr] == "down" else None)
                      (states()), timeout=3.0, msg="both regulars down")
    assert st[c.addr] == "up", st
    seen = [_name_via(listen) for _ in range(10)]
    assert seen == ["backup"] * 10, f"regulars down: 10 clients went to {seen}"

    a2 = h.start_backend("id", name="a", listen=a.addr)
    b2 = h.start_backend("id", name="b", listen=b.addr)
    h.eventually(lambda: (lambda s: s[a.addr] == "up" and s[b.addr] == "up")(states()),
                 timeout=5.0, msg="regulars up again")
    seen = [_name_via(listen) for _ in range(10)]
    assert set(seen) == {"a", "b"}, f"regulars back: 10 clients went to {seen}"
    tot = _totals(admin)
    assert tot[c.addr] == 10, f"backup served {tot[c.addr]} connections, want exactly 10"
    assert a2.proc.poll() is None and b2.proc.poll() is None


# ---------------------------------------------------------------------------- drain


@h.timeout(30)
def test_drain_by_reload_keeps_open_transfer():
    x = h.start_backend("echo", name="x")
    y = h.start_backend("echo", name="y")
    listen = f"127.0.0.1:{h.free_port()}"
    lb, admin, cfg = _start([h.service(listen, [x, y], algorithm="round_robin")])

    # A client on x (round robin: at most two tries).
    s = None
    for i in range(4):
        c, where = _open_held(listen, admin, b"hello")
        if where == x.addr:
            s = c
            break
        _echo_close(c)
    assert s is not None, "no client landed on x"

    # An echo transfer in progress on x across the reload.
    result: dict = {}
    go_on = threading.Event()

    def transfer():
        try:
            sent = bytearray()
            got = bytearray()
            for i in range(80):
                block = os.urandom(16 << 10)
                s.sendall(block)
                sent += block
                got += h.recv_exactly(s, len(block), timeout=5.0)
                if i == 10:
                    go_on.set()
                time.sleep(0.02)
            s.shutdown(socket.SHUT_WR)
            rest = h.recv_all(s, timeout=5.0)
            result.update(ok=bytes(got) == bytes(sent), n=len(got), rest=len(rest))
        except BaseException as e:  # noqa: BLE001
            result["error"] = repr(e)
        finally:
            go_on.set()

    t = threading.Thread(target=transfer, daemon=True)
    t.start()
    assert go_on.wait(5.0)
    assert t.is_alive(), f"transfer ended before the reload: {result}"

    cfg2 = h.config(h.service(listen, [{"address": x.addr, "drain": True}, y],
                              algorithm="round_robin"), **cfg["global"])
    _reload(lb, cfg2)
    bx = _be(_svc(_stats(admin)), x.addr)
    assert bx["state"] == "draining", f"x after reload with drain: true: {bx}"
    assert bx["active_connections"] == 1, f"x lost its open connection: {bx}"
    tot0 = _totals(admin)
    for i in range(10):
        c = h.connect(listen, timeout=3.0)
        _echo_ok(c, f"new-{i}".encode())
        _echo_close(c)
    still_running = t.is_alive()
    t.join(15)
    tot1 = _totals(admin)
    assert tot1[x.addr] == tot0[x.addr], f"draining x took {tot1[x.addr] - tot0[x.addr]} new clients"
    assert tot1[y.addr] - tot0[y.addr] == 10, (tot0, tot1)
    assert "error" not in result, f"transfer on the draining backend broke: {result}"
    assert result.get("ok") and result.get("n") == 80 * (16 << 10) and result.get("rest") == 0, result
    _wait_live(admin, {x.addr: 0, y.addr: 0})
    bx = _be(_svc(_stats(admin)), x.addr)
    assert bx["state"] == "draining", bx
    return f"transfer still running while 10 new clients went to y: {still_running}"


# ---------------------------------------------------------------------------- per-backend max_connections


@h.timeout(30)
def test_backend_max_connections_full_pool_refuses():
    e1 = h.start_backend("echo")
    e2 = h.start_backend("echo")
    listen = f"127.0.0.1:{h.free_port()}"
    lb, admin, _ = _start([h.service(listen, [{"address": e1.addr, "max_connections": 2},
                                              {"address": e2.addr, "max_connections": 2}],
                                     algorithm="round_robin")])
    held = []
    for i in range(4):
        s = h.connect(listen, timeout=3.0)
        _echo_ok(s, f"held-{i}".encode())
        held.append(s)
    _wait_live(admin, {e1.addr: 2, e2.addr: 2})

    fifth = h.connect(listen, timeout=3.0)
    t0 = time.monotonic()
    try:
        fifth.sendall(b"fifth")
    except OSError:
        pass
    how = h.wait_closed(fifth, timeout=1.0)
    dt = time.monotonic() - t0
    fifth.close()
    st = _svc(_stats(admin))
    assert st["refused_connections"] == 1, f"5th client not counted as refused: {st}"
    assert {b["address"]: b["active_connections"] for b in st["backends"]} == \
        {e1.addr: 2, e2.addr: 2}, st

    for i, s in enumerate(held):
        _echo_ok(s, f"again-{i}".encode())
    _echo_close(held.pop(0))

    def new_served():
        c = h.connect(listen, timeout=3.0)
        try:
            _echo_ok(c, b"sixth")
            return c
        except (AssertionError, OSError):
            c.close()
            return None
    sixth = h.eventually(new_served, timeout=3.0, interval=0.1,
                         msg="a new client served after one of the 4 left")
    _wait_live(admin, {e1.addr: 2, e2.addr: 2})
    for s in held + [sixth]:
        _echo_ok(s, b"end")
    return f"5th client: {how} after {dt * 1000:.0f} ms"


# ---------------------------------------------------------------------------- live counts


class _ResettingBackend:
    """A Python backend that sends a greeting, reads what the client sends, then resets."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        h.ctx().add_sock(self.sock)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.resets = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            h.ctx().add_sock(c)
            try:
                c.settimeout(5.0)
                c.sendall(b"greeting\n")
                c.recv(100)
            except OSError:
                pass
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            self.resets += 1


@h.timeout(40)
def test_live_counts_back_to_zero_after_every_ending():
    echo = h.start_backend("echo", name="echo")
    echo2 = h.start_backend("echo", name="echo2")
    rst = _ResettingBackend()
    dead1, dead2 = h.dead_addr(), h.dead_addr()
    p = {k: h.free_port() for k in ("orderly", "clireset", "bereset", "idle", "retry",
                                   "refused", "nobackend")}
    svcs = [
        h.service(p["orderly"], [echo], name="orderly"),
        h.service(p["clireset"], [echo], name="clireset"),
        h.service(p["bereset"], [rst.addr], name="bereset"),
        h.service(p["idle"], [echo], name="idle", idle_timeout="1s"),
        h.service(p["retry"], [dead1, echo2], name="retry", retries=1),
        h.service(p["refused"], [dead1, dead2], name="refused", retries=1),
        h.service(p["nobackend"], [{"address": echo.addr, "drain": True}], name="nobackend"),
    ]
    lb, admin, _ = _start(svcs)

    def live_of(name):
        s = _svc(_stats(admin), name)
        return s["active_connections"], {b["address"]: b["active_connections"] for b in s["backends"]}

    def wait_one_live(name):
        h.eventually(lambda: live_of(name)[0] == 1 and sum(live_of(name)[1].values()) == 1,
                     timeout=3.0, msg=f"{name}: one live connection counted")

    # 1. orderly close
    for i in range(3):
        s = h.connect(p["orderly"])
        _echo_ok(s, b"x" * 1000)
        _echo_close(s)

    # 2. client reset mid-stream
    for i in range(3):
        s = h.connect(p["clireset"])
        _echo_ok(s, b"y" * 1000)
        wait_one_live("clireset")
        h.reset(s)
        h.eventually(lambda: live_of("clireset") == (0, {echo.addr: 0}), timeout=3.0,
                     msg="clireset: counts back to 0 after the client's reset")

    # 3. backend resets mid-stream
    outcomes = []
    for i in range(3):
        s = h.connect(p["bereset"])
        assert h.recv_line(s) == b"greeting\n"
        wait_one_live("bereset")
        s.sendall(b"some bytes")
        outcomes.append(h.wait_closed(s, timeout=3.0))
        s.close()
    h.eventually(lambda: rst.resets == 3, timeout=3.0,
                 msg="the python backend resetting all 3 of its connections")

    # 4. idle timeout 1s: both sides closed (EOF) by l4lb.
    s = h.connect(p["idle"])
    _echo_ok(s, b"z")
    wait_one_live("idle")
    t0 = time.monotonic()
    how = h.wait_closed(s, timeout=4.0)
    idle_dt = time.monotonic() - t0
    s.close()
    assert how == "eof", f"idle close was a {how}, want an orderly close"
    assert 0.7 <= idle_dt <= 3.0, f"idle connection closed after {idle_dt:.2f}s with idle_timeout 1s"

    # 5. connect refused, retried on the next backend (enough clients to hit the dead one).
    for i in range(4):
        s = h.connect(p["retry"])
        _echo_ok(s, b"r" * 100)
        _echo_close(s)
    # ... and refused on every backend: the client is closed.
    for i in range(3):
        s = h.connect(p["refused"])
        h.wait_closed(s, timeout=3.0)
        s.close()

    # 6. no backend available (the only one drains): closed at once.
    for i in range(3):
        s = h.connect(p["nobackend"])
        h.wait_closed(s, timeout=1.0)
        s.close()

    last = {}

    def all_zero():
        nonlocal last
        st = _stats(admin)
        last = {s["name"]: (s["active_connections"],
                            {b["address"]: b["active_connections"] for b in s["backends"]})
                for s in st["services"]}
        return all(a == 0 and all(v == 0 for v in bs.values()) for a, bs in last.values())
    try:
        h.eventually(all_zero, timeout=5.0, msg="all live counts 0")
    except AssertionError:
        h.fail(f"live counts not all 0 after every connection ended: {last}")

    st = _stats(admin)
    r = _svc(st, "retry")
    assert _be(r, dead1)["failed_connections"] >= 1, f"dead backend never tried: {r}"
    assert r["refused_connections"] == 0 and _be(r, echo2.addr)["total_connections"] == 4, r
    rf = _svc(st, "refused")
    assert _be(rf, dead1)["failed_connections"] + _be(rf, dead2)["failed_connections"] == 6, rf
    nb = _svc(st, "nobackend")
    assert (nb["total_connections"], nb["refused_connections"]) == (3, 3), nb
    for name in ("orderly", "clireset", "bereset", "idle"):
        assert _svc(st, name)["total_connections"] == (1 if name == "idle" else 3), _svc(st, name)
    assert lb.alive()
    return f"backend reset seen by client as {outcomes}; idle close after {idle_dt:.2f}s"
