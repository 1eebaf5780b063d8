"""SIGUSR2 upgrade (the new process inherits the listening sockets, the state, and takes
over once ready), its failures (the old one serves on), systemd's MAINPID, and the fd store
(a kill -9 and a restart with the stored sockets refuse nobody)."""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness as h
from test_runtime_control import _call, _set_state, _stats, _backend, _token_file
from test_systemd import NotifySocket

HANDED_OVER_RX = r'msg="upgrade handed over" pid=(\d+)'


def _track(pid: int) -> None:
    """The new process is no child of the test: recorded so that the runner kills it."""
    with open(os.path.join(h.ctx().dir, "pids"), "a") as f:
        f.write(f"{pid}\n")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet) is gone for the test.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _upgrade(lb: h.L4lb, timeout: float = 12.0) -> int:
    """SIGUSR2, then the new process's pid once the old one logged the handover."""
    off = lb.log_offset()
    lb.signal(signal.SIGUSR2)
    line = lb.wait_for_log(HANDED_OVER_RX, timeout=timeout, start=off)
    pid = int(re.search(HANDED_OVER_RX, line).group(1))
    _track(pid)
    return pid


def _wait_gone(pid: int, timeout: float) -> None:
    h.eventually(lambda: not _alive(pid), timeout=timeout, msg=f"process {pid} exited")


def _echo_once(addr: str, payload: bytes = b"ping") -> bytes:
    s = h.connect(addr, timeout=3.0)
    try:
        h.send_all(s, payload)
        return h.recv_exactly(s, len(payload), timeout=3.0)
    finally:
        s.close()


class Connector:
    """A new connection every PERIOD seconds: 64 KiB to the digest backend, its digest
    checked. Counts refused (connect failed) and cut (any other failure) connections."""

    def __init__(self, addr: str, period: float = 0.02):
        self.ok = self.refused = self.cut = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

        def one():
            payload = os.urandom(64 << 10)
            expected = f"{len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode()
            try:
                s = socket.create_connection(h.split_addr(addr), timeout=5.0)
            except OSError as e:
                with self._lock:
                    self.refused += 1
                    self.errors.append(f"connect: {e!r}")
                return
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                answer = h.recv_all(s, timeout=10.0)
                with self._lock:
                    if answer == expected:
                        self.ok += 1
                    else:
                        self.cut += 1
                        self.errors.append(f"answer {answer[:80]!r}")
            except Exception as e:  # noqa: BLE001 - every failure counts as cut
                with self._lock:
                    self.cut += 1
                    self.errors.append(f"transfer: {e!r}")
            finally:
                s.close()

        def run():
            while not self._stop.is_set():
                t = threading.Thread(target=one, daemon=True)
                t.start()
                self._threads.append(t)
                self._stop.wait(period)

        self._runner = threading.Thread(target=run, daemon=True)
        self._runner.start()

    def stop(self) -> None:
        self._stop.set()
        self._runner.join(5)
        for t in self._threads:
            t.join(15)


# ---------------------------------------------------------------------------- handover

@h.timeout(90)
def test_upgrade_under_load_refuses_and_cuts_nobody():
    digest = h.start_backend("digest")
    lb = h.start_service([digest], global_opts={"drain_timeout": "30s"})
    old_pid = lb.pid
    total = 2 << 20
    streams = []
    for _ in range(50):
        s = h.connect(lb.listen, timeout=30.0)
        streams.append((s, h.PacedSender(s, total, chunk=16 << 10, pause=0.02)))
    conn = Connector(lb.listen)
    h.eventually(lambda: all(tx.sent >= 256 << 10 or tx.error for _, tx in streams), timeout=20.0,
                 msg="every stream under way")
    t0 = time.monotonic()
    new_pid = _upgrade(lb)
    handed = time.monotonic() - t0
    assert new_pid != old_pid
    in_flight = sum(1 for _, tx in streams if not tx.done)
    assert in_flight > 0, "every stream ended before the handover; nothing was tested"
    assert lb.alive(), "the old process exited with streams in flight"
    time.sleep(1.0)  # new connections now go to the new process only
    # The old process ends when its streams do (not at once, not at drain_timeout).
    for s, tx in streams:
        tx.join(30)
    results = [h.recv_all(s, timeout=15.0) for s, _ in streams]
    rc = lb.wait(10)
    conn.stop()
    bad = [i for i, ((s, tx), got) in enumerate(zip(streams, results))
           if tx.error or got != f"{total} {tx.sha256}\n".encode()]
    assert not bad, f"{len(bad)} of 50 streams failed, e.g. {streams[bad[0]][1].error!r} {results[bad[0]][:80]!r}"
    assert rc == 0, f"old process exited with {rc}"
    assert conn.refused == 0 and conn.cut == 0, \
        f"{conn.refused} refused, {conn.cut} cut of {conn.ok + conn.refused + conn.cut}: {conn.errors[:3]}"
    assert conn.ok > 50, f"only {conn.ok} connections made"
    # The new one serves on.
    assert _alive(new_pid)
    s = h.connect(lb.listen)
    h.send_all(s, b"x")
    s.shutdown(socket.SHUT_WR)
    assert h.recv_all(s, timeout=5.0) == f"1 {hashlib.sha256(b'x').hexdigest()}\n".encode()
    s.close()
    _kill(new_pid)
    return (f"handed over {handed * 1000:.0f} ms after SIGUSR2 with {in_flight} streams in flight; "
            f"50/50 digests matched; {conn.ok} new connections, 0 refused, 0 cut")


@h.timeout(60)
def test_upgrade_hands_over_overrides_health_and_reload_count():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    dead = h.dead_addr()
    admin = "unix:" + h.tmp_path("admin.sock")
    # Checks every 60 s: a check in the new process would only come from a first check.
    hc = {"type": "tcp", "interval": "60s", "timeout": "500ms",
          "healthy_threshold": 1, "unhealthy_threshold": 1}
    port = h.free_port()
    listen = f"127.0.0.1:{port}"
    cfg = h.config(h.service(listen, [a, b, dead], health_check=hc, retries=0),
                   admin={"listen": admin})
    lb = h.start_l4lb(cfg)
    h.eventually(lambda: _backend(admin, dead)["state"] == "down", timeout=5.0, msg="dead backend down")
    _set_state(admin, a.addr, "drain")
    lb.signal(signal.SIGHUP)
    lb.wait_for_log(r'msg="reload ok"', timeout=5.0)
    time.sleep(0.5)  # the reload's own check of the first backend (its slot is at once) ends
    before = {x: _backend(admin, x) for x in (a.addr, b.addr, dead)}
    stats_before = _stats(admin)
    # The new process reads the file as it is now: one backend more, new to it.
    dead2 = h.dead_addr()
    h.write_config(h.config(h.service(listen, [a, b, dead, dead2], health_check=hc, retries=0),
                            admin={"listen": admin}), name=os.path.basename(lb.config_path))
    new_pid = _upgrade(lb)
    lb.wait(10)  # nothing open: the old one exits at once
    assert os.path.exists(admin[5:]), "the admin socket file went with the old process"
    after = {x: _backend(admin, x) for x in (a.addr, b.addr, dead)}
    stats_after = _stats(admin)
    assert after[a.addr]["admin_state"] == "drain" and after[a.addr]["override"]["state"] == "drain", after[a.addr]
    assert after[dead]["state"] == "down", f"the dead backend is {after[dead]['state']} after the upgrade"
    # A backend new to it had its first check before the new process said ready.
    new_one = _backend(admin, dead2)
    assert new_one["state"] == "down" and new_one["health_checks"]["failure"] == 1, new_one
    for x in (a.addr, b.addr, dead):
        assert after[x]["health_checks"] == before[x]["health_checks"], \
            f"{x}: checks {before[x]['health_checks']} before, {after[x]['health_checks']} after: a check ran"
        assert after[x]["last_check"] == before[x]["last_check"], (before[x], after[x])
    rel = [k for k in stats_before if k == "config_reloads"]
    for k in rel:
        assert stats_after[k] == stats_before[k] == 1, (k, stats_before[k], stats_after[k])
    # Clients go to bravo only: alpha drained, the dead one down (retries 0: a pick of it fails).
    names = set()
    for _ in range(8):
        s = h.connect(listen)
        names.add(h.recv_line(s, timeout=3.0).strip().decode())
        s.close()
    _kill(new_pid)
    assert names == {"bravo"}, names
    return f"drain override, down state and check counts {after[dead]['health_checks']} kept"


def _copy_binary() -> str:
    d = h.tmp_path("bin")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "l4lb")
    shutil.copy2(h.L4LB_BIN, path)
    return path


def _replace(path: str, content: bytes | None, source: str | None = None) -> None:
    """Puts a new file at PATH (the running binary's inode stays), or removes it."""
    tmp = path + ".new"
    if source is not None:
        shutil.copy2(source, tmp)
    elif content is not None:
        with open(tmp, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o755)
    else:
        os.unlink(path)
        return
    os.rename(tmp, path)


def _start_copy(echo) -> tuple[h.L4lb, str]:
    path = _copy_binary()
    saved = h.L4LB_BIN
    h.L4LB_BIN = path
    try:
        lb = h.start_service([echo])
    finally:
        h.L4LB_BIN = saved
    return lb, path


def _expect_failure(lb: h.L4lb, reason_rx: str, timeout: float) -> str:
    off = lb.log_offset()
    lb.signal(signal.SIGUSR2)
    lb.wait_for_log(r'msg="upgrade start"', timeout=5.0, start=off)
    line = lb.wait_for_log(r'msg="upgrade failed"', timeout=timeout, start=off)
    assert re.search(reason_rx, line), line
    assert "handed over" not in lb.stderr_text()[off:]
    assert lb.alive()
    assert _echo_once(lb.listen) == b"ping", "the old process stopped serving"
    return line


@h.timeout(40)
def test_upgrade_with_invalid_config_keeps_the_old_one_serving():
    echo = h.start_backend("echo")
    lb = h.start_service([echo])
    with open(lb.config_path) as f:
        good = f.read()
    with open(lb.config_path, "w") as f:
        f.write("services: [\n")
    line = _expect_failure(lb, r"exited with status 1", 10.0)
    with open(lb.config_path, "w") as f:
        f.write(good)
    # And the same process upgrades fine afterwards.
    new_pid = _upgrade(lb)
    lb.wait(10)
    assert _echo_once(lb.listen) == b"ping"
    _kill(new_pid)
    return line.split("reason=", 1)[1]


@h.timeout(40)
def test_upgrade_to_a_binary_that_exits_or_is_missing_keeps_the_old_one():
    echo = h.start_backend("echo")
    lb, path = _start_copy(echo)
    real = h.L4LB_BIN
    _replace(path, b"#!/bin/sh\nexit 1\n")
    r1 = _expect_failure(lb, r"exited with status 1", 10.0)
    _replace(path, None)
    r2 = _expect_failure(lb, r"exec .*No such file or directory", 10.0)
    _replace(path, b"#!/bin/sh\nkill -SEGV $$\n")
    r3 = _expect_failure(lb, r"killed by signal 11", 10.0)
    _replace(path, None, source=real)
    new_pid = _upgrade(lb)
    lb.wait(10)
    assert _echo_once(lb.listen) == b"ping"
    _kill(new_pid)
    return "; ".join(x.split("reason=", 1)[1] for x in (r1, r2, r3))


@h.timeout(40)
def test_upgrade_to_a_binary_never_ready_is_killed_after_10s_and_a_second_sigusr2_refused():
    echo = h.start_backend("echo")
    lb, path = _start_copy(echo)
    _replace(path, b"#!/bin/sh\nexec sleep 60\n")
    off = lb.log_offset()
    t0 = time.monotonic()
    lb.signal(signal.SIGUSR2)
    start_line = lb.wait_for_log(r'msg="upgrade start"', timeout=5.0, start=off)
    child = int(re.search(r"pid=(\d+)", start_line).group(1))
    _track(child)
    time.sleep(0.3)
    lb.signal(signal.SIGUSR2)
    refused = lb.wait_for_log(r'msg="upgrade refused"', timeout=5.0, start=off)
    assert f"pid={child}" in refused, refused
    # Serving all the while.
    assert _echo_once(lb.listen) == b"ping"
    line = lb.wait_for_log(r'msg="upgrade failed"', timeout=15.0, start=off)
    dt = time.monotonic() - t0
    assert "not ready within 10s" in line, line
    assert 9.5 <= dt <= 12.5, f"upgrade failed {dt:.1f}s after SIGUSR2"
    _wait_gone(child, 3.0)
    assert lb.alive() and _echo_once(lb.listen) == b"ping"
    return f"killed and logged {dt:.1f}s after SIGUSR2"


@h.timeout(40)
def test_upgrade_sends_mainpid_and_never_stopping_to_systemd():
    echo = h.start_backend("echo")
    ns = NotifySocket()
    port = h.free_port()
    listen = f"127.0.0.1:{port}"
    lb = h.start_l4lb(h.config(h.service(listen, [echo])), env={"NOTIFY_SOCKET": ns.path})
    ready = ns.wait_for(lambda m: "READY=1" in m, 0, 5.0, "READY=1")
    stored = ns.wait_for(lambda m: "FDSTORE=1" in m, 0, 5.0, "FDSTORE=1")
    names = [l for l in ns.dump()[stored] if l.startswith("FDNAME=")]
    assert names and names[0].startswith("FDNAME=listen@w0@127.0.0.1_"), ns.dump()[stored]
    start = ns.count()
    new_pid = _upgrade(lb)
    i = ns.wait_for(lambda m: f"MAINPID={new_pid}" in m, start, 5.0, f"MAINPID={new_pid}")
    # The new process said READY=1 before the old one named it.
    r = ns.wait_for(lambda m: "READY=1" in m, start, 1.0, "READY=1 from the new process")
    assert r < i, ns.dump()[start:]
    lb.wait(10)
    time.sleep(0.2)
    after = [l for m in ns.dump()[start:] for l in m]
    assert "STOPPING=1" not in after, f"STOPPING=1 sent during an upgrade: {after}"
    assert _echo_once(listen) == b"ping"
    _kill(new_pid)
    ns.close()
    return f"MAINPID={new_pid} after the new process's READY=1; no STOPPING=1"


# ---------------------------------------------------------------------------- fd store

@h.timeout(40)
def test_fd_store_restart_after_kill_9_loses_no_client():
    echo = h.start_backend("echo")
    port = h.free_port()
    listen = f"127.0.0.1:{port}"
    # systemd's part: it holds the listening socket and passes it on every start.
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.ctx().add_sock(held)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # workers > 1 bind their own too
    held.bind(("127.0.0.1", port))
    held.listen(128)
    path = h.write_config(h.config(h.service(listen, [echo])))
    fd = held.fileno()

    def start() -> h.L4lb:
        c = h.ctx()
        log_path = os.path.join(c.dir, f"l4lb-{c.next_id()}.stderr")
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "LISTEN_FDNAMES"):
            env.pop(k, None)
        move = f"exec 3<&{fd} {fd}<&-; " if fd != 3 else ""
        script = move + 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"'
        proc = subprocess.Popen(["bash", "-c", script, h.L4LB_BIN, path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=(fd,), env=env)
        c.add_proc(proc)
        lb = h.L4lb(proc, path, log_path)
        c.l4lbs.append(lb)
        lb.wait_for_log(h.READY_RX, timeout=5.0)
        return lb

    lb = start()
    assert "sockets inherited" in lb.stderr_text()
    assert _echo_once(listen) == b"ping"
    lb.kill()
    lb.wait(5)
    # Down: the kernel still queues clients on the held socket.
    waiting = []
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=3.0)  # not refused
        h.ctx().add_sock(s)
        s.sendall(b"queued%d" % i)
        waiting.append(s)
    time.sleep(0.3)
    lb2 = start()
    for i, s in enumerate(waiting):
        want = b"queued%d" % i
        assert h.recv_exactly(s, len(want), timeout=5.0) == want, f"queued client {i} not served"
    assert _echo_once(listen) == b"ping"
    lb2.kill()
    return "5 clients that connected while l4lb was down were served by the restarted one"


@h.timeout(40)
def test_upgrade_moves_the_tcp_admin_port_and_its_overrides():
    a = h.start_backend("echo")
    b = h.start_backend("echo")
    listen = f"127.0.0.1:{h.free_port()}"
    admin = f"127.0.0.1:{h.free_port()}"
    lb = h.start_l4lb(h.config(h.service(listen, [a, b]),
                               admin={"listen": admin, "token_file": _token_file()}))
    st, _, body = _call(admin, "PUT", f"/services/web/backends/{b.addr}/weight", "7")
    assert st == 200, (st, body)
    new_pid = _upgrade(lb)
    lb.wait(10)
    # The same admin socket, now answered by the new process, with the override.
    got = _backend(admin, b.addr)
    assert got["override"] and got["override"]["weight"] == 7, got
    st, _, body = _call(admin, "PUT", f"/services/web/backends/{b.addr}/weight", "config")
    assert st == 200, (st, body)
    assert _echo_once(listen) == b"ping"
    _kill(new_pid)
    return "admin port (TCP, token) and a weight override kept over the upgrade"
