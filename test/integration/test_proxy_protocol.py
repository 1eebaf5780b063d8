"""PROXY protocol v1/v2 towards backends: the backend sees the client's real address.

A Python backend here parses the header strictly (its own parser, independent of l4lb's)
and answers "v=1 proto=TCP4 src=HOST:PORT dst=HOST:PORT\\n" before echoing whatever
follows the header. Real peers too: HAProxy with `accept-proxy` (which passes the
addresses it read on to the parser with `send-proxy`), and nginx `listen ... proxy_protocol`
behind an `http` health check.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import harness as h

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


# ---------------------------------------------------------------------------- parser

def parse_proxy(buf: bytes):
    """-> ("incomplete", None, 0) | ("invalid", reason, 0) | ("complete", info, length).
    info: {"v": 1|2, "proto": "TCP4"|"TCP6"|"UNKNOWN"|"LOCAL", "src": (host, port), "dst": ...}"""
    if not buf:
        return "incomplete", None, 0
    if buf[:1] == b"P":
        n = min(len(buf), 6)
        if buf[:n] != b"PROXY "[:n]:
            return "invalid", "not PROXY", 0
        end = buf.find(b"\r\n", 0, 107)
        if end < 0:
            if len(buf) >= 107 or b"\n" in buf[:107]:
                return "invalid", "no CRLF within 107 bytes", 0
            return "incomplete", None, 0
        line = buf[:end].decode("ascii", "replace")
        parts = line.split(" ")
        if parts[1:2] == ["UNKNOWN"]:
            return "complete", {"v": 1, "proto": "UNKNOWN"}, end + 2
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            return "invalid", f"bad v1 line {line!r}", 0
        cls = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
        try:
            src, dst = cls(parts[2]), cls(parts[3])
        except ValueError as e:
            return "invalid", f"bad address in {line!r}: {e}", 0
        ports = parts[4:6]
        if not all(re.fullmatch(r"0|[1-9][0-9]{0,4}", p) and int(p) <= 65535 for p in ports):
            return "invalid", f"bad port in {line!r}", 0
        return "complete", {"v": 1, "proto": parts[1], "src": (str(src), int(ports[0])),
                            "dst": (str(dst), int(ports[1]))}, end + 2
    if buf[:1] == b"\r":
        n = min(len(buf), 12)
        if buf[:n] != V2_SIG[:n]:
            return "invalid", "bad v2 signature", 0
        if len(buf) < 16:
            return "incomplete", None, 0
        ver_cmd, fam, length = struct.unpack("!BBH", buf[12:16])
        if ver_cmd >> 4 != 2 or ver_cmd & 0xF > 1:
            return "invalid", f"bad v2 version/command {ver_cmd:#x}", 0
        if len(buf) < 16 + length:
            return "incomplete", None, 0
        body = buf[16:16 + length]
        if ver_cmd & 0xF == 0:
            return "complete", {"v": 2, "proto": "LOCAL"}, 16 + length
        if fam == 0x11 and length >= 12:
            s, d, sp, dp = struct.unpack("!4s4sHH", body[:12])
            return "complete", {"v": 2, "proto": "TCP4",
                                "src": (str(ipaddress.IPv4Address(s)), sp),
                                "dst": (str(ipaddress.IPv4Address(d)), dp)}, 16 + length
        if fam == 0x21 and length >= 36:
            s, d, sp, dp = struct.unpack("!16s16sHH", body[:36])
            return "complete", {"v": 2, "proto": "TCP6",
                                "src": (str(ipaddress.IPv6Address(s)), sp),
                                "dst": (str(ipaddress.IPv6Address(d)), dp)}, 16 + length
        return "invalid", f"unexpected v2 family {fam:#x} / length {length}", 0
    return "invalid", "not a PROXY header", 0


def describe(info: dict) -> str:
    if "src" not in info:
        return f"v={info['v']} proto={info['proto']}"
    return (f"v={info['v']} proto={info['proto']} src={h.join_addr(*info['src'])} "
            f"dst={h.join_addr(*info['dst'])}")


# ---------------------------------------------------------------------------- backend

class ParsingBackend:
    """Reads a PROXY header, answers describe(header) + "\\n" (or "bad REASON\\n" and closes),
    then echoes every byte after the header until EOF."""

    def __init__(self, host: str = "127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        h.ctx().add_sock(self.sock)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.addr = h.join_addr(host, self.sock.getsockname()[1])
        self.lock = threading.Lock()
        self.headers: list[dict] = []
        self.bad: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            h.ctx().add_sock(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.settimeout(10)
            buf = b""
            while True:
                state, info, used = parse_proxy(buf)
                if state != "incomplete":
                    break
                b = c.recv(4096)
                if not b:
                    state, info = "invalid", f"EOF after {len(buf)} bytes {buf[:60]!r}"
                    break
                buf += b
            if state == "invalid":
                with self.lock:
                    self.bad.append(info)
                c.sendall(f"bad {info} first={buf[:40]!r}\n".encode())
                c.close()
                return
            with self.lock:
                self.headers.append(info)
            c.sendall((describe(info) + "\n").encode())
            rest = buf[used:]
            while True:
                if rest:
                    c.sendall(rest)
                rest = c.recv(65536)
                if not rest:
                    break
            c.shutdown(socket.SHUT_WR)
            c.close()
        except OSError:
            c.close()


def connect_from(src_host: str, addr: str, timeout: float = 3.0) -> socket.socket:
    host, port = h.split_addr(addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    h.ctx().add_sock(s)
    s.settimeout(timeout)
    s.bind((src_host, 0))
    s.connect((host, port))
    return s


def expect_line(s: socket.socket, listen: str, version: int, proto: str) -> str:
    """The backend's report of the header must show S's own address and LISTEN."""
    line = h.recv_line(s, timeout=3.0).decode().rstrip("\n")
    chost, cport = s.getsockname()[:2]
    want = f"v={version} proto={proto} src={h.join_addr(chost, cport)} dst={listen}"
    assert line == want, f"backend saw {line!r}, expected {want!r}"
    return line


def _real_source(version: str, client_host: str, listen_host: str, backend_host: str) -> str:
    be = ParsingBackend(backend_host)
    lb = h.start_service([be.addr], listen_host=listen_host, proxy_protocol=version)
    vnum = int(version[1])
    proto = "TCP6" if ":" in client_host else "TCP4"
    notes = []

    # A client that sends first: header, then its bytes, unmodified.
    s = connect_from(client_host, lb.listen)
    payload = b"hello, client first\r\n"
    h.send_all(s, payload)
    notes.append(expect_line(s, lb.listen, vnum, proto))
    got = h.recv_exactly(s, len(payload), timeout=3.0)
    assert got == payload, f"payload after the header: {got!r}"
    s.shutdown(socket.SHUT_WR)
    assert h.recv_all(s, timeout=3.0) == b"", "bytes after the echo"
    s.close()

    # A client that waits for the server: the header must come at once, without client bytes.
    s = connect_from(client_host, lb.listen)
    t0 = time.monotonic()
    expect_line(s, lb.listen, vnum, proto)
    dt = time.monotonic() - t0
    assert dt < 1.0, f"header reached the backend only after {dt:.2f}s"
    big = os.urandom(300_000)  # more than a buffer's worth: the bulk path too
    got = bytearray()

    def reader():
        got.extend(h.recv_all(s, timeout=10.0))

    t = threading.Thread(target=reader)
    t.start()
    h.send_all(s, big)
    s.shutdown(socket.SHUT_WR)
    t.join(12)
    assert h.sha256(bytes(got)) == h.sha256(big), f"echo of {len(big)} bytes differs ({len(got)} back)"
    s.close()
    assert not be.bad, f"backend saw bad headers: {be.bad}"
    return notes[0]


# ---------------------------------------------------------------------------- own backend

def test_proxy_v1_ipv4_real_source_client_first_and_server_first():
    return _real_source("v1", "127.0.0.2", "127.0.0.1", "127.0.0.1")


def test_proxy_v2_ipv4_real_source_client_first_and_server_first():
    return _real_source("v2", "127.0.0.2", "127.0.0.1", "127.0.0.1")


def test_proxy_v1_ipv6_real_source():
    if not h.ipv6_available():
        raise h.Skip("::1 not available")
    return _real_source("v1", "::1", "::1", "::1")


def test_proxy_v2_ipv6_real_source():
    if not h.ipv6_available():
        raise h.Skip("::1 not available")
    return _real_source("v2", "::1", "::1", "::1")


def test_proxy_v2_ipv6_client_to_ipv4_backend():
    # The header carries the client's family, whatever the backend connection's family is.
    if not h.ipv6_available():
        raise h.Skip("::1 not available")
    return _real_source("v2", "::1", "::1", "127.0.0.1")


def test_proxy_off_sends_no_header():
    be = ParsingBackend()
    lb = h.start_service([be.addr], proxy_protocol="off")
    s = connect_from("127.0.0.2", lb.listen)
    h.send_all(s, b"hello\n")
    line = h.recv_line(s, timeout=3.0).decode()
    assert line.startswith("bad ") and "first=b'hello" in line, line
    s.close()


def test_proxy_header_once_per_connection_also_after_a_retry():
    be = ParsingBackend()
    dead = h.dead_addr()
    lb = h.start_service([dead, be.addr], retries=1, proxy_protocol="v2",
                         health_check={"type": "none"})
    for i in range(6):  # round robin: every other one tries the dead backend first
        s = connect_from("127.0.0.2", lb.listen)
        expect_line(s, lb.listen, 2, "TCP4")
        h.send_all(s, b"ping\n")
        got = h.recv_exactly(s, 5, timeout=3.0)
        assert got == b"ping\n", f"connection {i}: after the header came {got!r} (a second header?)"
        s.shutdown(socket.SHUT_WR)
        rest = h.recv_all(s, timeout=3.0)
        assert rest == b"", f"connection {i}: extra bytes {rest[:80]!r}"
        s.close()
    assert len(be.headers) == 6, be.headers


def test_proxy_header_not_in_byte_counters():
    be = ParsingBackend()
    admin = f"127.0.0.1:{h.free_port()}"
    for version in ("v1", "v2"):
        lb = h.start_service([be.addr], proxy_protocol=version,
                             global_opts={"admin": {"listen": admin}})
        s = connect_from("127.0.0.2", lb.listen)
        payload = b"0123456789" * 7
        h.send_all(s, payload)
        line = h.recv_line(s, timeout=3.0)
        assert h.recv_exactly(s, len(payload)) == payload
        s.shutdown(socket.SHUT_WR)
        h.recv_all(s, timeout=3.0)
        s.close()
        want_in, want_out = len(payload), len(line) + len(payload)

        want = (want_in, want_out, want_in, want_out)
        last: dict = {}

        def counted():
            try:
                status, body = h.http_get(admin, "/stats")
            except OSError as e:
                last["error"] = f"admin {admin}: {e!r}"
                return False
            svc = json.loads(body)["services"][0]
            b = svc["backends"][0]
            last["got"] = (svc["bytes_in"], svc["bytes_out"], b["bytes_in"], b["bytes_out"])
            return last["got"] == want

        try:
            h.eventually(counted, timeout=3.0)
        except AssertionError:
            h.fail(f"{version}: bytes (service in, out, backend in, out) = {last.get('got')}, "
                   f"want {want} (header counted?); {last.get('error', '')}")
        lb.kill()


# ---------------------------------------------------------------------------- HAProxy

def _start_proc(args: list[str], name: str) -> subprocess.Popen:
    c = h.ctx()
    out = open(os.path.join(c.dir, f"{name}.out"), "wb")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         close_fds=True)
    out.close()
    c.add_proc(p)
    return p


def _proc_output(name: str) -> str:
    try:
        with open(h.tmp_path(f"{name}.out"), "rb") as f:
            return f.read().decode(errors="replace")[-1500:]
    except OSError:
        return ""


def _wait_listening(p: subprocess.Popen, port: int, name: str) -> None:
    def up():
        if p.poll() is not None:
            h.fail(f"{name} exited with {p.returncode}: {_proc_output(name)}")
        return not h.is_port_free(port)

    h.eventually(up, timeout=5.0, msg=f"{name} listening on {port}")


@h.timeout(40)
def test_haproxy_accept_proxy_takes_v1_and_v2():
    if not os.access(HAPROXY, os.X_OK):
        raise h.Skip(f"haproxy not installed ({HAPROXY}); apt-get install haproxy")
    be = ParsingBackend()
    hp_port = h.free_port()
    cfg = h.tmp_path("haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{hp_port} accept-proxy
    default_backend be
backend be
    # HAProxy passes on, as v1, the addresses it took from l4lb's header.
    server parser {be.addr} send-proxy
""")
    chk = subprocess.run([HAPROXY, "-c", "-f", cfg], capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0, f"haproxy -c: {chk.stdout} {chk.stderr}"
    hp = _start_proc([HAPROXY, "-f", cfg, "-db"], "haproxy")
    _wait_listening(hp, hp_port, "haproxy")

    # Control: haproxy refuses a connection without a header (so a pass below means it
    # accepted the header, not that it ignored it).
    s = h.connect(f"127.0.0.1:{hp_port}")
    h.send_all(s, b"hello without a header\n")
    try:
        got = h.recv_all(s, timeout=5.0)
    except ConnectionResetError:
        got = b""
    assert got == b"", f"haproxy passed a connection without a header: {got!r}"
    s.close()

    p1, p2 = h.free_port(), h.free_port()
    hp_addr = f"127.0.0.1:{hp_port}"
    lb = h.start_l4lb(h.config(
        h.service(p1, [hp_addr], name="pp1", proxy_protocol="v1"),
        h.service(p2, [hp_addr], name="pp2", proxy_protocol="v2")))
    for port in (p1, p2):
        listen = f"127.0.0.1:{port}"
        for client_first in (False, True):
            s = connect_from("127.0.0.2", listen)
            if client_first:
                h.send_all(s, b"early bytes\n")
            # What haproxy read from our header, as haproxy's own v1 line tells the parser.
            expect_line(s, listen, 1, "TCP4")
            if client_first:
                assert h.recv_exactly(s, 12) == b"early bytes\n"
            data = os.urandom(100_000)
            h.send_all(s, data)
            s.shutdown(socket.SHUT_WR)
            got = h.recv_all(s, timeout=10.0)
            assert got == data, f"via haproxy: {len(got)} of {len(data)} bytes back, or different"
            s.close()
    assert hp.poll() is None, f"haproxy died: {_proc_output('haproxy')}"
    assert not be.bad, be.bad
    assert lb.alive()


# ---------------------------------------------------------------------------- nginx

@h.timeout(40)
def test_nginx_http_health_check_with_proxy_protocol_keeps_backend_up():
    if not os.access(NGINX, os.X_OK):
        raise h.Skip(f"nginx not installed ({NGINX}); apt-get install nginx-light")
    d = h.tmp_path("nginx")
    os.makedirs(d)
    ng_port = h.free_port()
    conf = os.path.join(d, "nginx.conf")
    temps = "\n".join(f"    {k}_temp_path {d}/{k};" for k in
                      ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
events {{ worker_connections 64; }}
http {{
{temps}
    log_format pp '$proxy_protocol_addr $proxy_protocol_port '
                  '$proxy_protocol_server_addr $proxy_protocol_server_port "$request" $status';
    access_log {d}/access.log pp;
    server {{
        listen 127.0.0.1:{ng_port} proxy_protocol;
        location = /health {{ return 200 "ok\\n"; }}
        location / {{ return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n"; }}
    }}
}}
""")
    args = [NGINX, "-p", d, "-c", conf, "-e", f"{d}/err.log",
            "-g", f"daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/err.log;"]
    chk = subprocess.run(args[:-2] + ["-t"], capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0, f"nginx -t: {chk.stdout} {chk.stderr}"
    ng = _start_proc(args, "nginx")
    _wait_listening(ng, ng_port, "nginx")

    backend = f"127.0.0.1:{ng_port}"
    # A missing or broken header makes nginx close at once ("broken header"), so a short
    # timeout adds nothing but flakes on a loaded machine; thresholds are the defaults.
    hc = {"type": "http", "interval": "300ms", "timeout": "1s", "path": "/health"}
    p1, p2, p3 = h.free_port(), h.free_port(), h.free_port()
    lb = h.start_l4lb(h.config(
        h.service(p1, [backend], name="pp1", proxy_protocol="v1", health_check=hc),
        h.service(p2, [backend], name="pp2", proxy_protocol="v2", health_check=hc),
        # Control: the same nginx without a header must fail its checks.
        h.service(p3, [backend], name="plain", proxy_protocol="off", health_check=hc)))
    lb.wait_for_log(r'msg="backend down".*service=plain\b', timeout=2.0)
    time.sleep(2.0)
    down = [l for l in lb.log_lines() if "backend down" in l and "service=plain" not in l]
    assert not down, f"a backend behind proxy_protocol went down: {down}"

    for port in (p1, p2):
        listen = f"127.0.0.1:{port}"
        s = connect_from("127.0.0.2", listen)
        h.send_all(s, f"GET / HTTP/1.0\r\nHost: {listen}\r\n\r\n".encode())
        data = h.recv_all(s, timeout=3.0)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data[:200]
        want = f"127.0.0.2 {s.getsockname()[1]} 127.0.0.1 {port}"
        assert body.decode().strip() == want, f"nginx saw {body!r}, want {want!r}"
        s.close()

    # The checks' own header: the check socket's addresses (source 127.0.0.1:ephemeral,
    # destination nginx itself).
    with open(os.path.join(d, "access.log")) as f:
        checks = [l.split() for l in f if '"GET /health' in l]
    assert checks, "no health check reached nginx's access log"
    for c in checks:
        assert c[0] == "127.0.0.1" and c[2] == "127.0.0.1" and c[3] == str(ng_port) \
            and c[-1] == "200", f"health check line {' '.join(c)}"
    assert ng.poll() is None, f"nginx died: {_proc_output('nginx')}"
    return f"{len(checks)} checks with a PROXY header answered 200"
