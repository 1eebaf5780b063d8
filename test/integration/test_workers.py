"""global.workers > 1: one event loop per thread, SO_REUSEPORT listeners, shared state."""

import json
import socket
import threading
import time

import harness as h


def _stats(admin_port):
    status, body = h.http_get(admin_port, "/stats")
    assert status == 200, status
    return json.loads(body)


def _echo_once(addr, payload: bytes) -> bool:
    s = h.connect(addr, timeout=3, track=False)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return h.recv_all(s, timeout=5) == payload
    finally:
        s.close()


@h.timeout(60)
def test_two_workers_serve_count_and_drain():
    backends = [h.start_backend("echo") for _ in range(3)]
    admin = h.free_port()
    lb = h.start_service(backends, algorithm="least_connections",
                         global_opts={"workers": 2, "admin": {"listen": f"127.0.0.1:{admin}"}})
    assert lb.thread_count() >= 2, f"{lb.thread_count()} threads for workers: 2"
    assert "workers=2" in lb.stderr_text(), "ready line does not say workers=2"

    # Many concurrent clients: both loops take connections (SO_REUSEPORT spreads them).
    results = []
    lock = threading.Lock()

    def client(i):
        ok = _echo_once(lb.listen, f"client {i} ".encode() * 100)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 200 and all(results), f"{results.count(False)} of {len(results)} echoes wrong"

    def settled():
        st = _stats(admin)["services"][0]
        return st["active_connections"] == 0 and all(b["active_connections"] == 0 for b in st["backends"])

    h.eventually(settled, timeout=5, msg="live counts back to 0")
    svc = _stats(admin)["services"][0]
    assert svc["total_connections"] == 200, svc["total_connections"]
    assert sum(b["total_connections"] for b in svc["backends"]) == 200
    per = sum(len(f"client {i} ".encode() * 100) for i in range(200))
    assert svc["bytes_in"] == per and svc["bytes_out"] == per, (svc["bytes_in"], svc["bytes_out"], per)

    # Drain: transfers in flight on both workers finish, then exit 0.
    digest = h.start_backend("digest")
    lb2 = h.start_service([digest], global_opts={"workers": 2, "drain_timeout": "10s"})
    payload = bytes(range(256)) * 4096  # 1 MiB
    socks = []
    for _ in range(20):
        s = h.connect(lb2.listen, timeout=3)
        s.sendall(payload[:65536])
        socks.append(s)
    lb2.signal(15)
    time.sleep(0.3)
    for s in socks:
        s.sendall(payload[65536:])
        s.shutdown(socket.SHUT_WR)
    for s in socks:
        line = h.recv_line(s, timeout=10).decode().split()
        assert line == [str(len(payload)), h.sha256(payload)], line
    assert lb2.wait(10) == 0
    return f"threads {lb.thread_count()}; 200 echoes, counts exact; 20 transfers drained"


@h.timeout(60)
def test_two_workers_reload_under_load_refuses_nobody():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb = h.start_service([a], global_opts={"workers": 2})
    stop = threading.Event()
    failures, seen = [], {}

    def load():
        while not stop.is_set():
            try:
                s = h.connect(lb.listen, timeout=2, track=False)
                name = h.recv_line(s, timeout=2).decode().strip()
                s.close()
                seen[name] = seen.get(name, 0) + 1
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))

    t = threading.Thread(target=load)
    t.start()
    try:
        for backend in (b, a, b):
            time.sleep(0.7)
            cfg = h.config(h.service(lb.listen, [backend]), workers=2)
            with open(lb.config_path, "w") as f:
                f.write(h.to_yaml(cfg))
            off = lb.log_offset()
            lb.signal(1)
            lb.wait_for_log(r'msg="reload ok"', timeout=3, start=off)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(10)
    assert not failures, f"{len(failures)} failures: {failures[:3]}"
    assert seen.get("alpha", 0) > 0 and seen.get("bravo", 0) > 0, seen
    return f"{sum(seen.values())} connections across 3 reloads, 0 failures: {seen}"
