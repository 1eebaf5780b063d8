"""Graceful stop on SIGTERM and the forced stop on a second SIGTERM."""

import signal
import socket
import time

import harness as h

MiB = 1 << 20


@h.timeout(60)
def test_sigterm_lets_inflight_transfer_finish():
    digest = h.start_backend("digest")
    lb = h.start_service([digest], global_opts={"drain_timeout": "30s"})
    total = 64 * MiB
    s = h.connect(lb.listen, timeout=30.0)
    tx = h.PacedSender(s, total)  # ~20 MiB/s: still in flight when the test acts
    h.eventually(lambda: tx.sent >= 12 * MiB or tx.error, timeout=20.0,
                 msg="12 MiB sent")
    assert tx.error is None, f"send failed before SIGTERM: {tx.error!r}"
    at_term = tx.sent
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
    assert not tx.done, "transfer finished before listeners closed; nothing was tested"

    tx.join(30)
    assert tx.error is None, f"send failed after SIGTERM at {tx.sent} bytes: {tx.error!r}"
    assert tx.done, f"sender stuck at {tx.sent} bytes"
    answer = h.recv_all(s, timeout=15.0)
    expected = f"{total} {tx.sha256}\n".encode()
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
