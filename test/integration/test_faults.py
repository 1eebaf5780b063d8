"""Faults: fd exhaustion, reload storms, running unprivileged — never a crash, a spin or a lost client."""

import os
import resource
import socket
import threading
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
    limit = 256
    resource.prlimit(lb.pid, resource.RLIMIT_NOFILE, (limit, limit))

    held = []
    for _ in range(600):  # far more clients than 256 fds can serve
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
    warnings = [l for l in lb.log_lines() if "too many open files" in l]
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


@h.timeout(60)
def test_50_sighups_alternating_valid_and_invalid_while_traffic_flows():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb = h.start_service([a])
    stop = False
    failures, seen = [], []

    def load():
        while not stop:
            try:
                s = h.connect(lb.listen, timeout=2, track=False)
                seen.append(h.recv_line(s, timeout=2).decode().strip())
                s.close()
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))


    t = threading.Thread(target=load)
    t.start()
    last_valid = None
    try:
        for i in range(50):
            if i % 2 == 0:
                last_valid = [a, b][(i // 2) % 2]
                text = h.to_yaml(h.config(h.service(lb.listen, [last_valid])))
            else:
                text = "services:\n  - name: web\n    listen: " + lb.listen + "\n    backends: oops\n"
            with open(lb.config_path, "w") as f:
                f.write(text)
            lb.signal(1)
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop = True
        t.join(10)
    assert not failures, f"{len(failures)} failed clients: {failures[:3]}"
    names = set()
    for _ in range(4):
        s = h.connect(lb.listen, timeout=2)
        names.add(h.recv_line(s, timeout=2).decode().strip())
        s.close()
    assert names == {last_valid.name}, f"live config serves {names}, last valid file named {last_valid.name}"
    text = lb.stderr_text()
    assert text.count('msg="reload failed"') >= 10 and text.count('msg="reload ok"') >= 10
    return f"{len(seen)} connections over 50 SIGHUPs, 0 failures; last valid config live"


def test_runs_as_nobody_on_ports_above_1024():
    import shutil
    import subprocess
    if not shutil.which("setpriv"):
        raise h.Skip("setpriv (util-linux) not found")
    echo = h.start_backend("echo")
    port = h.free_port()
    cfg = h.write_config(h.config(h.service(port, [echo])))
    os.chmod(os.path.dirname(cfg), 0o755)
    os.chmod(cfg, 0o644)
    binary = os.path.abspath(h.L4LB_BIN)
    proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             binary, "-c", cfg], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    h.ctx().add_proc(proc)
    h.eventually(lambda: not h.is_port_free(port), timeout=5, msg="l4lb (nobody) listening")
    with open(f"/proc/{proc.pid}/status") as f:
        uid_line = next(l for l in f if l.startswith("Uid:"))
    assert uid_line.split()[1] != "0", uid_line
    s = h.connect(port, timeout=3)
    s.sendall(b"as nobody")
    assert h.recv_exactly(s, 9, timeout=3) == b"as nobody"
    s.close()
    proc.terminate()
    assert proc.wait(10) == 0
    return f"uid {uid_line.split()[1]}"
