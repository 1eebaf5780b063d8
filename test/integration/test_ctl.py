"""`l4lb ctl`: the admin client. status against a running l4lb (one aligned line per
backend, values as /stats has them); exit 3 when l4lb cannot be reached (no admin
listener in the file, invalid file, refused, silent, not HTTP); exit 2 on a bad command
line. Then the write commands (drain/ready/maint, weight, close), the token over TCP
(401/403 -> exit 3) and the unix socket listener."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time

import harness as h


# ---------------------------------------------------------------------------- helpers


def _ctl(cfg_path: str, *args: str, timeout: float = 15.0):
    """Runs `l4lb ctl -c CFG_PATH ARGS...`; returns the CompletedProcess (text)."""
    return h.run_l4lb(["ctl", "-c", cfg_path, *args], timeout=timeout)


def _token_file(token: str, name: str = "token") -> str:
    path = h.tmp_path(name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def _start(services: list[dict], admin: dict | None = None, **global_opts) -> tuple[h.L4lb, int]:
    """Starts l4lb with SERVICES and a TCP admin port on 127.0.0.1 (ADMIN adds keys,
    e.g. token_file); returns (l4lb, admin port). ctl reads l4lb.config_path."""
    port = h.free_port()
    g = dict(global_opts)
    g["admin"] = {"listen": f"127.0.0.1:{port}", **(admin or {})}
    lb = h.start_l4lb(h.config(*services, **g))
    h.eventually(lambda: not h.is_port_free(port), timeout=3.0, msg="admin port listening")
    return lb, port


def _stats(port: int) -> dict:
    status, body = h.http_get(port, "/stats")
    assert status == 200, f"/stats answered {status}: {body[:200]!r}"
    return json.loads(body)


def _backend(stats: dict, service: str, address: str) -> dict:
    for s in stats["services"]:
        if s["name"] == service:
            for b in s["backends"]:
                if b["address"] == address:
                    return b
    h.fail(f"/stats has no backend {service} {address}: {json.dumps(stats)[:400]}")


def _rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def _row(stdout: str, service: str, address: str) -> list[str]:
    for r in _rows(stdout):
        if r[:2] == [service, address]:
            return r
    h.fail(f"ctl status has no line for {service} {address}: {stdout!r}")


def _check_aligned(stdout: str, columns: int = 5) -> None:
    """The first COLUMNS columns start at the same offset on every line, and the widest
    value of each is followed by exactly two spaces."""
    lines = stdout.splitlines()
    assert lines, "no lines"
    assert all(l == l.rstrip() for l in lines), f"trailing blanks: {lines!r}"
    starts = []
    for line in lines:
        offs = [m.start() for m in re.finditer(r"\S+", line)][:columns]
        assert len(offs) == columns, f"fewer than {columns} columns: {line!r}"
        starts.append(offs)
    for c in range(columns):
        assert len({s[c] for s in starts}) == 1, f"column {c + 1} not aligned:\n{stdout}"
    for c in range(columns - 1):
        widest = max(len(line.split()[c]) for line in lines)
        assert starts[0][c + 1] - starts[0][c] == widest + 2, \
            f"column {c + 1}: not its widest value + 2 spaces:\n{stdout}"


def _raw(port_or_path: int | str, raw: bytes, timeout: float = 3.0) -> tuple[int, bytes]:
    """Sends RAW to the admin listener (TCP port on 127.0.0.1, or a unix socket path),
    reads to EOF; returns (status, body)."""
    if isinstance(port_or_path, int):
        s = h.connect(port_or_path, timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        h.ctx().add_sock(s)
        s.settimeout(timeout)
        s.connect(port_or_path)
    s.sendall(raw)
    data = h.recv_all(s, timeout=timeout)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        h.fail(f"bad HTTP answer: {data[:200]!r}")


def _hold_connection(listen: str) -> socket.socket:
    """A client connection through l4lb, established to an echo backend."""
    c = h.connect(listen, timeout=5.0)
    c.sendall(b"ping")
    assert h.recv_exactly(c, 4, timeout=5.0) == b"ping"
    return c


class _Listener:
    """A TCP listener on 127.0.0.1 that does ACT with each client it accepts (from a
    thread): None = accept and never answer; bytes = send them and close."""

    def __init__(self, act: bytes | None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        h.ctx().add_sock(self.sock)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._act = act
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            h.ctx().add_sock(c)
            if self._act is None:
                self.held.append(c)
            else:
                try:
                    c.recv(65536)
                    c.sendall(self._act)
                finally:
                    c.close()


# ---------------------------------------------------------------------------- status


def test_ctl_status_prints_one_aligned_line_per_backend():
    a = h.start_backend("echo")
    b = h.start_backend("echo")
    db = h.start_backend("echo")
    dead = h.dead_addr()
    web_port, db_port = h.free_port(), h.free_port()
    lb, admin = _start([
        h.service(web_port, [{"address": a.addr, "weight": 3}, {"address": b.addr}]),
        h.service(db_port, [db.addr, dead], name="database-primary"),
    ])
    c = _hold_connection(f"127.0.0.1:{web_port}")  # one of web's backends has 1 active

    def settled():
        st = _stats(admin)
        web = [bk for s in st["services"] if s["name"] == "web" for bk in s["backends"]]
        return st if sum(bk["active_connections"] for bk in web) == 1 else None
    stats = h.eventually(settled, timeout=5.0, msg="one active connection in /stats")

    r = _ctl(lb.config_path, "status")
    assert r.returncode == 0, f"ctl status: exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stderr == "", f"stderr {r.stderr!r}"
    rows = _rows(r.stdout)
    expected = [(s["name"], bk) for s in stats["services"] for bk in s["backends"]]
    assert len(rows) == len(expected) == 4, f"one line per backend, no header: {r.stdout!r}"
    for (service, bk), row in zip(expected, rows):  # in /stats order
        assert row[0] == service and row[1] == bk["address"], f"{row} vs {service} {bk['address']}"
        assert row[2] == bk["state"], f"STATE {row[2]!r}, /stats {bk['state']!r}"
        assert re.fullmatch(r"[0-9]+", row[3]), f"WEIGHT is not an integer: {row}"
        if "weight" in bk:
            assert int(row[3]) == bk["weight"], f"WEIGHT {row[3]}, /stats {bk['weight']}"
        assert int(row[4]) == bk["active_connections"], f"ACTIVE {row[4]}, /stats {bk}"
        for extra in row[5:]:
            assert re.fullmatch(r"(configured|override|last_check)=\S+", extra), f"extra {extra!r}"
    assert sum(int(_row(r.stdout, "web", x.addr)[4]) for x in (a, b)) == 1, r.stdout
    _check_aligned(r.stdout)
    c.close()


def test_ctl_status_with_no_backends_prints_nothing():
    port = h.free_port()
    cfg = h.config(admin={"listen": f"127.0.0.1:{port}"})
    lb = h.start_l4lb(cfg)
    h.eventually(lambda: not h.is_port_free(port), timeout=3.0, msg="admin port listening")
    r = _ctl(lb.config_path, "status")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}"


# ---------------------------------------------------------------------------- exit 3


def test_ctl_cannot_reach_l4lb_is_exit_3():
    # The file names an admin port where nothing listens: refused, exit 3 at once.
    port = h.free_port()
    path = h.write_config(h.config(h.service(h.free_port(), ["127.0.0.1:1"]),
                                   admin={"listen": f"127.0.0.1:{port}"}))
    for args in (["status"], ["drain", "web", "127.0.0.1:1"], ["close", "web", "127.0.0.1:1"]):
        t0 = time.monotonic()
        r = _ctl(path, *args)
        assert r.returncode == 3, f"{args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == "", f"{args}: stdout {r.stdout!r}"
        assert f"127.0.0.1:{port}" in r.stderr, f"stderr does not say where: {r.stderr!r}"
        assert time.monotonic() - t0 < 3, "a refused connect should fail at once"

    # A unix socket path where nothing is.
    sock = h.tmp_path("nobody.sock")
    path = h.write_config(h.config(h.service(h.free_port(), ["127.0.0.1:1"]),
                                   admin={"listen": f"unix:{sock}"}))
    r = _ctl(path, "status")
    assert r.returncode == 3, f"unix, no socket: exit {r.returncode}, stderr {r.stderr!r}"
    assert sock in r.stderr, f"stderr {r.stderr!r}"


@h.timeout(40)
def test_ctl_silent_or_non_http_admin_is_exit_3():
    # Accepts and never answers: ctl gives up after its 5 s timeout.
    silent = _Listener(None)
    path = h.write_config(h.config(admin={"listen": f"127.0.0.1:{silent.port}"}))
    t0 = time.monotonic()
    r = _ctl(path, "status", timeout=20)
    took = time.monotonic() - t0
    assert r.returncode == 3, f"silent admin: exit {r.returncode}, stderr {r.stderr!r}"
    assert "timed out" in r.stderr, f"stderr {r.stderr!r}"
    assert 4.5 <= took < 10, f"took {took:.1f}s, expected about 5s"

    # Not HTTP at all, or an answer cut short.
    for reply in (b"SSH-2.0-OpenSSH_9.2p1\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"services\":[]}",
                  b"HTTP/1.1 200 OK\r\nContent-Le"):
        other = _Listener(reply)
        path = h.write_config(h.config(admin={"listen": f"127.0.0.1:{other.port}"}))
        r = _ctl(path, "status")
        assert r.returncode == 3, f"answer {reply!r}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == "", f"stdout {r.stdout!r}"
        assert "bad answer" in r.stderr, f"stderr {r.stderr!r}"

    # HTTP, but an error status from something that is not l4lb: exit 1, its text shown.
    other = _Listener(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n")
    path = h.write_config(h.config(admin={"listen": f"127.0.0.1:{other.port}"}))
    r = _ctl(path, "status")
    assert r.returncode == 1 and "oops" in r.stderr, f"exit {r.returncode}, stderr {r.stderr!r}"


def test_ctl_without_admin_listener_in_config_is_exit_3():
    path = h.write_config(h.config(h.service(h.free_port(), ["127.0.0.1:1"])))
    for args in (["status"], ["drain", "web", "127.0.0.1:1"], ["weight", "web", "127.0.0.1:1", "5"]):
        r = _ctl(path, *args)
        assert r.returncode == 3, f"{args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == ""
        assert "admin" in r.stderr and path in r.stderr, f"stderr {r.stderr!r}"


def test_ctl_invalid_config_is_exit_3_with_its_errors():
    d = h.ctx().dir
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("global:\n  admin:\n    listen: 127.0.0.1:9900\n  workerz: 2\n")
    r = h.run_l4lb(["ctl", "-c", "bad.yaml", "status"], cwd=d)
    assert r.returncode == 3, f"invalid file: exit {r.returncode}, stderr {r.stderr!r}"
    assert re.search(r"^bad\.yaml:4:\d+: .*workerz", r.stderr, re.M), \
        f"the config's own FILE:LINE:COL error is not on stderr: {r.stderr!r}"
    assert r.stdout == ""

    r = h.run_l4lb(["ctl", "-c", "missing.yaml", "status"], cwd=d)
    assert r.returncode == 3 and "missing.yaml" in r.stderr, f"exit {r.returncode} {r.stderr!r}"

    # A token_file that cannot be read makes the file invalid: exit 3 as well.
    path = h.write_config(h.config(admin={"listen": "127.0.0.1:9900",
                                          "token_file": h.tmp_path("no-such-token")}))
    r = _ctl(path, "drain", "web", "127.0.0.1:1")
    assert r.returncode == 3 and "no-such-token" in r.stderr, f"exit {r.returncode} {r.stderr!r}"


# ---------------------------------------------------------------------------- exit 2


def test_ctl_bad_command_line_is_exit_2():
    # A file that would work: exit 2 comes from the command line alone, before any connect.
    path = h.write_config(h.config(admin={"listen": f"127.0.0.1:{h.free_port()}"}))
    bad = [
        [], ["bogus"], ["status", "extra"], ["drain"], ["drain", "web"],
        ["ready", "web", "127.0.0.1:1", "extra"], ["maint", "", "127.0.0.1:1"],
        ["weight", "web", "127.0.0.1:1"], ["weight", "web", "127.0.0.1:1", "0"],
        ["weight", "web", "127.0.0.1:1", "1001"], ["weight", "web", "127.0.0.1:1", "abc"],
        ["weight", "web", "127.0.0.1:1", "1.5"], ["weight", "web", "127.0.0.1:1", "-3"],
        ["weight", "web", "127.0.0.1:1", "07"], ["close", "web"], ["--nope", "status"],
    ]
    for args in bad:
        r = _ctl(path, *args)
        assert r.returncode == 2, f"{args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == "", f"{args}: stdout {r.stdout!r}"
        assert r.stderr.startswith("l4lb ctl: "), f"{args}: stderr {r.stderr!r}"
    r = h.run_l4lb(["ctl", "-c"])
    assert r.returncode == 2, f"-c without FILE: exit {r.returncode}"
    r = _ctl(path, "weight", "web", "127.0.0.1:1", "0")
    assert "1..1000" in r.stderr, f"stderr does not say what N may be: {r.stderr!r}"

    # --help: the ctl usage on stdout, exit 0; l4lb --help mentions ctl.
    for args in (["ctl", "--help"], ["ctl", "-h"], ["ctl", "-c", path, "status", "--help"]):
        r = h.run_l4lb(args)
        assert r.returncode == 0, f"{args}: exit {r.returncode}"
        assert "l4lb ctl" in r.stdout and "weight" in r.stdout and "close" in r.stdout, r.stdout
    r = h.run_l4lb(["--help"])
    assert r.returncode == 0 and "l4lb ctl" in r.stdout, f"l4lb --help: {r.stdout!r}"


# ---------------------------------------------------------------------------- writes


def test_ctl_drain_ready_maint_set_the_state_status_shows():
    a, b = h.start_backend("echo"), h.start_backend("echo")
    port = h.free_port()
    lb, admin = _start([h.service(port, [a.addr, b.addr])],
                       admin={"token_file": _token_file("s3cret-token")})

    for verb, shown in (("drain", "draining"), ("maint", "maint"), ("ready", "up")):
        off = lb.log_offset()
        r = _ctl(lb.config_path, verb, "web", a.addr)
        assert r.returncode == 0, f"ctl {verb}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == f"web {a.addr}: state {verb}\n", f"ctl {verb}: stdout {r.stdout!r}"
        bk = _backend(_stats(admin), "web", a.addr)
        assert bk["state"] == shown, f"after {verb}: /stats state {bk['state']!r}"
        if "admin_state" in bk:
            assert bk["admin_state"] == verb, bk
        st = _ctl(lb.config_path, "status")
        assert st.returncode == 0, st.stderr
        assert _row(st.stdout, "web", a.addr)[2] == shown, st.stdout
        assert _row(st.stdout, "web", b.addr)[2] == "up", st.stdout
        lb.wait_for_log(rf'msg="admin set" service=web backend={re.escape(a.addr)} what=state '
                        rf'value={verb}\b', timeout=3.0, start=off)

    # Drained: new clients go to b only.
    r = _ctl(lb.config_path, "drain", "web", a.addr)
    assert r.returncode == 0, r.stderr
    for _ in range(4):
        c = _hold_connection(f"127.0.0.1:{port}")
        c.close()
    assert _backend(_stats(admin), "web", a.addr)["total_connections"] == 0


def test_ctl_weight_sets_the_weight_in_force_and_config_restores_the_file_s():
    a, b = h.start_backend("echo"), h.start_backend("echo")
    lb, admin = _start([h.service(h.free_port(), [{"address": a.addr, "weight": 2}, b.addr])],
                       admin={"token_file": _token_file("another-token")})

    r = _ctl(lb.config_path, "weight", "web", a.addr, "5")
    assert r.returncode == 0, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == f"web {a.addr}: weight 5\n", f"stdout {r.stdout!r}"
    assert _backend(_stats(admin), "web", a.addr)["weight"] == 5
    st = _ctl(lb.config_path, "status")
    row = _row(st.stdout, "web", a.addr)
    assert row[3] == "5", f"WEIGHT {row}"
    assert "configured=2" in row[5:], f"the file's weight is not shown next to it: {row}"
    assert any(x.startswith("override=") and "weight:5" in x for x in row[5:]), row
    _check_aligned(st.stdout)

    r = _ctl(lb.config_path, "weight", "web", a.addr, "config")
    assert r.returncode == 0, f"weight config: exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == f"web {a.addr}: weight 2\n", f"stdout {r.stdout!r}"
    st = _ctl(lb.config_path, "status")
    row = _row(st.stdout, "web", a.addr)
    assert row[3] == "2" and not any(x.startswith(("configured=", "override=")) for x in row), row


def test_ctl_close_resets_the_backend_s_open_connections():
    a = h.start_backend("echo")
    port = h.free_port()
    lb, admin = _start([h.service(port, [a.addr])], admin={"token_file": _token_file("t0ken")})
    clients = [_hold_connection(f"127.0.0.1:{port}") for _ in range(3)]
    h.eventually(lambda: _backend(_stats(admin), "web", a.addr)["active_connections"] == 3,
                 timeout=5.0, msg="3 active connections")

    r = _ctl(lb.config_path, "close", "web", a.addr)
    assert r.returncode == 0, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == f"web {a.addr}: closed 3\n", f"stdout {r.stdout!r}"
    for c in clients:
        assert h.wait_closed(c, timeout=3.0) == "reset", "a client was not reset"
    h.eventually(lambda: _backend(_stats(admin), "web", a.addr)["active_connections"] == 0,
                 timeout=5.0, msg="no active connection left")
    r = _ctl(lb.config_path, "close", "web", a.addr)
    assert r.returncode == 0 and r.stdout == f"web {a.addr}: closed 0\n", r.stdout + r.stderr


def test_ctl_ipv6_backend_named_as_status_shows_it():
    if not h.ipv6_available():
        raise h.Skip("::1 unavailable")
    b6 = h.start_backend("echo", listen="[::1]:0")
    lb, admin = _start([h.service(h.free_port(), [b6.addr])],
                       admin={"token_file": _token_file("v6-token")})
    st = _ctl(lb.config_path, "status")
    shown = _rows(st.stdout)[0][1]
    assert shown.startswith("[::1]:"), st.stdout
    r = _ctl(lb.config_path, "maint", "web", shown)
    assert r.returncode == 0, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert _row(_ctl(lb.config_path, "status").stdout, "web", shown)[2] == "maint"


def test_ctl_unknown_service_or_backend_is_exit_1_with_l4lb_s_message():
    a = h.start_backend("echo")
    lb, admin = _start([h.service(h.free_port(), [a.addr])],
                       admin={"token_file": _token_file("tok")})
    for args in (["drain", "nosuch", a.addr], ["drain", "web", "127.0.0.1:1"],
                 ["weight", "web", "127.0.0.1:1", "3"], ["close", "nosuch", a.addr],
                 ["drain", "web", a.addr.replace("127.0.0.1", "localhost")]):
        r = _ctl(lb.config_path, *args)
        assert r.returncode == 1, f"{args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert r.stdout == "", f"{args}: stdout {r.stdout!r}"
        msg = r.stderr.strip()
        assert msg.startswith("l4lb ctl: ") and len(msg) > len("l4lb ctl: "), msg
        assert "{" not in msg, f"the JSON itself rather than its message: {msg!r}"
    assert _backend(_stats(admin), "web", a.addr)["state"] == "up"


def test_ctl_write_over_tcp_without_token_file_is_exit_3():
    a = h.start_backend("echo")
    lb, admin = _start([h.service(h.free_port(), [a.addr])])
    for args in (["drain", "web", a.addr], ["weight", "web", a.addr, "4"],
                 ["close", "web", a.addr]):
        r = _ctl(lb.config_path, *args)
        assert r.returncode == 3, f"{args}: exit {r.returncode} (403 expected), stderr {r.stderr!r}"
        assert r.stdout == ""
        assert "403" in r.stderr, f"stderr does not say why: {r.stderr!r}"
    st = _ctl(lb.config_path, "status")  # reads need no token
    assert st.returncode == 0 and _row(st.stdout, "web", a.addr)[2] == "up", st.stdout + st.stderr


def test_ctl_wrong_token_is_exit_3_and_changes_nothing():
    a = h.start_backend("echo")
    lb, admin = _start([h.service(h.free_port(), [a.addr])],
                       admin={"token_file": _token_file("the-right-one", "right")})
    # The same admin address, another token.
    wrong = h.write_config(h.config(admin={"listen": f"127.0.0.1:{admin}",
                                           "token_file": _token_file("a-wrong-one", "wrong")}))
    r = _ctl(wrong, "drain", "web", a.addr)
    assert r.returncode == 3, f"wrong token: exit {r.returncode}, stderr {r.stderr!r}"
    assert "401" in r.stderr, f"stderr {r.stderr!r}"
    assert _backend(_stats(admin), "web", a.addr)["state"] == "up"
    r = _ctl(wrong, "status")  # a wrong token does not matter to reads (and is not sent)
    assert r.returncode == 0, r.stderr
    r = _ctl(lb.config_path, "drain", "web", a.addr)
    assert r.returncode == 0, f"right token: exit {r.returncode}, stderr {r.stderr!r}"


def test_ctl_over_unix_socket_needs_no_token():
    a = h.start_backend("echo")
    sock = h.tmp_path("admin.sock")
    lb = h.start_l4lb(h.config(h.service(h.free_port(), [a.addr]), admin={"listen": f"unix:{sock}"}),
                      wait_ready=False)
    lb.wait_for_log(h.READY_RX, timeout=5.0)
    assert (os.stat(sock).st_mode & 0o777) == 0o600, oct(os.stat(sock).st_mode)

    r = _ctl(lb.config_path, "drain", "web", a.addr)
    assert r.returncode == 0, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == f"web {a.addr}: state drain\n", r.stdout
    st = _ctl(lb.config_path, "status")
    assert st.returncode == 0 and _row(st.stdout, "web", a.addr)[2] == "draining", st.stdout
    lb.wait_for_log(r'msg="admin set" .*what=state value=drain peer=unix:\d+', timeout=3.0)
    r = _ctl(lb.config_path, "weight", "web", a.addr, "9")
    assert r.returncode == 0 and r.stdout == f"web {a.addr}: weight 9\n", r.stdout + r.stderr
