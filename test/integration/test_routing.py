"""Routing on a shared listen address: by TLS server name (SNI passthrough, no decryption)
and after a PROXY header from a front balancer; listen lists; reloads that move names.

Certificates are made at test time with `openssl` (a throwaway CA, one certificate per
backend with its names as SAN dNSName), so every TLS client here verifies the chain and the
name: a client that reached the wrong backend fails its handshake. TLS backends are small
Python servers (TlsBackend) that write "NAME\\n" after the handshake and then answer each
line with "NAME LINE". The service without `sni` is `l4lb-testd --mode id` ("default\\n"
as soon as it is connected), so a client that went there reads a plain line instead of a
TLS record. ClientHellos for the raw-socket cases are Python's own (captured from an
SSLObject over a MemoryBIO, no network), re-encoded where a case needs it: another server
name, split over several TLS records, sent byte by byte, grown past 16 KiB.

Contract: INTERFACE.md "Routing by TLS server name", "PROXY from a front balancer", the
keys listen (list), sni, accept_proxy, global.inspect_timeout, /stats listen_all, sni,
unrouted and the metric l4lb_listener_connections_unrouted_total.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import harness as h
from test_proxy_protocol import ParsingBackend, connect_from

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl") or "/usr/bin/curl"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REASONS = ("no_match", "not_tls", "timeout", "too_large", "bad_proxy", "untrusted_proxy")
RELOAD_RX = re.compile(r'\bmsg="reload (ok|failed)"')
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---------------------------------------------------------------------------- certificates

class Pki:
    """A throwaway CA in the test's temp dir; issue() makes a leaf certificate for names."""

    def __init__(self):
        if not os.access(OPENSSL, os.X_OK):
            raise h.Skip(f"openssl not installed ({OPENSSL}); apt-get install openssl")
        self.dir = h.tmp_path("pki")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.crt")
        self._ca_key = os.path.join(self.dir, "ca.key")
        self._run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", self._ca_key, "-out", self.ca, "-days", "2",
                   "-subj", "/CN=l4lb integration test CA",
                   "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _run(self, args: list[str]) -> None:
        p = subprocess.run([OPENSSL] + args, capture_output=True, text=True, timeout=20,
                           cwd=self.dir)
        if p.returncode != 0:
            h.fail(f"openssl {' '.join(args[:2])} failed: {p.stderr[-500:]}")

    def issue(self, label: str, names: list[str]) -> tuple[str, str]:
        """-> (cert path, key path) of a server certificate for NAMES (SAN dNSName)."""
        crt, key, csr, ext = (os.path.join(self.dir, f"{label}.{x}")
                              for x in ("crt", "key", "csr", "ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
        self._run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}"])
        self._run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self._ca_key,
                   "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                   "-out", crt, "-extfile", ext])
        return crt, key


# ---------------------------------------------------------------------------- TLS backend

class TlsBackend:
    """A TLS server on 127.0.0.1:0 (thread per connection). After the handshake it writes
    "NAME\\n", then answers every line L with "NAME L\\n" until EOF. .accepted counts TCP
    connections (at accept, before any TLS byte); .server_names the SNI each handshake
    carried, as the server's OpenSSL saw it."""

    def __init__(self, name: str, cert: tuple[str, str]):
        self.name = name
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(*cert)
        self.tls.sni_callback = self._on_sni
        self.lock = threading.Lock()
        self.accepted = 0
        self.handshakes = 0
        self.server_names: list[str | None] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        h.ctx().add_sock(self.sock)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.addr = h.join_addr("127.0.0.1", self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _on_sni(self, sslobj, server_name, context) -> None:
        with self.lock:
            self.server_names.append(server_name)

    def count(self) -> int:
        with self.lock:
            return self.accepted

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            h.ctx().add_sock(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.settimeout(15)
            s = self.tls.wrap_socket(c, server_side=True)
            h.ctx().add_sock(s)
            with self.lock:
                self.handshakes += 1
            s.sendall(f"{self.name}\n".encode())
            buf = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                buf += b
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    s.sendall(self.name.encode() + b" " + line + b"\n")
            s.close()
        except (OSError, ssl.SSLError):
            c.close()

    def __repr__(self) -> str:
        return f"TlsBackend({self.name} {self.addr})"


def tls_connect(addr: str, name: str, ca: str, check_hostname: bool = True,
                sock: socket.socket | None = None, timeout: float = 3.0) -> ssl.SSLSocket:
    """A verified TLS connection to NAME through ADDR (SOCK: an already connected socket,
    e.g. one that sent a PROXY header). check_hostname=False still verifies the chain."""
    tls = ssl.create_default_context(cafile=ca)
    tls.check_hostname = check_hostname
    raw = sock or h.connect(addr, timeout=timeout)
    raw.settimeout(timeout)
    s = tls.wrap_socket(raw, server_hostname=name)
    h.ctx().add_sock(s)
    return s


def tls_name(addr: str, name: str, ca: str, check_hostname: bool = True,
             sock: socket.socket | None = None) -> str:
    """Who answered a verified TLS client for NAME: the backend's first line, or what went
    wrong (a client routed to the plain default backend fails its handshake)."""
    try:
        s = tls_connect(addr, name, ca, check_hostname=check_hostname, sock=sock)
    except ssl.SSLError as e:
        return f"<TLS handshake failed: {e}>"
    except OSError as e:
        return f"<{type(e).__name__}: {e}>"
    try:
        return h.recv_line(s, timeout=3.0).decode().rstrip("\n")
    finally:
        s.close()


def tls_exchange(s, line: str) -> str:
    s.sendall(line.encode() + b"\n")
    return h.recv_line(s, timeout=3.0).decode().rstrip("\n")


class PumpedTls:
    """A verifying TLS client run over a raw socket through a MemoryBIO, so the test decides
    how its ClientHello travels: send_hello(sock, wire) gets Python's hello as Python would
    send it and may re-frame and pace it (the handshake transcript covers the handshake
    messages, not their records: the handshake still completes). Then .sendall/.recv."""

    def __init__(self, sock: socket.socket, name: str, ca: str, send_hello) -> None:
        tls = ssl.create_default_context(cafile=ca)
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = tls.wrap_bio(self.inc, self.out, server_hostname=name)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        send_hello(sock, self.out.read())
        self._until(self.obj.do_handshake)

    def _flush(self) -> None:
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _until(self, op, *args):
        deadline = time.monotonic() + 5.0
        while True:
            try:
                r = op(*args)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                left = deadline - time.monotonic()
                if left <= 0:
                    h.fail("TLS over the raw socket: no progress within 5s")
                self.sock.settimeout(left)
                data = self.sock.recv(65536)
                if not data:
                    self.inc.write_eof()
                else:
                    self.inc.write(data)

    def sendall(self, data: bytes) -> None:
        self.obj.write(data)
        self._flush()

    def settimeout(self, t) -> None:
        pass

    def recv(self, n: int) -> bytes:
        return self._until(self.obj.read, n)


# ---------------------------------------------------------------------------- ClientHello bytes

def captured_hello(name: str | None) -> bytes:
    """Python's ClientHello for server name NAME (None: no SNI) as sent on the wire (one TLS
    record), from an SSLObject over a MemoryBIO: no network involved."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    wire = outgoing.read()
    assert wire[:1] == b"\x16" and len(wire) > 100, f"unexpected ClientHello {wire[:16]!r}"
    return wire


def hello_message(wire: bytes) -> bytes:
    """The handshake message (type, 3-byte length, body) carried by the records in WIRE."""
    out, i = bytearray(), 0
    while i < len(wire):
        typ, _ver, n = struct.unpack("!BHH", wire[i:i + 5])
        assert typ == 22, f"record type {typ} in a ClientHello"
        out += wire[i + 5:i + 5 + n]
        i += 5 + n
    return bytes(out)


def records(msg: bytes, cuts: list[int] | tuple = ()) -> bytes:
    """MSG framed as TLS handshake records, a new record at each offset in CUTS."""
    bounds = [0, *cuts, len(msg)]
    out = bytearray()
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        out += b"\x16" + (b"\x03\x01" if k == 0 else b"\x03\x03") + struct.pack("!H", b - a)
        out += msg[a:b]
    return bytes(out)


def _split_hello(msg: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    assert msg[0] == 1, "not a ClientHello"
    body = msg[4:]
    p = 2 + 32
    p += 1 + body[p]                                   # session id
    p += 2 + struct.unpack("!H", body[p:p + 2])[0]     # cipher suites
    p += 1 + body[p]                                   # compression methods
    head = body[:p]
    end = p + 2 + struct.unpack("!H", body[p:p + 2])[0]
    p += 2
    exts = []
    while p < end:
        t, n = struct.unpack("!HH", body[p:p + 4])
        exts.append((t, body[p + 4:p + 4 + n]))
        p += 4 + n
    return head, exts


def _join_hello(head: bytes, exts: list[tuple[int, bytes]]) -> bytes:
    ext = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in exts)
    body = head + struct.pack("!H", len(ext)) + ext
    return b"\x01" + len(body).to_bytes(3, "big") + body


def with_server_name(msg: bytes, name: str | None) -> bytes:
    """MSG with its server_name extension replaced (None: removed), every length fixed."""
    head, exts = _split_hello(msg)
    at = next((i for i, (t, _) in enumerate(exts) if t == 0), 0)
    exts = [(t, d) for t, d in exts if t != 0]
    if name is not None:
        entry = b"\x00" + struct.pack("!H", len(name)) + name.encode()
        exts.insert(at, (0, struct.pack("!H", len(entry)) + entry))
    return _join_hello(head, exts)


def with_extension(msg: bytes, ext_type: int, data: bytes) -> bytes:
    head, exts = _split_hello(msg)
    return _join_hello(head, exts + [(ext_type, data)])


def hello_for(name: str | None) -> bytes:
    """A one-record ClientHello for NAME (any bytes, e.g. a trailing dot), Python's otherwise."""
    return records(with_server_name(hello_message(captured_hello("base.example.test")), name))


def padded_hello(name: str, extra: int) -> bytes:
    """Python's ClientHello for NAME grown by an unknown extension of EXTRA bytes (e.g. a
    post-quantum key share's size), framed in records of at most 16 KiB."""
    msg = with_extension(hello_message(captured_hello(name)), 0xFDE8, os.urandom(extra))
    return records(msg, list(range(16 * 1024, len(msg), 16 * 1024)))


def too_large_hello(name: str = "a.example.test") -> bytes:
    """A ClientHello whose handshake message is 17,500+ bytes (an unknown extension of
    17,000 bytes), in two records: the first full (16 KiB), as a real client would."""
    msg = with_extension(hello_message(captured_hello(name)), 0xFDE8, os.urandom(17_000))
    assert len(msg) - 4 > 16 * 1024
    return records(msg, [16 * 1024])


# ---------------------------------------------------------------------------- PROXY headers

def proxy_v1(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    proto = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {proto} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def proxy_v2(src: tuple[str, int] | None, dst: tuple[str, int] | None = None,
             tlvs: bytes = b"") -> bytes:
    """A v2 PROXY header; src None: a LOCAL command (a front balancer's own check)."""
    if src is None:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    ip = ipaddress.ip_address(src[0])
    fam = 0x11 if ip.version == 4 else 0x21
    body = (ip.packed + ipaddress.ip_address(dst[0]).packed
            + struct.pack("!HH", src[1], dst[1]) + tlvs)
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def tlv(t: int, value: bytes) -> bytes:
    return struct.pack("!BH", t, len(value)) + value


# ---------------------------------------------------------------------------- raw clients

def raw_client(addr: str, data: bytes = b"", timeout: float = 3.0) -> socket.socket:
    s = h.connect(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if data:
        s.sendall(data)
    return s


def first_answer(s: socket.socket, tls_backends: list[TlsBackend], before: dict[str, int],
                 timeout: float = 3.0) -> str:
    """What came back first on S: a plain line ("default"), "tls:NAME" when a TLS record
    came (NAME: the TLS backends whose accepted count rose since BEFORE), or how it closed."""
    s.settimeout(timeout)
    try:
        first = s.recv(1)
    except socket.timeout:
        return "<nothing within %.1fs>" % timeout
    except ConnectionResetError:
        return "<reset>"
    if not first:
        return "<closed>"
    if first in (b"\x15", b"\x16"):  # a TLS alert or handshake record: a TLS server answered
        rose = [b.name for b in tls_backends if b.count() > before.get(b.name, 0)]
        return "tls:" + ",".join(rose)
    return (first + h.recv_line(s, timeout=timeout)).decode(errors="replace").rstrip("\n")


def route_of(addr: str, data: bytes, tls_backends: list[TlsBackend],
             timeout: float = 3.0) -> str:
    before = {b.name: b.count() for b in tls_backends}
    s = raw_client(addr, data)
    try:
        return first_answer(s, tls_backends, before, timeout)
    finally:
        h.reset(s)


def closed_within(s: socket.socket, timeout: float) -> tuple[str, float]:
    """(how, seconds): waits for S to be closed by l4lb ('eof' or 'reset')."""
    t0 = time.monotonic()
    how = h.wait_closed(s, timeout)
    return how, time.monotonic() - t0


def send_slowly(s: socket.socket, data: bytes, step: int = 1, pause: float = 0.001) -> None:
    for i in range(0, len(data), step):
        s.sendall(data[i:i + step])
        time.sleep(pause)


# ---------------------------------------------------------------------------- admin port

def admin_addr(g: dict) -> str:
    addr = f"127.0.0.1:{h.free_port()}"
    g["admin"] = {"listen": addr}
    return addr


def stats(admin: str) -> dict:
    status, body = h.http_get(admin, "/stats", timeout=3.0)
    assert status == 200, f"/stats: {status} {body[:200]!r}"
    return json.loads(body)


def stats_service(st: dict, name: str) -> dict:
    for svc in st.get("services", []):
        if svc.get("name") == name:
            return svc
    h.fail(f"/stats has no service {name}: {[s.get('name') for s in st.get('services', [])]}")


def metrics(admin: str, family: str) -> dict[tuple, float]:
    """{sorted label items: value} for every sample of FAMILY in /metrics."""
    status, body = h.http_get(admin, "/metrics", timeout=3.0)
    assert status == 200, f"/metrics: {status}"
    out = {}
    rx = re.compile(r"^" + re.escape(family) + r"(?:\{(.*)\})?\s+(\S+)\s*$", re.M)
    for m in rx.finditer(body.decode(errors="replace")):
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or "")))
        out[labels] = float(m.group(2))
    return out


def expect_unrouted(admin: str, listen: str, want: dict[str, int], timeout: float = 3.0) -> None:
    """/stats unrouted[LISTEN] and the metric equal WANT exactly (reasons not named: 0)."""
    full = {r: want.get(r, 0) for r in REASONS}
    last: dict = {}

    def same():
        last["stats"] = stats(admin).get("unrouted", {}).get(listen)
        fam = metrics(admin, "l4lb_listener_connections_unrouted_total")
        last["metric"] = {dict(k)["reason"]: int(v) for k, v in fam.items()
                          if dict(k).get("listen") == listen}
        return last["stats"] == full and last["metric"] == full

    try:
        h.eventually(same, timeout=timeout)
    except AssertionError:
        h.fail(f"unrouted counts for {listen}: want {full}, /stats has {last.get('stats')}, "
               f"/metrics has {last.get('metric')}")


# ---------------------------------------------------------------------------- reload

def reload(lb: h.L4lb, cfg: dict) -> float:
    """Writes CFG over lb's config, sends SIGHUP, waits for 'reload ok'; returns the
    monotonic time at which the line was seen."""
    text = h.to_yaml(h.with_workers(cfg))
    tmp = lb.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, lb.config_path)
    off = lb.log_offset()
    lb.signal(signal.SIGHUP)
    line = lb.wait_for_log(RELOAD_RX, timeout=5.0, start=off)
    seen = time.monotonic()
    if "reload ok" not in line:
        time.sleep(0.2)
        text = lb.stderr_text().encode()[off:].decode(errors="replace")
        h.fail(f"reload rejected: {[l for l in text.splitlines() if 'reload' in l]}")
    return seen


def listening_inodes(lb: h.L4lb, port: int) -> set[str]:
    """Inodes of l4lb's own sockets LISTENing on 127.0.0.1:PORT."""
    mine = set()
    for link in lb.fds().values():
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            mine.add(m.group(1))
    out = set()
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            p = row.split()
            if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                out.add(p[9])
    return out & mine


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise h.Skip(f"needs {need} file descriptors, hard RLIMIT_NOFILE is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


# ============================================================================ tests

# ---------------------------------------------------------------------------- 1. real TLS

@h.timeout(30)
def test_sni_routes_real_tls_clients_exact_wildcard_longest_suffix_and_default():
    pki = Pki()
    a = TlsBackend("backend-a", pki.issue("a", ["a.example.test"]))
    wild = TlsBackend("backend-wild", pki.issue("wild", ["*.wild.example.test",
                                                         "x.y.wild.example.test",
                                                         "y.b.wild.example.test"]))
    deep = TlsBackend("backend-deep", pki.issue("deep", ["*.deep.wild.example.test"]))
    x = TlsBackend("backend-x", pki.issue("x", ["x.b.wild.example.test"]))
    tls = [a, wild, deep, x]
    default = h.start_backend("id", name="default")
    listen = f"127.0.0.1:{h.free_port()}"
    lb = h.start_l4lb(h.config(
        h.service(listen, [a.addr], name="a", sni=["a.example.test"]),
        h.service(listen, [wild.addr], name="wild", sni=["*.wild.example.test"]),
        h.service(listen, [deep.addr], name="deep", sni=["*.deep.wild.example.test"]),
        h.service(listen, [x.addr], name="x", sni=["x.b.wild.example.test"]),
        h.service(listen, [default], name="default"),
        inspect_timeout="300ms"))

    # Real clients, each verifying the chain and its name: only the right backend can answer.
    cases = [
        ("a.example.test", "backend-a"),                 # exact
        ("one.wild.example.test", "backend-wild"),       # wildcard, one label
        ("x.y.wild.example.test", "backend-wild"),       # wildcard, several labels
        ("q.deep.wild.example.test", "backend-deep"),    # the longest *.suffix wins
        ("x.b.wild.example.test", "backend-x"),          # exact beats a wildcard
        ("y.b.wild.example.test", "backend-wild"),       # ... only for that exact name
        ("A.Example.Test", "backend-a"),                 # case-insensitive
        ("ONE.Wild.EXAMPLE.test", "backend-wild"),
    ]
    wrong = [f"{n}: {got!r}, want {want!r}" for n, want in cases
             if (got := tls_name(listen, n, pki.ca)) != want]
    assert not wrong, "misrouted TLS clients:\n  " + "\n  ".join(wrong)

    # A trailing dot: Python sends it as given; the chain is verified, the name (with its
    # dot) is not, so the answer says who served it, and the hello reached it unchanged.
    got = tls_name(listen, "A.Example.Test.", pki.ca, check_hostname=False)
    assert got == "backend-a", f"'A.Example.Test.' went to {got!r}, want backend-a"
    with a.lock:
        assert a.server_names[-1] == "A.Example.Test.", \
            f"backend-a saw server name {a.server_names[-1]!r}: the hello was not passed on as sent"

    # What goes to the service without sni: the plain backend answers "default" at once.
    plain = [
        ("hello for wild.example.test (the suffix itself)", hello_for("wild.example.test")),
        ("hello for nomatch.example.test", hello_for("nomatch.example.test")),
        ("hello without a server name", records(hello_message(captured_hello(None)))),
        ("plain HTTP", b"GET / HTTP/1.0\r\n\r\n"),
        ("a 17 KiB ClientHello for a.example.test (too large)", too_large_hello("a.example.test")),
    ]
    wrong = [f"{what}: {got!r}" for what, data in plain
             if (got := route_of(listen, data, tls)) != "default"]
    assert not wrong, "expected the default service:\n  " + "\n  ".join(wrong)

    # A server-speaks-first client (sends nothing): the default service after inspect_timeout.
    s = h.connect(listen)
    t0 = time.monotonic()
    line = h.recv_line(s, timeout=3.0).decode().rstrip("\n")
    dt = time.monotonic() - t0
    s.close()
    assert line == "default", f"silent client got {line!r}"
    assert 0.25 <= dt <= 1.5, f"silent client routed after {dt * 1000:.0f} ms (inspect_timeout 300ms)"

    # Every TLS backend saw exactly its own clients (no stray connect to another one).
    want = {"backend-a": 3, "backend-wild": 4, "backend-deep": 1, "backend-x": 1}
    counts = {b.name: b.count() for b in tls}
    assert counts == want, f"connections per TLS backend {counts}, want {want}"
    assert lb.alive()
    return f"server-speaks-first routed after {dt * 1000:.0f} ms"


# ---------------------------------------------------------------------------- 2. unrouted

@h.timeout(30)
def test_without_default_service_unmatched_clients_are_closed_and_counted_by_reason():
    pki = Pki()
    a = TlsBackend("backend-a", pki.issue("a", ["a.example.test"]))
    wild = TlsBackend("backend-wild", pki.issue("wild", ["*.wild.example.test"]))
    listen = f"127.0.0.1:{h.free_port()}"
    plain_listen = f"127.0.0.1:{h.free_port()}"
    echo = h.start_backend("echo")
    g: dict = {"inspect_timeout": "2s"}
    admin = admin_addr(g)
    lb = h.start_l4lb(h.config(
        h.service(listen, [a.addr], name="a", sni=["a.example.test"]),
        h.service(listen, [wild.addr], name="wild", sni=["*.wild.example.test"]),
        h.service(plain_listen, [echo], name="plain"),
        **g))

    # Every counter exists from the start, 0; a plain address does not inspect: no entry.
    expect_unrouted(admin, listen, {})
    st = stats(admin)
    assert plain_listen not in st.get("unrouted", {}), \
        f"unrouted has an entry for the plain address {plain_listen}: {st.get('unrouted')}"
    assert tls_name(listen, "a.example.test", pki.ca) == "backend-a", "a matching name is routed"

    quick = [  # classified from the bytes: closed well before inspect_timeout
        ("no_match", "a name that matches nothing", hello_for("nomatch.example.test")),
        ("no_match", "the wildcard's suffix itself", hello_for("wild.example.test")),
        ("no_match", "a hello without a server name", records(hello_message(captured_hello(None)))),
        ("not_tls", "plain HTTP", b"GET / HTTP/1.0\r\n\r\n"),
        ("too_large", "a ClientHello of 17 KiB", too_large_hello()),
    ]
    problems = []
    for reason, what, data in quick:
        s = raw_client(listen, data)
        try:
            how, dt = closed_within(s, 3.0)
        except AssertionError as e:
            problems.append(f"{what} ({reason}): {e}")
            continue
        if dt > 1.2:
            problems.append(f"{what} ({reason}): closed only after {dt * 1000:.0f} ms "
                            "(inspect_timeout 2s: not classified from its bytes?)")
    slow = [  # nothing complete within inspect_timeout
        ("timeout", "a client that sends nothing", b""),
        ("timeout", "half a ClientHello, then silence", hello_for("a.example.test")[:200]),
    ]
    for reason, what, data in slow:
        s = raw_client(listen, data)
        try:
            how, dt = closed_within(s, 6.0)
        except AssertionError as e:
            problems.append(f"{what} ({reason}): {e}")
            continue
        if not 1.85 <= dt <= 4.5:
            problems.append(f"{what} ({reason}): closed after {dt * 1000:.0f} ms, "
                            "want about inspect_timeout (2s)")
    assert not problems, "\n  ".join(["unrouted clients:"] + problems)

    expect_unrouted(admin, listen, {"no_match": 3, "not_tls": 1, "timeout": 2, "too_large": 1})
    counts = {b.name: b.count() for b in (a, wild)}
    assert counts == {"backend-a": 1, "backend-wild": 0}, \
        f"an unrouted client reached a backend: connections {counts}"
    st = stats(admin)
    assert set(st["unrouted"]) == {listen}, f"unrouted keys {sorted(st['unrouted'])}, want [{listen}]"
    for name in ("a", "wild"):
        svc = stats_service(st, name)
        assert svc.get("sni") == {"a": ["a.example.test"], "wild": ["*.wild.example.test"]}[name], \
            f"/stats sni of {name}: {svc.get('sni')}"
    plain_svc = stats_service(st, "plain")
    assert plain_svc.get("sni") == [], f"a service without sni: sni {plain_svc.get('sni')}, want []"
    assert plain_svc.get("listen_all") == [plain_listen], \
        f"one listen address: listen_all {plain_svc.get('listen_all')}, want [{plain_listen}]"
    assert lb.alive()


# ---------------------------------------------------------------------------- 3. fragmented hellos

@h.timeout(30)
def test_hello_byte_by_byte_and_over_several_records_is_routed_and_passed_on_unchanged():
    pki = Pki()
    tls_backend = TlsBackend("backend-tls", pki.issue("tls", ["tls.example.test"]))
    target = h.start_backend("digest", name="digest")
    other = h.start_backend("id", name="wild")
    default = h.start_backend("id", name="default")
    listen = f"127.0.0.1:{h.free_port()}"
    lb = h.start_l4lb(h.config(
        h.service(listen, [target], name="a", sni=["a.example.test"]),
        h.service(listen, [tls_backend.addr], name="tls", sni=["tls.example.test"]),
        h.service(listen, [other], name="wild", sni=["*.example.test"]),
        h.service(listen, [default], name="default"),
        inspect_timeout="6s"))

    msg = hello_message(captured_hello("a.example.test"))
    in_name = msg.find(b"a.example.test") + 5  # an offset inside the server name
    assert in_name > 5
    variants = [
        # (what, wire bytes, how to send: "once" | "bytes" | list of send sizes)
        ("one record, 1 byte per send", records(msg), "bytes"),
        ("two records split inside the server name, one send", records(msg, [in_name]), "once"),
        ("two records split inside the server name, 1 byte per send",
         records(msg, [in_name]), "bytes"),
        ("a first record of 1 byte, sends across record boundaries",
         records(msg, [1]), [7, 3, 100]),
        ("records of 64 bytes", records(msg, list(range(64, len(msg), 64))), [300]),
        ("a 15 KB ClientHello (under the 16 KiB bound), one record, in 1,000-byte sends",
         padded_hello("a.example.test", 15_000), [1000] * 14),
        ("a 15 KB ClientHello in two records",
         records(hello_message(padded_hello("a.example.test", 15_000)), [9000]), "once"),
    ]
    problems = []
    notes = []
    for what, wire, how in variants:
        payload = os.urandom(3000)
        s = raw_client(listen)
        t0 = time.monotonic()
        if how == "bytes":
            send_slowly(s, wire)
        elif how == "once":
            s.sendall(wire)
        else:
            i = 0
            for n in how:
                s.sendall(wire[i:i + n])
                i += n
                time.sleep(0.05)
            s.sendall(wire[i:])
        took = time.monotonic() - t0
        if how == "bytes":
            notes.append(f"{len(wire)} bytes one by one in {took * 1000:.0f} ms")
            if took > 5.0:
                h.fail(f"{what}: sending took {took:.1f}s, too close to inspect_timeout (6s) "
                       "for this test to mean anything (machine too slow)")
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        try:
            answer = h.recv_line(s, timeout=5.0).decode().rstrip("\n")
        except AssertionError as e:
            problems.append(f"{what}: {e}")
            continue
        finally:
            s.close()
        sent = wire + payload
        want = f"{len(sent)} {h.sha256(sent)}"
        if answer != want:
            problems.append(f"{what}: backend answered {answer!r}, want {want!r} "
                            "(routed elsewhere, or bytes changed)")
    assert not problems, "\n  ".join(["fragmented ClientHellos:"] + problems)

    # A real TLS client whose hello arrives in pieces: once routed, the rest of the handshake
    # and small messages (far shorter than the hello) flow at once both ways.
    def two_records_byte_by_byte(sock, wire):
        m = hello_message(wire)
        send_slowly(sock, records(m, [m.find(b"tls.example.test") + 3]))

    for what, send_hello in (("hello byte by byte", lambda sock, wire: send_slowly(sock, wire)),
                             ("hello in two records, byte by byte", two_records_byte_by_byte)):
        sock = raw_client(listen)
        try:
            c = PumpedTls(sock, "tls.example.test", pki.ca, send_hello)
            got = [h.recv_line(c, timeout=3.0).decode().rstrip("\n")]
            got += [tls_exchange(c, f"ping {i}") for i in range(3)]
        except (AssertionError, OSError, ssl.SSLError) as e:
            h.fail(f"real TLS client, {what}: {type(e).__name__}: {e}")
        finally:
            sock.close()
        want = ["backend-tls"] + [f"backend-tls ping {i}" for i in range(3)]
        assert got == want, f"real TLS client, {what}: got {got}, want {want}"
    assert lb.alive()
    return "; ".join(notes)


# ---------------------------------------------------------------------------- 4. many idle clients

def _open_idle(listen: str, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        out.append(h.connect(listen, timeout=5.0))
    return out


def _await_all(socks: list[socket.socket], want: bytes | None, timeout: float) -> list[str]:
    """Reads every socket until it has WANT (a line) or, with WANT None, until it is closed.
    Returns problems (empty: all as wanted)."""
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, bytes] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = b""
    left = set(socks)
    deadline = time.monotonic() + timeout
    problems = []
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                b = b""
            got[s] += b
            done = (not b) if want is None else (got[s].endswith(b"\n") or not b)
            if done:
                if want is not None and got[s] != want:
                    problems.append(f"got {got[s]!r}")
                sel.unregister(s)
                left.discard(s)
    sel.close()
    if left:
        problems.append(f"{len(left)} of {len(socks)} clients still waiting after {timeout}s")
    return problems


def _settled_fds(lb: h.L4lb) -> int:
    """l4lb's fd count once two reads 100 ms apart agree (sockets still closing settle)."""
    last = lb.fd_count()
    for _ in range(30):
        time.sleep(0.1)
        now = lb.fd_count()
        if now == last:
            return now
        last = now
    return last


@h.timeout(40)
def test_a_thousand_silent_clients_cost_one_fd_each_then_go_default_or_unrouted():
    n = 1000
    raise_nofile(2 * n + 500)
    default = h.start_backend("id", name="default", stats="127.0.0.1:0")
    named = h.start_backend("id", name="named", stats="127.0.0.1:0")
    with_default = f"127.0.0.1:{h.free_port()}"
    sni_only = f"127.0.0.1:{h.free_port()}"
    g: dict = {"inspect_timeout": "4s"}
    admin = admin_addr(g)
    lb = h.start_l4lb(h.config(
        h.service(with_default, [named], name="named", sni=["a.example.test"]),
        h.service(with_default, [default], name="default"),
        h.service(sni_only, [named], name="only", sni=["b.example.test"]),
        **g))

    # Warm up (the first inspections allocate what every one reuses), then a baseline.
    for _ in range(20):
        assert route_of(with_default, b"GET / HTTP/1.0\r\n\r\n", []) == "default"
        s = raw_client(sni_only, b"GET / HTTP/1.0\r\n\r\n")
        h.wait_closed(s, 2.0)
        s.close()
    time.sleep(0.3)
    notes = []
    for phase, listen in (("default", with_default), ("unrouted", sni_only)):
        base_fds, base_rss = _settled_fds(lb), lb.rss_kib()
        base_accepted = default.counts()["accepted"]
        t0 = time.monotonic()
        clients = _open_idle(listen, n)
        h.eventually(lambda: lb.fd_count() >= base_fds + n, timeout=3.0,
                     msg=f"l4lb holding the {n} clients' sockets (it had {base_fds} fds before)")
        time.sleep(0.2)  # let every accepted client reach its inspector
        fds, rss = lb.fd_count(), lb.rss_kib()
        during = default.counts()
        measured_at = time.monotonic() - t0
        assert measured_at < 3.5, \
            f"measuring took {measured_at:.1f}s, too close to inspect_timeout (4s): machine too slow"
        fd_growth, rss_growth = fds - base_fds, rss - base_rss
        notes.append(f"{phase}: +{fd_growth} fds, +{rss_growth} KiB RSS "
                     f"({rss_growth * 1024 / n:.0f} B/client) for {n} silent clients")
        # One socket per client (the client's own), none towards a backend while inspecting.
        assert fd_growth <= n + 10, f"{phase}: {fd_growth} more fds for {n} silent clients"
        assert during["open"] == 0 and during["accepted"] == base_accepted, \
            f"{phase}: a backend was connected before the route was known: {during}"
        if not h.SANITIZED:
            assert rss_growth <= 2 * n, \
                f"{phase}: RSS grew {rss_growth} KiB for {n} silent clients (> 2 KiB each)"

        # At inspect_timeout: all to the default service, or all closed as unrouted.
        problems = _await_all(clients, b"default\n" if phase == "default" else None,
                              timeout=4.0 + 10.0)
        took = time.monotonic() - t0
        assert not problems, f"{phase}: {len(problems)} problems, e.g. {problems[:5]}"
        for s in clients:
            s.close()
        if phase == "default":
            h.eventually(lambda: default.counts()["accepted"] == base_accepted + n,
                         timeout=3.0, msg=f"{n} connections at the default backend")
        else:
            expect_unrouted(admin, sni_only, {"not_tls": 20, "timeout": n})
        notes.append(f"{phase}: all {n} done {took:.1f}s after the first connect")
        h.eventually(lambda: lb.fd_count() <= base_fds, timeout=5.0,
                     msg=f"l4lb's fds back to the baseline ({base_fds})")
    assert named.counts()["accepted"] == 0, "a silent client reached a named service"
    return "; ".join(notes)


# ---------------------------------------------------------------------------- 5. PROXY in

FAKE4 = ("203.0.113.7", 4242)
DST4 = ("198.51.100.1", 443)
FAKE6 = ("2001:db8::7", 4343)
DST6 = ("2001:db8::1", 8443)


@h.timeout(30)
def test_proxy_header_source_becomes_the_client_and_is_not_passed_on():
    parser = ParsingBackend()
    digest = h.start_backend("digest")
    pp_listen = f"127.0.0.1:{h.free_port()}"
    off_listen = f"127.0.0.1:{h.free_port()}"
    trusted = {"from": ["127.0.0.1/32"]}
    lb = h.start_l4lb(h.config(
        h.service(pp_listen, [parser.addr], name="pp", accept_proxy=trusted, proxy_protocol="v1"),
        h.service(off_listen, [digest], name="off", accept_proxy=trusted),
        inspect_timeout="2s"))

    lhost, lport = h.split_addr(pp_listen)
    cases = [
        ("v1 TCP4", proxy_v1(FAKE4, DST4), "v=1 proto=TCP4 src=203.0.113.7:4242 dst=198.51.100.1:443"),
        ("v2 TCP4", proxy_v2(FAKE4, DST4), "v=1 proto=TCP4 src=203.0.113.7:4242 dst=198.51.100.1:443"),
        ("v2 TCP4 with TLVs", proxy_v2(FAKE4, DST4, tlv(0x02, b"a.example.test") + tlv(0x04, b"")),
         "v=1 proto=TCP4 src=203.0.113.7:4242 dst=198.51.100.1:443"),
        ("v1 TCP6", proxy_v1(FAKE6, DST6),
         "v=1 proto=TCP6 src=[2001:db8::7]:4343 dst=[2001:db8::1]:8443"),
        ("v2 TCP6", proxy_v2(FAKE6, DST6),
         "v=1 proto=TCP6 src=[2001:db8::7]:4343 dst=[2001:db8::1]:8443"),
        ("v2 LOCAL", proxy_v2(None), None),  # the real addresses
    ]
    problems = []
    for what, header, want in cases:
        s = raw_client(pp_listen)
        if want is None:
            want = f"v=1 proto=TCP4 src=127.0.0.1:{s.getsockname()[1]} dst={pp_listen}"
        payload = f"payload after {what}\n".encode()
        s.sendall(header + payload)
        try:
            line = h.recv_line(s, timeout=3.0).decode().rstrip("\n")
            if line != want:
                problems.append(f"{what}: backend got header {line!r}, want {want!r}")
                continue
            echo = h.recv_exactly(s, len(payload), timeout=3.0)
            if echo != payload:  # the incoming header would show up here
                problems.append(f"{what}: bytes after the header {echo!r}, want {payload!r}")
        except AssertionError as e:
            problems.append(f"{what}: {e}")
        finally:
            s.close()
    assert not problems, "\n  ".join(["PROXY header towards the backend:"] + problems)

    # A header that arrives byte by byte; after it, messages far shorter than the header
    # flow at once (nothing waits for more bytes than the client sends).
    for what, header in (("v1", proxy_v1(FAKE4, DST4)), ("v2", proxy_v2(FAKE6, DST6))):
        s = raw_client(pp_listen)
        send_slowly(s, header)
        line = h.recv_line(s, timeout=3.0).decode().rstrip("\n")
        assert line.startswith("v=1 proto=TCP"), f"{what} byte by byte: backend got {line!r}"
        for i in range(3):
            s.sendall(b"%d\n" % i)
            got = h.recv_exactly(s, 2, timeout=2.0)
            assert got == b"%d\n" % i, f"{what} byte by byte, exchange {i}: {got!r}"
        s.close()
    assert not parser.bad, f"the backend saw bad headers: {parser.bad}"

    # proxy_protocol off: the backend receives the payload only, byte for byte; the header
    # may come in pieces (byte by byte here) and in the same segment as the payload.
    for what, header, slow in (("v1", proxy_v1(FAKE4, DST4), True),
                               ("v2", proxy_v2(FAKE6, DST6), False)):
        payload = os.urandom(5000)
        s = raw_client(off_listen)
        if slow:
            send_slowly(s, header)
            s.sendall(payload)
        else:
            s.sendall(header + payload)
        s.shutdown(socket.SHUT_WR)
        answer = h.recv_line(s, timeout=3.0).decode().rstrip("\n")
        s.close()
        want = f"{len(payload)} {h.sha256(payload)}"
        assert answer == want, f"{what}: backend received {answer!r}, want {want!r} (the payload only)"
    assert lb.alive()


def _name_via_proxy(listen: str, src: tuple[str, int]) -> str:
    s = raw_client(listen, proxy_v1(src, ("127.0.0.1", h.split_addr(listen)[1])))
    try:
        return h.recv_line(s, timeout=3.0).decode().rstrip("\n")
    finally:
        s.close()


def _name_from(src_host: str, listen: str) -> str:
    s = connect_from(src_host, listen)
    try:
        return h.recv_line(s, timeout=3.0).decode().rstrip("\n")
    finally:
        s.close()


@h.timeout(30)
def test_hash_algorithms_choose_by_the_proxy_header_source():
    backends = [h.start_backend("id", name=f"h{i}") for i in range(4)]
    trusted = {"from": ["127.0.0.1/32"]}
    p_consistent, p_direct, p_ip = (f"127.0.0.1:{h.free_port()}" for _ in range(3))
    lb = h.start_l4lb(h.config(
        h.service(p_consistent, backends, name="pp_consistent", algorithm="consistent_hash",
                  accept_proxy=trusted),
        h.service(p_direct, backends, name="direct_consistent", algorithm="consistent_hash"),
        h.service(p_ip, backends, name="pp_ip", algorithm="ip_hash", accept_proxy=trusted),
        inspect_timeout="2s"))
    sources = [f"127.0.0.{i}" for i in range(2, 18)]

    # consistent_hash: the choice depends only on the client address and the backends, so a
    # fake source in a header must land where a real client from that address lands.
    mismatch, chosen = [], {}
    for i, src in enumerate(sources):
        via_header = {_name_via_proxy(p_consistent, (src, 1000 + 7 * i + k)) for k in range(3)}
        direct = _name_from(src, p_direct)
        chosen[src] = direct
        if via_header != {direct}:
            mismatch.append(f"{src}: via header {sorted(via_header)}, direct {direct}")
    assert not mismatch, "consistent_hash did not follow the header's source:\n  " + \
        "\n  ".join(mismatch)
    assert len(set(chosen.values())) >= 2, \
        f"16 sources all on one backend ({chosen}): the hash cannot be told from a constant"

    # ip_hash: the same fake source always on the same backend; sources spread (all these
    # connections come from the same real address, 127.0.0.1).
    ip_map = {}
    for i, src in enumerate(sources):
        seen = {_name_via_proxy(p_ip, (src, 2000 + i * 3 + k)) for k in range(3)}
        assert len(seen) == 1, f"ip_hash: fake source {src} went to {sorted(seen)}"
        ip_map[src] = seen.pop()
    assert len(set(ip_map.values())) >= 2, \
        f"ip_hash put 16 different header sources on one backend: {ip_map} (the real source used?)"
    assert lb.alive()
    return f"consistent: {sorted(set(chosen.values()))}, ip_hash: {sorted(set(ip_map.values()))}"


@h.timeout(30)
def test_proxy_untrusted_peer_bad_header_and_silence_are_closed_and_counted():
    parser = ParsingBackend()
    listen = f"127.0.0.1:{h.free_port()}"
    g: dict = {"inspect_timeout": "2s"}
    admin = admin_addr(g)
    lb = h.start_l4lb(h.config(
        h.service(listen, [parser.addr], name="pp", proxy_protocol="v1",
                  accept_proxy={"from": ["127.0.0.1/32"]}),
        **g))
    expect_unrouted(admin, listen, {})

    problems = []

    def check(what: str, s: socket.socket, data: bytes, lo: float, hi: float) -> None:
        try:
            if data:
                s.sendall(data)
        except OSError:
            pass  # already closed at accept: fine
        try:
            how, dt = closed_within(s, 6.0)
        except AssertionError as e:
            problems.append(f"{what}: {e}")
            return
        finally:
            s.close()
        if not lo <= dt <= hi:
            problems.append(f"{what}: closed after {dt * 1000:.0f} ms, want {lo * 1000:.0f}.."
                            f"{hi * 1000:.0f} ms")

    # A peer outside `from` is closed at accept, whatever it sends.
    check("untrusted peer, silent", connect_from("127.0.0.2", listen), b"", 0, 1.0)
    check("untrusted peer with a valid header", connect_from("127.0.0.2", listen),
          proxy_v1(FAKE4, DST4), 0, 1.0)
    # Not a PROXY header: closed as soon as that is clear.
    check("plain HTTP", raw_client(listen), b"GET / HTTP/1.0\r\n\r\n", 0, 1.2)
    check("a bad v1 line", raw_client(listen), b"PROXY TCP4 not-an-address 1.2.3.4 1 2\r\n", 0, 1.2)
    check("a v2 header of version 3", raw_client(listen),
          V2_SIG + bytes([0x31, 0x11]) + struct.pack("!H", 12) + bytes(12), 0, 1.2)
    # Nothing (or only part of a header) within inspect_timeout.
    check("silent", raw_client(listen), b"", 1.85, 4.5)
    check("half a header", raw_client(listen), proxy_v1(FAKE4, DST4)[:15], 1.85, 4.5)
    assert not problems, "\n  ".join(["PROXY clients that must be closed:"] + problems)

    expect_unrouted(admin, listen, {"untrusted_proxy": 2, "bad_proxy": 3, "timeout": 2})
    assert parser.headers == [] and parser.bad == [], \
        f"a rejected client reached the backend: headers {parser.headers}, bad {parser.bad}"
    # And a good one still goes through.
    assert _name_via_proxy(listen, FAKE4).startswith("v=1 proto=TCP4 src=203.0.113.7:4242")
    assert lb.alive()


@h.timeout(30)
def test_proxy_header_then_client_hello_on_one_address():
    pki = Pki()
    a = TlsBackend("backend-a", pki.issue("a", ["a.example.test"]))
    default = h.start_backend("id", name="default")
    listen = f"127.0.0.1:{h.free_port()}"
    trusted = {"from": ["127.0.0.1/32"]}
    g: dict = {"inspect_timeout": "2s"}
    admin = admin_addr(g)
    lb = h.start_l4lb(h.config(
        h.service(listen, [a.addr], name="a", sni=["a.example.test"], accept_proxy=trusted),
        h.service(listen, [default], name="default", accept_proxy=trusted),
        **g))

    problems = []
    for what, header in (("v1", proxy_v1(FAKE4, DST4)), ("v2", proxy_v2(FAKE6, DST6))):
        s = raw_client(listen, header)
        got = tls_name(listen, "a.example.test", pki.ca, sock=s)
        if got != "backend-a":
            problems.append(f"{what} header, then a real TLS client: {got!r}")
    got = route_of(listen, proxy_v2(FAKE4, DST4) + hello_for("a.example.test"), [a])
    if got != "tls:backend-a":
        problems.append(f"header and hello in one segment: {got!r}")
    got = route_of(listen, proxy_v1(FAKE4, DST4) + b"GET / HTTP/1.0\r\n\r\n", [a])
    if got != "default":
        problems.append(f"header, then plain HTTP: {got!r}, want default")
    got = route_of(listen, proxy_v1(FAKE4, DST4) + hello_for("other.example.test"), [a])
    if got != "default":
        problems.append(f"header, then a hello for another name: {got!r}, want default")
    assert not problems, "\n  ".join(["PROXY + SNI:"] + problems)

    # inspect_timeout (2s) counts from accept for the header and the hello together: header
    # at 1.0 s and a hello complete at 1.4 s is routed; one complete only at 2.6 s is not.
    hello = hello_for("a.example.test")
    for when_done, want in ((1.4, "tls:backend-a"), (2.6, "default")):
        before = {a.name: a.count()}
        s = raw_client(listen)
        t0 = time.monotonic()
        time.sleep(1.0)
        s.sendall(proxy_v1(FAKE4, DST4) + hello[:100])
        time.sleep(max(0.0, when_done - (time.monotonic() - t0)))
        try:
            s.sendall(hello[100:])
        except OSError:
            pass
        got = first_answer(s, [a], before, timeout=3.0)
        h.reset(s)
        assert got == want, f"header at 1.0s, hello complete at {when_done}s: {got!r}, want {want!r}"

    # Without a header first, a ClientHello is not a PROXY header.
    s = raw_client(listen, hello)
    how, dt = closed_within(s, 3.0)
    s.close()
    assert dt < 1.2, f"a hello without a header closed after {dt * 1000:.0f} ms"
    expect_unrouted(admin, listen, {"bad_proxy": 1})
    assert lb.alive()


# ---------------------------------------------------------------------------- 6. listen lists

def _echo(s: socket.socket, payload: bytes) -> None:
    s.sendall(payload)
    got = h.recv_exactly(s, len(payload), timeout=3.0)
    assert got == payload, f"echo: sent {payload!r}, got {got!r}"


@h.timeout(30)
def test_listen_list_serves_every_address_and_reload_keeps_the_unchanged_one():
    echo = h.start_backend("echo")
    p1, p2, p3 = h.free_port(), h.free_port(), h.free_port()
    l1, l2, l3 = (f"127.0.0.1:{p}" for p in (p1, p2, p3))
    g: dict = {}
    admin = admin_addr(g)

    def cfg(listens):
        return h.config(h.service(listens, [echo], name="multi"), **g)

    lb = h.start_l4lb(cfg([l1, l2]))
    for l in (l1, l2):
        s = h.connect(l)
        _echo(s, f"via {l}\n".encode())
        s.close()
    svc = stats_service(stats(admin), "multi")
    assert svc.get("listen") == l1, f"/stats listen {svc.get('listen')!r}, want the first, {l1}"
    assert svc.get("listen_all") == [l1, l2], f"/stats listen_all {svc.get('listen_all')}"
    inodes = listening_inodes(lb, p1)
    assert len(inodes) >= 1, f"no listening socket of l4lb found on {p1}"

    held1, held2 = h.connect(l1), h.connect(l2)
    _echo(held1, b"before 1\n")
    _echo(held2, b"before 2\n")

    # New connections on P1 all the time, across the reload: none may fail.
    stop = threading.Event()
    failures: list[str] = []
    done = [0]

    def hammer():
        while not stop.is_set():
            try:
                s = h.connect(l1, timeout=3.0, track=False)
                try:
                    _echo(s, b"x\n")
                finally:
                    s.close()
                done[0] += 1
            except (AssertionError, OSError) as e:
                failures.append(f"{type(e).__name__}: {e}")
            time.sleep(0.005)

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    time.sleep(0.3)
    reload(lb, cfg([l1, l3]))
    time.sleep(0.5)
    stop.set()
    t.join(5)
    assert not failures, f"{len(failures)} of {done[0] + len(failures)} connections on {l1} " \
        f"failed across the reload: {failures[:3]}"

    assert listening_inodes(lb, p1) == inodes, f"{l1}'s listening socket was replaced"
    _echo(held1, b"after 1\n")
    _echo(held2, b"after 2\n")  # its address went away, the connection runs on
    h.eventually(lambda: h.is_port_free(p2), timeout=3.0, msg=f"{l2} refusing after the reload")
    s = h.connect(l3)
    _echo(s, b"via the new address\n")
    s.close()
    svc = stats_service(stats(admin), "multi")
    assert svc.get("listen") == l1 and svc.get("listen_all") == [l1, l3], \
        f"/stats after the reload: listen {svc.get('listen')!r}, listen_all {svc.get('listen_all')}"
    return f"{done[0]} connections on {l1} across the reload, none failed"


# ---------------------------------------------------------------------------- 7. reload moves a name

@h.timeout(30)
def test_reload_moving_a_name_keeps_open_connections_and_sends_new_ones_to_the_new_service():
    pki = Pki()
    one = TlsBackend("one", pki.issue("one", ["move.example.test", "stay.example.test"]))
    two = TlsBackend("two", pki.issue("two", ["move.example.test", "other.example.test"]))
    listen = f"127.0.0.1:{h.free_port()}"

    def cfg(one_names, two_names):
        return h.config(h.service(listen, [one.addr], name="s1", sni=one_names),
                        h.service(listen, [two.addr], name="s2", sni=two_names),
                        inspect_timeout="1s")

    lb = h.start_l4lb(cfg(["move.example.test"], ["other.example.test"]))
    held = tls_connect(listen, "move.example.test", pki.ca)
    assert h.recv_line(held).decode() == "one\n"
    assert tls_exchange(held, "ping 1") == "one ping 1"

    # Across the reload: the open connection keeps talking, new connections keep succeeding.
    stop = threading.Event()
    errors: list[str] = []
    talk = [0]
    fresh: list[tuple[float, str]] = []

    def keep_talking(s):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                got = tls_exchange(s, f"bg {i}")
                if got != f"one bg {i}":
                    errors.append(f"held connection answered {got!r}")
                talk[0] += 1
            except (AssertionError, OSError) as e:
                errors.append(f"held connection: {type(e).__name__}: {e}")
                return
            time.sleep(0.01)

    def keep_connecting():
        while not stop.is_set():
            t0 = time.monotonic()
            fresh.append((t0, tls_name(listen, "move.example.test", pki.ca)))
            time.sleep(0.01)

    bg = tls_connect(listen, "move.example.test", pki.ca)
    assert h.recv_line(bg).decode() == "one\n"
    threads = [threading.Thread(target=keep_talking, args=(bg,), daemon=True),
               threading.Thread(target=keep_connecting, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    reloaded_at = reload(lb, cfg(["stay.example.test"], ["other.example.test", "move.example.test"]))
    time.sleep(0.6)
    stop.set()
    for t in threads:
        t.join(5)

    assert not errors, f"the connection held across the reload: {errors[:3]}"
    assert tls_exchange(held, "ping 2") == "one ping 2", "the first held connection changed"
    bad = [a for _, a in fresh if a not in ("one", "two")]
    assert not bad, f"{len(bad)} of {len(fresh)} new connections failed around the reload: {bad[:3]}"
    # The reload is in force once logged (the workers are stopped for the swap before the
    # line is written): a connection started after that sees the new routes.
    late = [(round(t - reloaded_at, 3), a) for t, a in fresh if t > reloaded_at and a != "two"]
    assert not late, f"new connections after the reload still on the old service: {late[:5]}"
    assert tls_name(listen, "move.example.test", pki.ca) == "two"
    assert tls_name(listen, "stay.example.test", pki.ca) == "one"
    assert tls_name(listen, "other.example.test", pki.ca) == "two"
    held.close()
    bg.close()
    before = sum(1 for t, _ in fresh if t < reloaded_at)
    return f"{talk[0]} exchanges on the held connection; {before} new connections before, " \
           f"{len(fresh) - before} after the reload"


# ---------------------------------------------------------------------------- 8. curl, openssl, nginx

@h.timeout(40)
def test_curl_and_openssl_s_client_reach_two_nginx_tls_servers_by_name():
    for tool in (NGINX, CURL, OPENSSL):
        if not os.access(tool, os.X_OK):
            raise h.Skip(f"{tool} not installed (apt-get install nginx-light curl openssl)")
    pki = Pki()
    certs = {"a": pki.issue("nginx-a", ["a.example.test"]),
             "b": pki.issue("nginx-b", ["b.example.test"])}
    ports = {"a": h.free_port(), "b": h.free_port()}
    d = h.tmp_path("nginx")
    os.makedirs(d)
    temps = "\n".join(f"    {k}_temp_path {d}/{k};" for k in
                      ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    servers = "".join(f"""
    server {{
        listen 127.0.0.1:{ports[k]} ssl;
        ssl_certificate {certs[k][0]};
        ssl_certificate_key {certs[k][1]};
        location / {{ return 200 "nginx-{k}\\n"; }}
    }}""" for k in ("a", "b"))
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
events {{ worker_connections 64; }}
http {{
{temps}
    access_log off;
    default_type text/plain;{servers}
}}
""")
    args = [NGINX, "-p", d, "-c", conf, "-e", f"{d}/err.log",
            "-g", f"daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/err.log;"]
    chk = subprocess.run(args[:-2] + ["-t"], capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0, f"nginx -t: {chk.stdout} {chk.stderr}"
    out = open(os.path.join(d, "nginx.out"), "wb")
    ng = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                          close_fds=True)
    out.close()
    h.ctx().add_proc(ng)
    for port in ports.values():
        h.eventually(lambda: ng.poll() is None and not h.is_port_free(port), timeout=5.0,
                     msg=f"nginx listening on {port}")

    port = h.free_port()
    listen = f"127.0.0.1:{port}"
    lb = h.start_l4lb(h.config(
        h.service(listen, [f"127.0.0.1:{ports['a']}"], name="a", sni=["a.example.test"]),
        h.service(listen, [f"127.0.0.1:{ports['b']}"], name="b", sni=["b.example.test"])))

    for k in ("a", "b"):
        name = f"{k}.example.test"
        c = subprocess.run([CURL, "-sS", "--max-time", "5", "--resolve", f"{name}:{port}:127.0.0.1",
                            "--cacert", pki.ca, f"https://{name}:{port}/"],
                           capture_output=True, text=True, timeout=10)
        assert c.returncode == 0 and c.stdout == f"nginx-{k}\n", \
            f"curl https://{name}:{port}/: exit {c.returncode}, out {c.stdout!r}, err {c.stderr!r}"
        o = subprocess.run([OPENSSL, "s_client", "-connect", listen, "-servername", name,
                            "-CAfile", pki.ca, "-verify_return_error", "-verify_hostname", name,
                            "-ign_eof"],
                           input=f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n",
                           capture_output=True, text=True, timeout=10)
        assert o.returncode == 0, f"openssl s_client {name}: exit {o.returncode}: {o.stderr[-400:]}"
        assert "Verify return code: 0 (ok)" in o.stdout, \
            f"openssl s_client {name}: not verified: {o.stdout[-600:]}"
        assert f"nginx-{k}\n" in o.stdout and f"nginx-{'b' if k == 'a' else 'a'}" not in o.stdout, \
            f"openssl s_client {name}: page {o.stdout[-300:]!r}"
    # A name neither serves: no default service here, so curl gets no TLS answer at all.
    c = subprocess.run([CURL, "-sS", "--max-time", "5", "--resolve", f"c.example.test:{port}:127.0.0.1",
                        "--cacert", pki.ca, f"https://c.example.test:{port}/"],
                       capture_output=True, text=True, timeout=10)
    assert c.returncode != 0 and c.stdout == "", f"curl for an unknown name: {c.returncode} {c.stdout!r}"
    assert ng.poll() is None, "nginx died"
    assert lb.alive()
