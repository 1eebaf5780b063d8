"""Faults: running out of file descriptors never crashes l4lb nor spins the CPU."""

import resource
import socket
import time

import harness as h


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in ticks of 10 ms


@h.timeout(60)
def test_fd_exhaustion_no_spin_and_recovery():
    echo = h.start_backend("echo")
    lb = h.start_service([echo], retries=0)
    limit = 64
    resource.prlimit(lb.pid, resource.RLIMIT_NOFILE, (limit, limit))

    held = []
    for _ in range(120):  # far more clients than 64 fds can serve
        try:
            s = socket.create_connection(("127.0.0.1", lb.port), timeout=1)
            held.append(s)
        except OSError:
            pass
    time.sleep(0.5)
    # Saturated: clients keep arriving while every fd is in use.
    cpu0, t0 = _cpu_seconds(lb.pid), time.monotonic()
    extra = []
    while time.monotonic() - t0 < 2.0:
        try:
            extra.append(socket.create_connection(("127.0.0.1", lb.port), timeout=0.2))
        except OSError:
            pass
        time.sleep(0.02)
    cpu = (_cpu_seconds(lb.pid) - cpu0) / (time.monotonic() - t0)
    assert lb.alive(), "l4lb died when out of fds"
    assert cpu < 0.5, f"l4lb used {cpu:.0%} of a core while out of fds"
    # Either accept() or the backend socket() runs out first; either way a warning,
    # at most about one a second.
    warnings = [l for l in lb.log_lines() if "Too many open files" in l]
    assert warnings, "no warning about running out of fds"
    assert len(warnings) <= 6, f"{len(warnings)} warnings in ~3 s: not rate-limited"

    served = 0
    for s in held[:10]:
        try:
            s.settimeout(1)
            s.sendall(b"ping")
            if s.recv(4) == b"ping":
                served += 1
        except OSError:
            pass
    assert served > 0, "no held client was served at all"

    for s in held + extra:
        s.close()
    time.sleep(0.5)

    def works():
        s = h.connect(lb.listen, timeout=2)
        s.sendall(b"after")
        ok = h.recv_exactly(s, 5, timeout=2) == b"after"
        s.close()
        return ok

    h.eventually(works, timeout=5, msg="service resumes once clients leave")
    return f"cpu while saturated {cpu:.0%}; {served}/10 held clients served"
