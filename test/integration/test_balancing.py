"""Backend selection: rotation, retries past dead backends, no backend, limits."""

import time

import harness as h


def _name_via(lb, timeout=2.0) -> str:
    s = h.connect(lb.listen, timeout=timeout)
    line = h.recv_line(s, timeout=timeout)
    s.close()
    return line.decode().rstrip("\n")


def test_round_robin_spreads_evenly():
    names = ["alpha", "bravo", "charlie"]
    backends = [h.start_backend("id", name=n) for n in names]
    lb = h.start_service(backends, algorithm="round_robin")
    seen = [_name_via(lb) for _ in range(30)]
    counts = {n: seen.count(n) for n in names}
    assert set(seen) <= set(names), f"unexpected names: {seen}"
    assert all(c == 10 for c in counts.values()), f"counts {counts}, sequence {seen}"
    for i in range(len(seen) - 2):
        window = seen[i:i + 3]
        assert len(set(window)) == 3, f"not in rotation at {i}: {window}; sequence {seen}"


def test_dead_backend_retried_transparently():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    dead = h.dead_addr()
    lb = h.start_service([a, dead, b], retries=2, connect_timeout="500ms",
                         health_check={"type": "none"})
    failures = []
    seen = []
    for i in range(30):
        try:
            seen.append(_name_via(lb, timeout=3.0))
        except (AssertionError, OSError) as e:
            failures.append(f"#{i}: {e}")
    assert not failures, f"{len(failures)} of 30 connections failed: {failures[:5]}"
    assert set(seen) <= {"alpha", "bravo"}, f"unexpected names {set(seen)}"
    # The dead backend sits between the two live ones in the rotation: both must still be used.
    assert seen.count("alpha") >= 5 and seen.count("bravo") >= 5, f"uneven: {seen}"


def test_no_backend_closes_client_quickly():
    lb = h.start_service([h.dead_addr(), h.dead_addr()], retries=1, connect_timeout="500ms")
    for _ in range(3):
        s = h.connect(lb.listen, timeout=2.0)
        t0 = time.monotonic()
        how = h.wait_closed(s, timeout=1.0)
        dt = time.monotonic() - t0
        assert dt <= 1.0, f"closed after {dt:.2f}s ({how})"
        s.close()
    assert lb.alive(), "l4lb died"


def _echo_ok(s, payload: bytes) -> None:
    h.send_all(s, payload, timeout=2.0)
    got = h.recv_exactly(s, len(payload), timeout=2.0)
    assert got == payload, f"echo mismatch: sent {payload!r}, got {got!r}"


def test_max_connections_enforced():
    echo = h.start_backend("echo")
    lb = h.start_service([echo], max_connections=2)
    c1 = h.connect(lb.listen)
    _echo_ok(c1, b"one")
    c2 = h.connect(lb.listen)
    _echo_ok(c2, b"two")

    c3 = h.connect(lb.listen)
    t0 = time.monotonic()
    try:
        c3.sendall(b"three")
    except OSError:
        pass
    how = h.wait_closed(c3, timeout=1.0)
    dt = time.monotonic() - t0
    assert dt <= 1.0, f"third client closed only after {dt:.2f}s"
    c3.close()

    # The first two still work.
    _echo_ok(c1, b"one again")
    _echo_ok(c2, b"two again")

    # Freeing a slot lets a new client in.
    c1.close()

    def fourth_works():
        c4 = h.connect(lb.listen)
        try:
            _echo_ok(c4, b"four")
            return True
        except (AssertionError, OSError):
            return False
        finally:
            c4.close()

    h.eventually(fourth_works, timeout=3.0, interval=0.1,
                 msg="a new client accepted after one of the two closed")
    _echo_ok(c2, b"two at the end")
    return f"third client: {how} after {dt * 1000:.0f} ms"
