"""Graceful stop on SIGTERM and the forced stop on a second SIGTERM."""

import hashlib
import os
import signal
import socket
import threading
import time

import harness as h

MiB = 1 << 20


@h.timeout(60)
def test_sigterm_lets_inflight_transfer_finish():
    digest = h.start_backend("digest")
    lb = h.start_service([digest], global_opts={"drain_timeout": "30s"})
    total, chunk = 64 * MiB, 256 * 1024
    pattern = os.urandom(4 * MiB)
    state = {"sent": 0, "error": None, "done": False}
    sent_hash = hashlib.sha256()
    s = h.connect(lb.listen, timeout=30.0)

    def sender():
        try:
            while state["sent"] < total:
                off = state["sent"] % len(pattern)
                block = pattern[off:off + chunk]
                s.sendall(block)
                sent_hash.update(block)
                state["sent"] += len(block)
                time.sleep(0.012)  # ~20 MiB/s: the transfer takes ~3 s
            s.shutdown(socket.SHUT_WR)
            state["done"] = True
        except OSError as e:
            state["error"] = e

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    h.eventually(lambda: state["sent"] >= 12 * MiB or state["error"], timeout=20.0,
                 msg="12 MiB sent")
    assert state["error"] is None, f"send failed before SIGTERM: {state['error']!r}"
    at_term = state["sent"]
    lb.signal(signal.SIGTERM)
    assert at_term < total, "the transfer finished before SIGTERM; nothing was tested"

    # New connections are refused shortly after.
    def refused():
        try:
            c = socket.create_connection(("127.0.0.1", lb.port), timeout=1.0)
        except ConnectionRefusedError:
            return True
        c.close()
        return False

    h.eventually(refused, timeout=1.0, interval=0.05, msg="new connections refused after SIGTERM")
    assert not state["done"], "transfer finished before listeners closed; nothing was tested"

    t.join(30)
    assert state["error"] is None, f"send failed after SIGTERM at {state['sent']} bytes: {state['error']!r}"
    assert state["done"], f"sender stuck at {state['sent']} bytes"
    answer = h.recv_all(s, timeout=15.0)
    expected = f"{total} {sent_hash.hexdigest()}\n".encode()
    assert answer == expected, f"digest after drain: expected {expected!r}, got {answer!r}"
    rc = lb.wait(10)
    assert rc == 0, f"l4lb exited with {rc} after the drain"
    return f"SIGTERM at {at_term / MiB:.0f} of {total / MiB:.0f} MiB"


def test_second_sigterm_exits_at_once():
    echo = h.start_backend("echo")
    lb = h.start_service([echo], global_opts={"drain_timeout": "30s"})
    s = h.connect(lb.listen, timeout=3.0)
    h.send_all(s, b"hello")
    assert h.recv_exactly(s, 5, timeout=2.0) == b"hello"
    lb.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert lb.alive(), "l4lb exited on the first SIGTERM although a connection is open (drain_timeout 30s)"
    # The open connection still works during the drain.
    h.send_all(s, b"again")
    assert h.recv_exactly(s, 5, timeout=2.0) == b"again"
    t0 = time.monotonic()
    lb.signal(signal.SIGTERM)
    rc = lb.wait(2.0)
    dt = time.monotonic() - t0
    assert rc == 0, f"exit code {rc} after the second SIGTERM"
    how = h.wait_closed(s, timeout=1.0)
    return f"exited {dt * 1000:.0f} ms after the second SIGTERM; client saw {how}"
