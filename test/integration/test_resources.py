"""Resources come back: live counts and file descriptors after many short connections."""

import json
import socket
import time

import harness as h


def test_live_count_and_fds_back_to_baseline():
    echo = h.start_backend("echo")
    admin_port = h.free_port()
    lb = h.start_service([echo], global_opts={"admin": {"listen": f"127.0.0.1:{admin_port}"}})
    time.sleep(0.3)
    baseline = lb.fd_count()
    baseline_fds = lb.fds()

    kinds = {"reset-at-once": 0, "reset-after-echo": 0, "orderly": 0, "close-unread": 0}
    for i in range(200):
        s = h.connect(lb.listen, timeout=3.0, track=False)
        try:
            if i % 4 == 0:
                kinds["reset-at-once"] += 1
                h.reset(s)
                continue
            msg = f"message {i}\n".encode()
            s.sendall(msg)
            got = h.recv_exactly(s, len(msg), timeout=3.0)
            assert got == msg, f"connection {i}: echo {got!r}"
            if i % 4 == 1:
                kinds["reset-after-echo"] += 1
                h.reset(s)
            elif i % 4 == 2:
                kinds["orderly"] += 1
                s.shutdown(socket.SHUT_WR)
                assert h.recv_all(s, timeout=3.0) == b""
                s.close()
            else:
                kinds["close-unread"] += 1
                s.sendall(b"unanswered")
                s.close()
        finally:
            s.close()

    def settled():
        return lb.fd_count() == baseline

    try:
        h.eventually(settled, timeout=5.0, interval=0.1, msg="fd count back to baseline")
    except AssertionError:
        now = lb.fds()
        extra = {fd: t for fd, t in now.items() if baseline_fds.get(fd) != t}
        h.fail(f"fd count {len(now)} != baseline {baseline} after 200 connections; "
               f"new fds: {dict(list(extra.items())[:10])}")

    status, body = h.http_get(admin_port, "/stats")
    assert status == 200, f"/stats answered {status}"
    stats = json.loads(body)
    svc = next(s for s in stats["services"] if s["name"] == "web")
    assert svc["active_connections"] == 0, f"service active_connections {svc['active_connections']}"
    for b in svc["backends"]:
        assert b["active_connections"] == 0, f"backend {b['address']} active_connections {b['active_connections']}"
    assert svc["total_connections"] >= 150, f"total_connections {svc['total_connections']}"
    return f"fds {baseline} -> {lb.fd_count()}; {kinds}"
