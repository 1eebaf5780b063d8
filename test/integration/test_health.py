"""Health: active TCP/HTTP checks with thresholds, passive failures, spreading."""

import os
import re
import select
import socket
import threading
import time

import harness as h


def _name_via(lb, timeout=2.0) -> str:
    s = h.connect(lb.listen, timeout=timeout)
    line = h.recv_line(s, timeout=timeout)
    s.close()
    return line.decode().rstrip("\n")


def _http_name_via(lb) -> str:
    status, body = h.http_get(lb.listen, "/", timeout=2.0)
    assert status == 200, f"status {status}"
    return body.decode().strip()


@h.timeout(40)
def test_killed_backend_removed_then_back_after_healthy_threshold():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    hc = {"type": "tcp", "interval": "500ms", "timeout": "300ms",
          "healthy_threshold": 2, "unhealthy_threshold": 2}
    # retries 0: a connection sent to a dead backend would fail the client.
    lb = h.start_service([a, b], retries=0, health_check=hc)
    names = {_name_via(lb) for _ in range(6)}
    assert names == {"alpha", "bravo"}, names

    port = b.port
    off = lb.log_offset()
    b.stop()
    t0 = time.monotonic()
    line = lb.wait_for_log(rf'msg="backend down".*backend=127\.0\.0\.1:{port}\b', timeout=0.5 * 2 + 1 + 0.5,
                           start=off)
    # The shape of INTERFACE.md's example line, reason spelled as there.
    assert re.search(r'level=warn msg="backend down" service=\S+ backend=127\.0\.0\.1:%d '
                     r'reason="connect: connection refused"$' % port, line), line
    took = time.monotonic() - t0
    assert took <= 0.5 * 2 + 1, f"down after {took:.2f}s"
    for i in range(30):
        assert _name_via(lb) == "alpha", f"connection {i} after the backend went down"

    off = lb.log_offset()
    h.start_backend("id", name="bravo", listen=f"127.0.0.1:{port}")
    t0 = time.monotonic()
    lb.wait_for_log(rf'msg="backend up".*backend=127\.0\.0\.1:{port}\b', timeout=0.5 * 2 + 1.5, start=off)
    took = time.monotonic() - t0
    assert took >= 0.4, f"up after {took:.2f}s: fewer than healthy_threshold=2 checks?"
    names = [_name_via(lb) for _ in range(10)]
    assert names.count("bravo") == 5, names


@h.timeout(40)
def test_http_500_gets_no_traffic_and_200_brings_it_back():
    hf = h.tmp_path("bravo.health")
    a = h.start_backend("http", name="alpha")
    b = h.start_backend("http", name="bravo", health_file=hf)
    hc = {"type": "http", "interval": "300ms", "timeout": "300ms", "path": "/health",
          "expect_status": "200-299", "healthy_threshold": 2, "unhealthy_threshold": 2}
    lb = h.start_service([a, b], retries=0, health_check=hc)
    assert {_http_name_via(lb) for _ in range(4)} == {"alpha", "bravo"}

    off = lb.log_offset()
    with open(hf, "w") as f:
        f.write("500")
    line = lb.wait_for_log(rf'msg="backend down".*backend={b.addr}', timeout=0.3 * 2 + 1.5, start=off)
    assert "status 500" in line, line
    names = [_http_name_via(lb) for _ in range(20)]
    assert names == ["alpha"] * 20, names

    off = lb.log_offset()
    with open(hf, "w") as f:
        f.write("200")
    lb.wait_for_log(rf'msg="backend up".*backend={b.addr}', timeout=0.3 * 2 + 1.5, start=off)
    names = [_http_name_via(lb) for _ in range(10)]
    assert names.count("bravo") == 5, names


@h.timeout(30)
def test_backend_that_accepts_and_never_answers_fails_by_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel completes handshakes; nobody ever answers
    h.ctx().add_sock(silent)
    addr = f"127.0.0.1:{silent.getsockname()[1]}"
    a = h.start_backend("http", name="alpha")
    hc = {"type": "http", "interval": "2s", "timeout": "400ms", "unhealthy_threshold": 1}
    t0 = time.monotonic()
    lb = h.start_service([a, addr], health_check=hc)
    line = lb.wait_for_log(rf'msg="backend down".*backend={addr}', timeout=3)
    took = time.monotonic() - t0
    assert "timeout after 400ms" in line, line
    assert took >= 0.35, f"down after {took:.2f}s, before the 400ms timeout"


@h.timeout(30)
def test_refused_real_connect_counts_as_a_failed_check():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    hc = {"type": "tcp", "interval": "60s", "timeout": "1s",
          "unhealthy_threshold": 1, "healthy_threshold": 1}
    lb = h.start_service([a, b], retries=1, health_check=hc)
    lb.wait_for_log(rf'msg="backend up".*backend={a.addr}', timeout=3)
    lb.wait_for_log(rf'msg="backend up".*backend={b.addr}', timeout=3)
    off = lb.log_offset()
    a.stop()
    # The next check is a minute away: only real connects can notice.
    for _ in range(4):
        assert _name_via(lb) == "bravo"  # a refused connect is retried on bravo
    line = lb.wait_for_log(rf'msg="backend down".*backend={a.addr}', timeout=1, start=off)
    assert "refused" in line, line


@h.timeout(30)
def test_tcp_check_never_completes_the_handshake():
    # A backend that never calls accept(): a completed handshake would sit in its queue.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    lst.setblocking(False)
    h.ctx().add_sock(lst)
    addr = f"127.0.0.1:{lst.getsockname()[1]}"
    hc = {"type": "tcp", "interval": "200ms", "timeout": "500ms"}
    lb = h.start_service([addr], health_check=hc)
    lb.wait_for_log(rf'msg="backend up".*backend={addr}', timeout=3)
    time.sleep(1.5)  # several more checks
    accepted = 0
    while True:
        try:
            c, _ = lst.accept()
            c.close()
            accepted += 1
        except BlockingIOError:
            break
    assert accepted == 0, f"{accepted} check connections completed the handshake"
    assert "backend down" not in lb.stderr_text()


@h.timeout(30)
def test_first_checks_at_once_then_spread_evenly_over_the_interval():
    # INTERFACE.md: "at start ... a check runs at once"; "Checks of one service are spread
    # evenly over the interval (not all at the same instant)".
    n, interval = 20, 1.0
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.setblocking(False)
        h.ctx().add_sock(s)
        socks.append(s)
    seen = {s.getsockname()[1]: [] for s in socks}
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            ready, _, _ = select.select(socks, [], [], 0.02)
            for s in ready:
                try:
                    c, _ = s.accept()
                except BlockingIOError:
                    continue
                seen[s.getsockname()[1]].append(time.monotonic())
                try:
                    c.settimeout(0.5)
                    c.recv(4096)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
                c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    hc = {"type": "http", "interval": "1s", "timeout": "500ms"}
    addrs = [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]
    lb = h.start_service(addrs, health_check=hc)
    h.eventually(lambda: all(len(v) >= 4 for v in seen.values()), timeout=8, msg="4 checks of every backend")
    stop.set()
    t.join(1)
    firsts = sorted(v[0] for v in seen.values())
    assert firsts[-1] - firsts[0] < 0.25, f"first checks {firsts[-1] - firsts[0]:.3f}s apart: not at once"
    assert firsts[-1] - lb.start_time < 1.0, f"last first check {firsts[-1] - lb.start_time:.2f}s after start"
    # From the third check on, each backend keeps its slot: one check per interval ...
    periods = [v[3] - v[2] for v in seen.values()]
    assert all(0.9 * interval <= p <= 1.1 * interval for p in periods), periods
    # ... and the slots of the service fill the interval evenly: each quarter holds ~n/4.
    t0 = firsts[0]
    phases = sorted(((v[2] - t0) / interval) % 1.0 for v in seen.values())
    quarters = [sum(1 for p in phases if q / 4 <= p < (q + 1) / 4) for q in range(4)]
    assert all(n / 8 <= c <= 3 * n / 8 for c in quarters), f"checks per quarter of the interval {quarters}"
    for line in lb.log_lines():
        assert "backend down" not in line, line
    return (f"first checks within {(firsts[-1] - firsts[0]) * 1000:.0f} ms; then per quarter of the "
            f"interval {quarters}; periods {min(periods):.3f}-{max(periods):.3f}s")
