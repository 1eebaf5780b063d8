"""Limits hold exactly with several workers: max_connections (backend, service, global) is
never exceeded even for an instant, live counts never go below 0, and a backend whose
service has no active checks is up whatever passive failures were in flight at a reload.

The max_connections tests measure at the backend: one l4lb-testd --mode hold process
(on one port or several) holds each connection HOLD_MS and then closes it first, counting
it as open from accept until just before its close. Its count at any instant is therefore
at most what l4lb holds open for those backends at that instant (l4lb counts a backend
connection from its connect until it closes the socket, and a client until it closes the
client's socket, which is after the backend's close), so its peak may not exceed a limit."""

from __future__ import annotations

import errno
import json
import random
import selectors
import signal
import socket
import threading
import time

import harness as h

HOLD_MS = 10       # short: under churn, slots free up (and are raced for) often
CLIENTS = 200      # at once, ROUNDS times
ROUNDS = 20
CHURN_S = 8.0
CHURN_THREADS = 4
CHURN_BURST = 30
LIMIT = 10


# ---------------------------------------------------------------------------- helpers

def _admin_port(g: dict) -> int:
    port = h.free_port()
    g["admin"] = {"listen": f"127.0.0.1:{port}"}
    return port


def _stats(admin: int, timeout: float = 3.0) -> dict:
    """GET /stats on a socket the context does not keep (polled thousands of times)."""
    s = h.connect(admin, timeout=timeout, track=False)
    try:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = h.recv_all(s, timeout=timeout)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), f"/stats: {data[:200]!r}"
    return json.loads(body)


def _service(stats: dict, name: str) -> dict:
    for svc in stats["services"]:
        if svc["name"] == name:
            return svc
    h.fail(f"no service {name!r} in /stats: {[s['name'] for s in stats['services']]}")


def _burst(addrs: list[str], n: int, timeout: float = 10.0) -> None:
    """Opens N connections at once (non-blocking, round robin over ADDRS), sends nothing,
    and closes each one as soon as l4lb closes it (EOF or reset). Fails if one is not
    closed within TIMEOUT or cannot connect."""
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for i in range(n):
            host, port = h.split_addr(addrs[i % len(addrs)])
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setblocking(False)
            err = s.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                h.fail(f"client {i}: connect to {addrs[i % len(addrs)]}: {errno.errorcode.get(err, err)}")
            sel.register(s, selectors.EVENT_READ, i)
        left = n
        deadline = time.monotonic() + timeout
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                h.fail(f"{left} of {n} clients still open after {timeout}s")
            for key, _ in sel.select(wait):
                s = key.fileobj
                try:
                    if s.recv(4096):
                        continue  # a byte from the backend side: keep waiting for the close
                except BlockingIOError:
                    continue
                except ConnectionRefusedError:
                    h.fail(f"client {key.data}: connection refused (l4lb not listening?)")
                except OSError:
                    pass  # reset: closed
                sel.unregister(s)
                s.close()
                left -= 1
    finally:
        for s in socks:
            s.close()
        sel.close()


def _limit_rounds(lb_addrs: list[str], backend: h.Backend, admin: int, services: list[str],
                  what: str) -> str:
    """ROUNDS bursts of CLIENTS at once through LB_ADDRS, then CHURN_S seconds of
    CHURN_THREADS threads each keeping CHURN_BURST clients coming (the count hovers at the
    limit: every close is a race between the workers for the free slot). The backend (one
    testd process, every port counted together) must never have held more than LIMIT at
    once. Then /stats must add up: every client either reached a backend or was refused."""
    backend.counts()  # the peak counts from here
    before = _stats(admin)
    peaks = []
    for r in range(ROUNDS):
        _burst(lb_addrs, CLIENTS)
        c = backend.counts()
        peaks.append(c["peak"])
        if c["peak"] > LIMIT:
            h.fail(f"{what}: burst {r + 1}: {c['peak']} connections open at once at the "
                   f"backend, max_connections is {LIMIT} (peaks so far {peaks})")
    n_clients = ROUNDS * CLIENTS
    errors: list[str] = []
    churned = [0] * CHURN_THREADS
    stop = time.monotonic() + CHURN_S

    def churn(k: int) -> None:
        try:
            while time.monotonic() < stop:
                _burst(lb_addrs, CHURN_BURST)
                churned[k] += CHURN_BURST
        except AssertionError as e:
            errors.append(str(e))

    ts = [threading.Thread(target=churn, args=(k,), daemon=True) for k in range(CHURN_THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(CHURN_S + 15)
    assert not errors, f"{what}: {errors[0]}"
    n_clients += sum(churned)
    churn_peak = backend.counts()["peak"]
    if churn_peak > LIMIT:
        h.fail(f"{what}: {churn_peak} connections open at once at the backend while "
               f"{sum(churned)} clients churned for {CHURN_S}s, max_connections is {LIMIT}")
    assert max(peaks + [churn_peak]) == LIMIT, \
        f"{what}: the limit was never reached (peaks {peaks}, {churn_peak}): no real load"

    accepted = backend.counts()["accepted"]

    def settled():
        st = _stats(admin)
        return all(_service(st, n)["active_connections"] == 0 for n in services) and st

    after = h.eventually(settled, timeout=5, msg="active_connections back to 0")
    total = refused = reached = 0
    for n in services:
        s0, s1 = _service(before, n), _service(after, n)
        total += s1["total_connections"] - s0["total_connections"]
        refused += s1["refused_connections"] - s0["refused_connections"]
        reached += sum(b["total_connections"] for b in s1["backends"]) - \
            sum(b["total_connections"] for b in s0["backends"])
    assert total == n_clients, f"{what}: total_connections rose by {total}, {n_clients} clients came"
    assert reached == accepted, \
        f"{what}: backends' total_connections rose by {reached}, the backend accepted {accepted}"
    assert refused + reached == n_clients, \
        (f"{what}: refused {refused} + reached a backend {reached} = {refused + reached}, "
         f"not the {n_clients} clients")
    return f"burst peaks {peaks}, churn peak {churn_peak}; {reached} served, {refused} refused"


# ---------------------------------------------------------------------------- max_connections

@h.timeout(120)
def test_backend_max_connections_exact_with_4_workers():
    backend = h.start_backend("hold", hold_ms=HOLD_MS, stats="127.0.0.1:0")
    g: dict = {"workers": 4}
    admin = _admin_port(g)
    listen = f"127.0.0.1:{h.free_port()}"
    lb = h.start_l4lb(h.config(h.service(listen, [{"address": backend.addr, "max_connections": LIMIT}],
                                         retries=0), **g))
    assert lb.thread_count() >= 4
    return _limit_rounds([listen], backend, admin, ["web"], "backend max_connections")


@h.timeout(120)
def test_service_max_connections_exact_with_4_workers():
    # One process on 3 ports: its count is the sum over the service's backends at one instant.
    backend = h.start_backend("hold", hold_ms=HOLD_MS, stats="127.0.0.1:0",
                              also_listen=["127.0.0.1:0", "127.0.0.1:0"])
    g: dict = {"workers": 4}
    admin = _admin_port(g)
    listen = f"127.0.0.1:{h.free_port()}"
    h.start_l4lb(h.config(h.service(listen, backend.addrs, retries=0, max_connections=LIMIT), **g))
    return _limit_rounds([listen], backend, admin, ["web"], "service max_connections")


@h.timeout(120)
def test_global_max_connections_exact_with_4_workers():
    # Two services, two backend ports each, all in one process (one count for all four).
    backend = h.start_backend("hold", hold_ms=HOLD_MS, stats="127.0.0.1:0",
                              also_listen=["127.0.0.1:0"] * 3)
    g: dict = {"workers": 4, "max_connections": LIMIT}
    admin = _admin_port(g)
    web, db = (f"127.0.0.1:{h.free_port()}" for _ in range(2))
    h.start_l4lb(h.config(h.service(web, backend.addrs[:2], retries=0),
                          h.service(db, backend.addrs[2:], name="db", retries=0), **g))
    return _limit_rounds([web, db], backend, admin, ["web", "db"], "global max_connections")


# ---------------------------------------------------------------------------- live counts

@h.timeout(60)
def test_service_active_connections_never_negative_or_huge_while_churning():
    echo = h.start_backend("echo")
    hold = h.start_backend("hold", hold_ms=20)
    g: dict = {"workers": 4}
    admin = _admin_port(g)
    listen = f"127.0.0.1:{h.free_port()}"
    h.start_l4lb(h.config(h.service(listen, [echo, hold], retries=0), **g))
    threads_n, bound = 16, 1000
    stop = threading.Event()
    errors: list[str] = []
    opened = [0] * threads_n

    def client(k: int) -> None:
        rnd = random.Random(k)
        while not stop.is_set():
            try:
                s = h.connect(listen, timeout=3, track=False)
            except OSError as e:
                errors.append(f"connect: {e!r}")
                continue
            opened[k] += 1
            try:
                how = rnd.randrange(4)
                if how == 0:  # an exchange, then an orderly close
                    s.sendall(b"ping")
                    s.recv(16)
                elif how == 1:  # a reset right away (maybe before the backend connect ends)
                    h.set_linger_reset(s)
                elif how == 2:  # a half-close: l4lb passes it on, the far side finishes
                    s.sendall(b"x" * rnd.randrange(1, 70000))
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                # how == 3: close at once, before anything happens
            except OSError:
                pass  # the hold backend closes while we talk: fine
            finally:
                s.close()

    values: list[int] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                values.append(_service(_stats(admin), "web")["active_connections"])
            except (OSError, AssertionError, ValueError) as e:
                errors.append(f"/stats: {e!r}")

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads_n)]
    ts.append(threading.Thread(target=poll, daemon=True))
    for t in ts:
        t.start()
    time.sleep(3)
    stop.set()
    for t in ts:
        t.join(10)
    bad = [v for v in values if not isinstance(v, int) or v < 0 or v > bound]
    assert not bad, (f"{len(bad)} of {len(values)} /stats active_connections outside 0..{bound} "
                     f"while at most {threads_n} clients were open: {sorted(set(bad))[:5]}")
    assert len(values) >= 20, f"only {len(values)} /stats answers in 3 s"
    assert not errors, f"{len(errors)} errors: {errors[:3]}"
    h.eventually(lambda: _service(_stats(admin), "web")["active_connections"] == 0, timeout=5,
                 msg="service active_connections back to 0 once every client is closed")
    st = _service(_stats(admin), "web")
    assert all(b["active_connections"] == 0 for b in st["backends"]), st["backends"]
    return f"{sum(opened)} connections, {len(values)} samples of active_connections, max {max(values)}"


# ---------------------------------------------------------------------------- health none

class _Switchable:
    """A backend port this test opens and closes at will: open, it accepts every
    connection and closes it once the peer has (checks pass, and l4lb closes first, so no
    TIME_WAIT is left on this port for a later SYN to run into); closed, real connects are
    refused. One thread and a selector, no thread per connection: ~1,000 connections a
    second never overflow its accept queue, even beside a sanitizer build."""

    def __init__(self):
        self.port = h.free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(1024)
        s.setblocking(False)
        self._sock = s

        def serve():
            sel = selectors.DefaultSelector()
            sel.register(s, selectors.EVENT_READ)
            while self._sock is s:
                for key, _ in sel.select(0.02):
                    if key.fileobj is s:
                        try:
                            c = s.accept()[0]
                        except OSError:
                            continue
                        c.setblocking(False)
                        sel.register(c, selectors.EVENT_READ)
                        continue
                    try:
                        data = key.fileobj.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
            for key in list(sel.get_map().values()):
                if key.fileobj is not s:
                    h.reset(key.fileobj)
            sel.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        s, self._sock = self._sock, None
        if self._thread:
            self._thread.join(2)
        if s:
            s.close()


@h.timeout(120)
def test_connect_failure_just_before_reload_to_checks_none_never_leaves_backend_down():
    # Every backend port is served by this process (no thread per connection: a load of
    # ~1,000 connections a second does not overflow its accept queue, even beside a
    # sanitizer build); two stay open throughout, three are closed before each reload.
    alive = [_Switchable() for _ in range(2)]
    flaky = [_Switchable() for _ in range(3)]
    g: dict = {"workers": 4}
    admin = _admin_port(g)
    listen = f"127.0.0.1:{h.free_port()}"
    addrs = [alive[0].addr, flaky[0].addr, flaky[1].addr, alive[1].addr, flaky[2].addr]

    def cfg(check: str) -> dict:
        # tcp: a high fall threshold keeps a closed port up, so real connects to it fail
        # (passive failures) at a high rate until the reload. none: thresholds play no part
        # (a backend is always up), so 1 is as good as any: a stale failure would show.
        hc = {"type": check, "interval": "60s", "timeout": "1s", "healthy_threshold": 1,
              "unhealthy_threshold": 100 if check == "tcp" else 1}
        return h.config(h.service(listen, addrs, retries=4, health_check=hc), **g)

    for f in alive + flaky:
        f.open()
    lb = h.start_l4lb(cfg("tcp"))
    stop = threading.Event()
    errors: list[str] = []
    clients = [0]

    def load() -> None:  # about 1,000 clients a second
        while not stop.is_set():
            try:
                h.connect(listen, timeout=2, track=False).close()  # l4lb connects at accept
                clients[0] += 1
            except ConnectionResetError:
                pass  # its backend was one this test closed (and reset) a moment ago: fine
            except OSError as e:
                errors.append(repr(e))
            time.sleep(0.001)

    def not_up() -> dict:
        st = _service(_stats(admin), "web")["backends"]
        return {b["address"]: b["state"] for b in st if b["state"] != "up"}

    def reload(check: str) -> None:
        with open(lb.config_path, "w") as f:
            f.write(h.to_yaml(cfg(check)))
        off = lb.log_offset()
        lb.signal(signal.SIGHUP)
        line = lb.wait_for_log(r'msg="reload (ok|failed)"', timeout=5, start=off)
        assert "reload ok" in line, line

    rnd = random.Random(7)
    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for r in range(20):
            if r:
                for f in flaky:
                    f.open()
                # Connects refused while checks were off are all over before checks come on
                # (this test is about the other direction).
                time.sleep(0.2)
                reload("tcp")  # checked at once (checks were off): all up
            h.eventually(lambda: not not_up(), timeout=3, msg=f"round {r + 1}: all up under tcp checks")
            for f in flaky:
                f.close()  # from now on real connects to them fail: failures on their way
            time.sleep(rnd.choice([0, 0.001, 0.003, 0.01, 0.02]))
            reload("none")
            t0 = time.monotonic()
            while down := not_up():
                if time.monotonic() - t0 > 1.0:
                    h.fail(f"round {r + 1}: 1 s after the reload to health_check none, "
                           f"backends not up: {down}")
                time.sleep(0.02)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.3:
                down = not_up()
                assert not down, f"round {r + 1}: with health_check none, backends not up: {down}"
                time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for f in alive + flaky:
            f.close()
    assert not errors, f"{len(errors)} clients could not connect: {errors[:3]}"
    return f"20 rounds, {clients[0]} clients"
