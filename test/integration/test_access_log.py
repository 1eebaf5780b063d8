"""Access log: one record per client connection, written when it ends, with the fields and
`end` values of INTERFACE.md; logfmt and JSON; per-service switch; SIGUSR1 reopen; a log
that cannot be written never slows clients (records dropped and counted)."""
import json
import os
import re
import signal
import socket
import stat
import threading
import time

import harness as h


FIELDS = ["ts", "service", "client", "listen", "sni", "backend", "connect_ms", "duration_ms",
          "bytes_in", "bytes_out", "retries", "end"]


def _parse_logfmt(line: str) -> dict:
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        out[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return out


def _records(path: str, fmt: str = "logfmt") -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l]
    return [json.loads(l) if fmt == "json" else _parse_logfmt(l) for l in lines]


def _wait_records(path: str, n: int, fmt: str = "logfmt", timeout: float = 5.0) -> list[dict]:
    h.eventually(lambda: len(_records(path, fmt)) >= n, timeout=timeout,
                 msg=f"{n} access-log records in {path}")
    return _records(path, fmt)


def _start(services: list[dict], fmt: str = "logfmt", path: str | None = None, **g) -> tuple[h.L4lb, str]:
    path = path or h.tmp_path("access.log")
    lb = h.start_l4lb(h.config(*services, access_log={"path": path, "format": fmt}, **g))
    return lb, path


def _reset_server() -> tuple[str, threading.Thread]:
    """A backend that accepts, reads a little, and resets each connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    h.ctx().add_sock(srv)

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                c.settimeout(2)
                c.recv(100)
            except OSError:
                pass
            h.set_linger_reset(c)
            c.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"127.0.0.1:{srv.getsockname()[1]}", t


def test_access_log_fields_and_byte_counts_for_a_known_transfer():
    b = h.start_backend("echo")
    port = h.free_port()
    lb, path = _start([h.service(port, [b])])
    s = h.connect(port)
    payload = os.urandom(100_000)
    h.send_all(s, payload)
    s.shutdown(socket.SHUT_WR)  # the client's FIN first
    got = h.recv_all(s, timeout=5)
    s.close()
    assert got == payload
    (r,) = _wait_records(path, 1)
    assert list(r) == FIELDS, list(r)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]), r["ts"]
    assert r["service"] == "web" and r["listen"] == f"127.0.0.1:{port}" and r["sni"] == ""
    assert r["backend"] == b.addr and r["client"].startswith("127.0.0.1:")
    assert int(r["bytes_in"]) == 100_000 and int(r["bytes_out"]) == 100_000, r
    assert r["retries"] == "0" and r["end"] == "client_closed", r
    assert 0 <= float(r["connect_ms"]) < 1000 and float(r["duration_ms"]) >= float(r["connect_ms"])


def test_access_log_json_has_the_same_keys_with_numbers():
    b = h.start_backend("hold", hold_ms=50)
    port = h.free_port()
    lb, path = _start([h.service(port, [b])], fmt="json")
    s = h.connect(port)
    assert h.wait_closed(s, timeout=3) == "eof"
    s.close()
    (r,) = _wait_records(path, 1, "json")
    assert list(r) == FIELDS, list(r)
    for k in ("connect_ms", "duration_ms", "bytes_in", "bytes_out", "retries"):
        assert isinstance(r[k], (int, float)) and not isinstance(r[k], bool), (k, r[k])
    for k in ("ts", "service", "client", "listen", "sni", "backend", "end"):
        assert isinstance(r[k], str), (k, r[k])
    assert r["end"] == "backend_closed" and r["sni"] == "", r


def test_access_log_every_end_value_is_reached():
    echo = h.start_backend("echo")
    hold = h.start_backend("hold", hold_ms=50)
    reset_addr, _ = _reset_server()
    dead = h.dead_addr()
    p = {k: h.free_port() for k in ("echo", "hold", "reset", "dead", "none", "idle", "sni")}
    admin = h.tmp_path("admin.sock")
    services = [
        h.service(p["echo"], [echo], name="echo"),
        h.service(p["hold"], [hold], name="hold"),
        h.service(p["reset"], [reset_addr], name="reset"),
        h.service(p["dead"], [dead], name="dead", retries=0, connect_timeout="500ms"),
        h.service(p["none"], [{"address": echo.addr, "drain": True}], name="none"),
        h.service(p["idle"], [echo], name="idle", idle_timeout="300ms"),
        h.service(p["sni"], [echo], name="tls", sni=["a.example"]),
    ]
    lb, path = _start(services, admin={"listen": f"unix:{admin}"}, drain_timeout="300ms")
    ends = {}

    def last_end(service: str, n_before: int) -> dict:
        h.eventually(lambda: len([r for r in _records(path) if r["service"] == service]) > n_before,
                     timeout=5, msg=f"a record for {service}")
        return [r for r in _records(path) if r["service"] == service][-1]

    # client_closed
    s = h.connect(p["echo"]); s.sendall(b"x"); s.shutdown(socket.SHUT_WR); h.recv_all(s); s.close()
    ends["client_closed"] = last_end("echo", 0)
    # backend_closed
    s = h.connect(p["hold"]); h.wait_closed(s, 3); s.close()
    ends["backend_closed"] = last_end("hold", 0)
    # client_reset
    s = h.connect(p["echo"]); s.sendall(b"x"); h.recv_exactly(s, 1); h.reset(s)
    ends["client_reset"] = last_end("echo", 1)
    # backend_reset
    s = h.connect(p["reset"]); s.sendall(b"x")
    try:
        h.wait_closed(s, 3)
    except Exception:
        pass
    s.close()
    ends["backend_reset"] = last_end("reset", 0)
    # connect_failed
    s = h.connect(p["dead"]); h.wait_closed(s, 3); s.close()
    ends["connect_failed"] = last_end("dead", 0)
    # no_backend
    s = h.connect(p["none"]); h.wait_closed(s, 3); s.close()
    ends["no_backend"] = last_end("none", 0)
    # idle_timeout
    s = h.connect(p["idle"]); h.wait_closed(s, 3); s.close()
    ends["idle_timeout"] = last_end("idle", 0)
    # unrouted (an sni-only address, a client that is not TLS)
    s = h.connect(p["sni"]); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); h.wait_closed(s, 3); s.close()
    h.eventually(lambda: any(r["end"] == "unrouted" for r in _records(path)), timeout=5)
    ends["unrouted"] = [r for r in _records(path) if r["end"] == "unrouted"][-1]
    # admin_closed
    s = h.connect(p["echo"]); s.sendall(b"x"); h.recv_exactly(s, 1)
    st, body = _admin_delete(admin, "echo", echo.addr)
    assert st == b"200", body
    h.wait_closed(s, 3); s.close()
    ends["admin_closed"] = last_end("echo", 2)
    # drain_timeout: SIGTERM with a connection held past drain_timeout
    s = h.connect(p["echo"]); s.sendall(b"x"); h.recv_exactly(s, 1)
    lb.signal(signal.SIGTERM)
    assert lb.wait(5) == 0
    ends["drain_timeout"] = [r for r in _records(path) if r["service"] == "echo"][-1]
    s.close()

    for end, r in ends.items():
        assert r["end"] == end, (end, r)
    assert ends["unrouted"]["reason"] == "not_tls" and ends["unrouted"]["service"] == ""
    assert "reason" not in ends["client_closed"]
    assert ends["connect_failed"]["backend"] == dead and ends["no_backend"]["backend"] == ""


def _admin_delete(sock_path: str, service: str, backend: str):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(f"DELETE /services/{service}/backends/{backend}/connections HTTP/1.1\r\n"
              f"Host: x\r\nConnection: close\r\n\r\n".encode())
    data = h.recv_all(s, timeout=5)
    s.close()
    return data.split(b" ", 2)[1], data


def test_access_log_second_signal_records_stopped():
    b = h.start_backend("echo")
    port = h.free_port()
    lb, path = _start([h.service(port, [b])], drain_timeout="30s")
    s = h.connect(port); s.sendall(b"x"); h.recv_exactly(s, 1)
    lb.signal(signal.SIGTERM)
    lb.wait_for_log(r'msg="drain start"')
    lb.signal(signal.SIGTERM)
    assert lb.wait(5) == 0
    (r,) = _records(path)
    assert r["end"] == "stopped", r
    s.close()


def test_access_log_off_for_a_service_with_access_log_false():
    b = h.start_backend("hold", hold_ms=10)
    p1, p2 = h.free_port(), h.free_port()
    lb, path = _start([h.service(p1, [b], name="logged"),
                       h.service(p2, [b], name="quiet", access_log=False)])
    for port in (p2, p1, p2):
        s = h.connect(port); h.wait_closed(s, 3); s.close()
    recs = _wait_records(path, 1)
    time.sleep(1.2)
    assert [r["service"] for r in _records(path)] == ["logged"]


def test_access_log_reopen_after_rename_loses_and_duplicates_nothing():
    b = h.start_backend("hold", hold_ms=1)
    port = h.free_port()
    lb, path = _start([h.service(port, [b])])
    total = 0
    for round_ in range(3):
        for _ in range(50):
            s = h.connect(port); h.wait_closed(s, 3); s.close()
            total += 1
        h.eventually(lambda: sum(len(_records(p)) for p in [path] + [f"{path}.{i}" for i in range(3)]) == total,
                     timeout=5, msg=f"{total} records")
        os.rename(path, f"{path}.{round_}")
        lb.signal(signal.SIGUSR1)
        h.eventually(lambda: os.path.exists(path), timeout=3, msg="reopened")
    files = [path] + [f"{path}.{i}" for i in range(3)]
    clients = [r["client"] for p in files for r in _records(p)]
    assert len(clients) == total and len(set(clients)) == total, (len(clients), len(set(clients)))
    assert all(len(_records(f"{path}.{i}")) == 50 for i in range(3))


@h.timeout(120)
def test_access_log_20000_short_connections_give_20000_records():
    b = h.start_backend("hold", hold_ms=0)
    port = h.free_port()
    lb, path = _start([h.service(port, [b])])
    n = 20_000
    for _ in range(n):
        # One after another, each to its end (the backend closes first): closing at once
        # would open them faster than any proxy and its backend close them, and run the
        # process out of fds (clients then shed at accept, with no record).
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.recv(16)
        s.close()
    try:
        h.eventually(lambda: len(_records(path)) >= n, timeout=30, msg=f"{n} records")
    finally:
        got = len(_records(path))
    assert got == n, f"{got} records for {n} connections"
    return f"{n} connections, {got} records"


def test_access_log_to_a_fifo_nobody_reads_never_slows_clients():
    b = h.start_backend("hold", hold_ms=0)
    port, admin = h.free_port(), h.free_port()
    fifo = h.tmp_path("access.fifo")
    os.mkfifo(fifo)
    # Opened for writing needs a reader once: hold one that never reads.
    rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        lb, _ = _start([h.service(port, [b])], path=fifo, admin={"listen": f"127.0.0.1:{admin}"})
        t0 = time.monotonic()
        worst = 0.0
        for _ in range(5000):
            a = time.monotonic()
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.close()
            worst = max(worst, time.monotonic() - a)
        elapsed = time.monotonic() - t0
        assert worst < 0.5, worst

        def dropped():
            st, body = h.http_get(admin, "/metrics")
            m = re.search(rb"^l4lb_access_log_dropped_total (\d+)", body, re.M)
            return int(m.group(1)) if m else 0
        h.eventually(lambda: dropped() > 0, timeout=5, msg="dropped records counted")
        assert lb.alive() and elapsed < 30, elapsed
    finally:
        os.close(rd)


def test_access_log_rejected_records_carry_the_reason():
    b = h.start_backend("echo")
    port = h.free_port()
    lb, path = _start([h.service(port, [b], deny=["127.0.0.0/8"])])
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        h.wait_closed(s, 3)
        s.close()
    except OSError:
        pass  # reset so soon that connect() saw it
    (r,) = _wait_records(path, 1)
    assert r["end"] == "rejected" and r["reason"] == "denied" and r["backend"] == "", r
    assert list(r) == FIELDS + ["reason"], list(r)
