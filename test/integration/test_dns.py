"""Backends from DNS (issue 18): resolve: true and srv entries looked up in the background
through dns.servers, against a real DNS server (dnsmasq, started here on a free loopback
port with its own hosts file and --srv-host lines; SIGHUP re-reads the hosts file)."""

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

DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
RELOAD_RX = re.compile(r'\bmsg="reload (ok|failed)"')


# ---------------------------------------------------------------------------- helpers

class Dns:
    """dnsmasq in the foreground on 127.0.0.1:PORT answering from its own hosts file."""

    def __init__(self, hosts: list[str], srv: list[str] | None = None, ttl: int = 1):
        if not DNSMASQ:
            raise h.Skip("dnsmasq not installed (Debian: dnsmasq-base; scripts/install-deps.sh --test)")
        c = h.ctx()
        n = c.next_id()
        self.hosts_path = os.path.join(c.dir, f"dns-{n}.hosts")
        self.set_hosts(hosts, reload=False)
        self.port = h.free_port()
        self.addr = f"127.0.0.1:{self.port}"
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", f"--addn-hosts={self.hosts_path}",
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--local-ttl={ttl}", "--local=/test/", "--cache-size=0",
                f"--pid-file={os.path.join(c.dir, f'dns-{n}.pid')}",
                f"--log-facility={os.path.join(c.dir, f'dns-{n}.log')}"]
        if os.geteuid() == 0:
            args.append("--user=root")  # the hosts file sits in a 0700 temp dir
        for s in srv or []:
            args.append(f"--srv-host={s}")
        errf = open(os.path.join(c.dir, f"dns-{n}.stderr"), "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                     close_fds=True)
        errf.close()
        c.add_proc(self.proc)
        # Ready once it answers on TCP (it binds UDP and TCP together).
        def up():
            if self.proc.poll() is not None:
                h.fail(f"dnsmasq exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        h.eventually(up, timeout=5)

    def set_hosts(self, lines: list[str], reload: bool = True) -> None:
        tmp = self.hosts_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        os.replace(tmp, self.hosts_path)
        if reload:
            os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)


def _dns_global(servers: list[str], admin_port: int, **dns) -> dict:
    d = {"servers": servers, "min_ttl": "1s", "max_ttl": "2s", "timeout": "500ms"}
    d.update(dns)
    return {"admin": {"listen": f"127.0.0.1:{admin_port}"}, "dns": d}


def _start(backends: list, dns_servers: list[str], algorithm: str = "round_robin",
           wait_ready: bool = True, dns: dict | None = None, **svc):
    admin_port = h.free_port()
    port = h.free_port()
    cfg = h.config(h.service(port, backends, algorithm=algorithm, **svc),
                   **_dns_global(dns_servers, admin_port, **(dns or {})))
    lb = h.start_l4lb(cfg, wait_ready=wait_ready)
    lb.listen = f"127.0.0.1:{port}"
    lb.admin = f"127.0.0.1:{admin_port}"
    return lb


def _get(admin: str, path: str) -> tuple[int, bytes]:
    return h.http_get(admin, path, timeout=3.0)


def _stats_backends(lb, service: str = "web") -> list[dict]:
    status, body = _get(lb.admin, "/stats")
    assert status == 200, body
    for s in json.loads(body)["services"]:
        if s["name"] == service:
            return s["backends"]
    h.fail(f"no service {service} in /stats")


def _addresses(lb, service: str = "web") -> set[str]:
    return {b["address"] for b in _stats_backends(lb, service)}


def _metric(lb, name: str, labels: dict) -> float | None:
    status, body = _get(lb.admin, "/metrics")
    for line in body.decode().splitlines():
        m = re.match(re.escape(name) + r"\{([^}]*)\}\s+(\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


def _name_via(addr: str) -> str:
    s = h.connect(addr, timeout=2.0)
    line = h.recv_line(s, timeout=2.0).decode().rstrip("\n")
    s.close()
    return line


def _wait_addresses(lb, want: set[str], timeout: float = 6.0, service: str = "web") -> None:
    last: list = []

    def check():
        last[:] = [sorted(_addresses(lb, service))]
        return last[0] == sorted(want)
    try:
        h.eventually(check, timeout=timeout, msg=f"/stats backends == {sorted(want)}")
    except h.TestFailure as e:
        h.fail(f"{e}; last seen {last}")


def _udp_query(server: str, name: str, qtype: int = 1) -> bytes:
    """One DNS query over UDP (no EDNS, so at most 512 bytes); returns the raw answer."""
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2.0)
        host, port = h.split_addr(server)
        s.sendto(q, (host, port))
        return s.recv(65535)
    finally:
        s.close()


def _id_backends(hosts: list[str], port: int) -> list:
    return [h.start_backend("id", name=host, listen=f"{host}:{port}") for host in hosts]


def _free_port_on(hosts: list[str]) -> int:
    for _ in range(50):
        port = h.free_port()
        ok = True
        for host in hosts:
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            try:
                s.bind((host, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    h.fail("no port free on every address")


# ---------------------------------------------------------------------------- tests

def test_dns_addresses_added_and_removed_while_traffic_runs():
    port = _free_port_on(["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    _id_backends(["127.0.0.11", "127.0.0.12", "127.0.0.13"], port)
    dns = Dns(["127.0.0.11 app.test"])
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr])
    lb.wait_for_log(rf'msg="dns changed" service=web name=app.test added=127.0.0.11:{port} removed=""')
    _wait_addresses(lb, {f"127.0.0.11:{port}"})
    b = _stats_backends(lb)[0]
    assert b["resolved_from"] == "app.test", b
    assert _name_via(lb.listen) == "127.0.0.11"

    # A connection held open on the address that goes away.
    held = h.connect(lb.listen, timeout=2.0)
    assert h.recv_line(held, timeout=2.0) == b"127.0.0.11\n"

    errors: list[str] = []
    seen: list[tuple[float, str]] = []  # (when the exchange began, backend reached)
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            began = time.monotonic()
            try:
                seen.append((began, _name_via(lb.listen)))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            time.sleep(0.01)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        off = lb.log_offset()
        dns.set_hosts(["127.0.0.12 app.test", "127.0.0.13 app.test"])
        lb.wait_for_log(rf'msg="dns changed" service=web name=app.test '
                        rf'added=127.0.0.12:{port},127.0.0.13:{port} removed=127.0.0.11:{port}',
                        timeout=6, start=off)
        _wait_addresses(lb, {f"127.0.0.12:{port}", f"127.0.0.13:{port}"})
        changed = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(5)
    assert not errors, f"clients failed during the change: {errors[:5]}"
    # Exchanges that began after the change (one begun before may still end at .11 on a slow run).
    after = {name for began, name in seen if began > changed}
    assert after == {"127.0.0.12", "127.0.0.13"}, f"after the change, clients reached {after}"
    # The held connection ran on: it is still open, and ends normally when the client does.
    h.send_all(held, b"still here", timeout=2.0)
    held.shutdown(socket.SHUT_WR)
    assert h.wait_closed(held, 3.0) == "eof"

    # Added back: the same backend again.
    dns.set_hosts(["127.0.0.11 app.test", "127.0.0.12 app.test", "127.0.0.13 app.test"])
    _wait_addresses(lb, {f"127.0.0.11:{port}", f"127.0.0.12:{port}", f"127.0.0.13:{port}"})
    assert (_metric(lb, "l4lb_dns_lookups_total", {"service": "web", "name": "app.test", "result": "success"}) or 0) >= 3


def test_dns_unchanged_answers_rebuild_nothing_and_keep_backend_state():
    port = _free_port_on(["127.0.0.11", "127.0.0.12"])
    _id_backends(["127.0.0.11", "127.0.0.12"], port)
    dns = Dns(["127.0.0.11 app.test", "127.0.0.12 app.test"])
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr],
                health_check={"type": "tcp", "interval": "200ms"})
    _wait_addresses(lb, {f"127.0.0.11:{port}", f"127.0.0.12:{port}"})
    for _ in range(10):
        _name_via(lb.listen)
    before = {b["address"]: b for b in _stats_backends(lb)}
    ok0 = _metric(lb, "l4lb_dns_lookups_total", {"name": "app.test", "result": "success"})
    time.sleep(3.2)  # at least two more lookups (ttl 1s), same answer
    ok1 = _metric(lb, "l4lb_dns_lookups_total", {"name": "app.test", "result": "success"})
    assert ok1 - ok0 >= 2, (ok0, ok1)
    assert lb.stderr_text().count('msg="dns changed"') == 1, lb.stderr_text()
    after = {b["address"]: b for b in _stats_backends(lb)}
    for a, b in before.items():
        assert after[a]["total_connections"] == b["total_connections"], (before, after)
        assert after[a]["state"] == "up", after[a]


def test_dns_ttl_bounds():
    port = _free_port_on(["127.0.0.11", "127.0.0.12"])
    _id_backends(["127.0.0.11", "127.0.0.12"], port)
    # TTL 0 with min_ttl 1s: about one lookup a second, not a storm.
    low = Dns(["127.0.0.11 low.test"], ttl=0)
    # TTL 1 hour with max_ttl 2s: a change is seen within ~2s anyway.
    high = Dns(["127.0.0.11 high.test"], ttl=3600)
    admin_port = h.free_port()
    p1, p2 = h.free_port(), h.free_port()
    cfg = {"global": {"admin": {"listen": f"127.0.0.1:{admin_port}"}, "drain_timeout": "2s"},
           "services": [
               h.service(p1, [{"address": f"low.test:{port}", "resolve": True}], name="low"),
               h.service(p2, [{"address": f"high.test:{port}", "resolve": True}], name="high")]}
    # One resolver per process: two configs, one per server.
    cfg_low = json.loads(json.dumps(cfg))
    cfg_low["services"] = cfg_low["services"][:1]
    cfg_low["global"]["dns"] = {"servers": [low.addr], "min_ttl": "1s", "max_ttl": "2s", "timeout": "500ms"}
    lb = h.start_l4lb(cfg_low)
    lb.admin = f"127.0.0.1:{admin_port}"
    lb.wait_for_log(r'msg="dns changed" service=low')
    n0 = _metric(lb, "l4lb_dns_lookups_total", {"name": "low.test", "result": "success"})
    time.sleep(4.0)
    n1 = _metric(lb, "l4lb_dns_lookups_total", {"name": "low.test", "result": "success"})
    assert 3 <= n1 - n0 <= 5, f"TTL 0 clamped to min_ttl 1s: {n1 - n0} lookups in 4s"

    admin2 = h.free_port()
    cfg_high = json.loads(json.dumps(cfg))
    cfg_high["services"] = cfg_high["services"][1:]
    cfg_high["global"]["admin"] = {"listen": f"127.0.0.1:{admin2}"}
    cfg_high["global"]["dns"] = {"servers": [high.addr], "min_ttl": "1s", "max_ttl": "2s", "timeout": "500ms"}
    lb2 = h.start_l4lb(cfg_high)
    lb2.admin = f"127.0.0.1:{admin2}"
    _wait_addresses(lb2, {f"127.0.0.11:{port}"}, service="high")
    high.set_hosts(["127.0.0.12 high.test"])
    t0 = time.monotonic()
    _wait_addresses(lb2, {f"127.0.0.12:{port}"}, timeout=5.0, service="high")
    took = time.monotonic() - t0
    assert took < 3.0, f"TTL 3600 clamped to max_ttl 2s, yet the change took {took:.1f}s"
    n = _metric(lb2, "l4lb_dns_lookups_total", {"name": "high.test", "result": "success"})
    assert n <= 4, f"max_ttl 2s: {n} lookups"


def test_dns_srv_weights_and_ports():
    pa, pb, pc = h.free_port(), h.free_port(), h.free_port()
    a = h.start_backend("id", name="a", listen=f"127.0.0.21:{pa}")
    b = h.start_backend("id", name="b", listen=f"127.0.0.22:{pb}")
    c = h.start_backend("id", name="c", listen=f"127.0.0.22:{pc}")
    dns = Dns(["127.0.0.21 a.test", "127.0.0.22 b.test"],
              srv=[f"_app._tcp.test,a.test,{pa},0,3",
                   f"_app._tcp.test,b.test,{pb},10,0",       # priority ignored, weight 0 -> 1
                   f"_app._tcp.test,b.test,{pc},0,5000"])    # clamped to 1000
    lb = _start([{"srv": "_app._tcp.test"}], [dns.addr], algorithm="weighted_round_robin")
    _wait_addresses(lb, {f"127.0.0.21:{pa}", f"127.0.0.22:{pb}", f"127.0.0.22:{pc}"})
    weights = {x["address"]: x["weight"] for x in _stats_backends(lb)}
    assert weights == {f"127.0.0.21:{pa}": 3, f"127.0.0.22:{pb}": 1, f"127.0.0.22:{pc}": 1000}, weights
    assert {x["resolved_from"] for x in _stats_backends(lb)} == {"_app._tcp.test"}
    names = [_name_via(lb.listen) for _ in range(300)]
    assert names.count("c") > names.count("a") > 0 and names.count("c") > 250, \
        {n: names.count(n) for n in "abc"}
    lb.wait_for_log(r'msg="dns changed" service=web name=_app._tcp.test added=')

    # A weight in the file wins over the records'.
    admin_port = h.free_port()
    lb2 = _start([{"srv": "_app._tcp.test", "weight": 7, "max_connections": 3}], [dns.addr])
    _wait_addresses(lb2, {f"127.0.0.21:{pa}", f"127.0.0.22:{pb}", f"127.0.0.22:{pc}"})
    assert {x["weight"] for x in _stats_backends(lb2)} == {7}
    assert {x["max_connections"] for x in _stats_backends(lb2)} == {3}


def test_dns_aaaa_backend_on_ipv6_loopback():
    if not h.ipv6_available():
        raise h.Skip("::1 unavailable")
    port = _free_port_on(["::1", "127.0.0.1"])
    v6 = h.start_backend("id", name="six", listen=f"[::1]:{port}")
    v4 = h.start_backend("id", name="four", listen=f"127.0.0.1:{port}")
    dns = Dns(["::1 six.test", "::1 both.test", "127.0.0.1 both.test"])
    lb = _start([{"address": f"six.test:{port}", "resolve": True}], [dns.addr])
    _wait_addresses(lb, {f"[::1]:{port}"})
    assert _name_via(lb.listen) == "six"
    lb2 = _start([{"address": f"both.test:{port}", "resolve": True}], [dns.addr])
    _wait_addresses(lb2, {f"[::1]:{port}", f"127.0.0.1:{port}"})
    assert {_name_via(lb2.listen) for _ in range(6)} == {"six", "four"}


def test_dns_server_down_keeps_last_good_set():
    port = _free_port_on(["127.0.0.11", "127.0.0.12"])
    _id_backends(["127.0.0.11", "127.0.0.12"], port)
    dns = Dns(["127.0.0.11 app.test", "127.0.0.12 app.test"])
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr])
    want = {f"127.0.0.11:{port}", f"127.0.0.12:{port}"}
    _wait_addresses(lb, want)
    off = lb.log_offset()
    dns.stop()
    lb.wait_for_log(r'msg="dns failed" service=web name=app.test .*kept=2', timeout=6, start=off)
    # Retried (after min_ttl), failing again, and the set stays.
    h.eventually(lambda: (_metric(lb, "l4lb_dns_lookups_total",
                                  {"name": "app.test", "result": "failure"}) or 0) >= 2,
                 timeout=5, msg="a second failed lookup")
    assert _addresses(lb) == want
    assert {_name_via(lb.listen) for _ in range(6)} == {"127.0.0.11", "127.0.0.12"}
    # An empty answer (the name gone) keeps the set too.
    dns2 = Dns([])
    lb2 = _start([{"address": f"app.test:{port}", "resolve": True}, {"address": f"127.0.0.11:{port}"}],
                 [dns2.addr])
    lb2.wait_for_log(r'msg="dns failed" service=web name=app.test reason="no address', timeout=6)
    assert _addresses(lb2) == {f"127.0.0.11:{port}"}


def test_dns_unresolvable_at_start_served_once_it_resolves():
    port = _free_port_on(["127.0.0.11"])
    _id_backends(["127.0.0.11"], port)
    dns = Dns([])
    admin_port = h.free_port()
    lport = h.free_port()
    cfg = h.config(h.service(lport, [{"address": f"app.test:{port}", "resolve": True}]),
                   **_dns_global([dns.addr], admin_port))
    path = h.write_config(cfg)
    r = h.run_l4lb(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    lb = h.start_l4lb(cfg)
    lb.listen, lb.admin = f"127.0.0.1:{lport}", f"127.0.0.1:{admin_port}"
    lb.wait_for_log(r'msg="dns failed" service=web name=app.test', timeout=5)
    status, body = _get(lb.admin, "/health")
    assert status == 503 and json.loads(body) == {"status": "unavailable", "services": ["web"]}, body
    assert _addresses(lb) == set()
    dns.set_hosts(["127.0.0.11 app.test"])
    _wait_addresses(lb, {f"127.0.0.11:{port}"}, timeout=5)
    assert _name_via(lb.listen) == "127.0.0.11"
    h.eventually(lambda: _get(lb.admin, "/health")[0] == 200, timeout=3)


def test_dns_silent_resolver_delays_no_byte_and_no_reload():
    # A "server" that never answers: a UDP socket nobody reads (and no TCP listener).
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    h.ctx().add_sock(silent)
    silent_addr = f"127.0.0.1:{silent.getsockname()[1]}"
    echo = h.start_backend("echo")
    other = h.start_backend("echo")
    entries = [{"address": f"n{i}.test:80", "resolve": True} for i in range(50)]
    lb = _start([{"address": echo.addr}] + entries, [silent_addr],
                dns={"min_ttl": "1s", "max_ttl": "1s", "timeout": "2s"})
    lat = []
    s = h.connect(lb.listen, timeout=2.0)
    for i in range(200):
        msg = b"x%05d" % i
        t0 = time.monotonic()
        h.send_all(s, msg, timeout=2.0)
        assert h.recv_exactly(s, len(msg), timeout=2.0) == msg
        lat.append(time.monotonic() - t0)
        time.sleep(0.01)
    s.close()
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    assert p99 < 0.1, f"p99 {p99 * 1000:.1f} ms with a silent resolver"
    # A reload is applied at once, whatever the resolver does.
    cfg = h.config(h.service(int(lb.listen.rsplit(":", 1)[1]),
                             [{"address": echo.addr}, {"address": other.addr}] + entries),
                   **_dns_global([silent_addr], int(lb.admin.rsplit(":", 1)[1]),
                                 min_ttl="1s", max_ttl="1s", timeout="2s"))
    with open(lb.config_path, "w") as f:
        f.write(h.to_yaml(h.with_workers(cfg)))
    t0 = time.monotonic()
    lb.signal(signal.SIGHUP)
    h.eventually(lambda: other.addr in _addresses(lb), timeout=1.0, interval=0.02)
    assert time.monotonic() - t0 < 1.0
    lb.wait_for_log(r'msg="dns failed" service=web name=n0.test', timeout=8)


@h.timeout(90)
def test_dns_500_addresses_for_one_name_over_tcp_fallback():
    hosts = [f"127.0.{1 + i // 250}.{1 + i % 250} big.test" for i in range(500)]
    dns = Dns(hosts)
    udp = _udp_query(dns.addr, "big.test")
    assert udp[2] & 0x02, "the UDP answer should be truncated (TC), so that TCP is needed"
    lb = _start([{"address": "big.test:9", "resolve": True}], [dns.addr],
                dns={"min_ttl": "5s", "max_ttl": "5s"})
    h.eventually(lambda: len(_addresses(lb)) == 500, timeout=10, msg="500 backends in /stats")
    line = lb.wait_for_log(r'msg="dns changed" service=web name=big.test')
    assert line.count(",") == 499, line[:300]
    assert _metric(lb, "l4lb_dns_addresses_refused_total", {"name": "big.test"}) == 0


def test_dns_entry_kept_over_reload_without_waiting():
    port = _free_port_on(["127.0.0.11", "127.0.0.12"])
    _id_backends(["127.0.0.11", "127.0.0.12"], port)
    static = h.start_backend("id", name="static")
    dns = Dns(["127.0.0.11 app.test", "127.0.0.12 app.test"], ttl=60)
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr],
                dns={"max_ttl": "1m"})
    want = {f"127.0.0.11:{port}", f"127.0.0.12:{port}"}
    _wait_addresses(lb, want)
    dns.stop()  # nothing answers any more: a reload must neither wait nor drop the set
    cfg = h.config(h.service(int(lb.listen.rsplit(":", 1)[1]),
                             [{"address": f"app.test:{port}", "resolve": True, "weight": 4},
                              {"address": static.addr}]),
                   **_dns_global([dns.addr], int(lb.admin.rsplit(":", 1)[1]), max_ttl="1m"))
    with open(lb.config_path, "w") as f:
        f.write(h.to_yaml(h.with_workers(cfg)))
    off = lb.log_offset()
    t0 = time.monotonic()
    lb.signal(signal.SIGHUP)
    lb.wait_for_log(RELOAD_RX, timeout=2, start=off)
    assert time.monotonic() - t0 < 1.0
    backends = {b["address"]: b for b in _stats_backends(lb)}
    assert set(backends) == want | {static.addr}, backends
    assert backends[f"127.0.0.11:{port}"]["weight"] == 4  # the file's new weight applies
    assert 'msg="dns changed"' not in lb.stderr_text()[off:]


def test_dns_backend_override_lasts_over_a_restart():
    port = _free_port_on(["127.0.0.11", "127.0.0.12"])
    _id_backends(["127.0.0.11", "127.0.0.12"], port)
    dns = Dns(["127.0.0.11 app.test", "127.0.0.12 app.test"])
    state_dir = h.tmp_path("state")
    os.makedirs(state_dir, exist_ok=True)
    state_file = os.path.join(state_dir, "state.json")
    # As a previous run left it: one backend from DNS drained by the admin port.
    with open(state_file, "w") as f:
        json.dump({"version": 1, "overrides": [
            {"service": "web", "backend": f"127.0.0.11:{port}", "state": "drain", "weight": None,
             "file_drain": False}]}, f)
    os.chmod(state_file, 0o600)
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr])
    # _start has no state_file: restart the same config with it.
    cfg = h.config(h.service(int(lb.listen.rsplit(":", 1)[1]),
                             [{"address": f"app.test:{port}", "resolve": True}]),
                   state_file=state_file, **_dns_global([dns.addr], int(lb.admin.rsplit(":", 1)[1])))
    lb.signal(signal.SIGTERM)
    assert lb.wait(10) == 0
    # (the first run had no state_file: the file is untouched)
    lb2 = h.start_l4lb(cfg)
    lb2.listen, lb2.admin = lb.listen, lb.admin
    # Until the name resolves the override waits, and stays in the file.
    doc = json.load(open(state_file))
    assert [o["backend"] for o in doc["overrides"]] == [f"127.0.0.11:{port}"], doc
    _wait_addresses(lb2, {f"127.0.0.11:{port}", f"127.0.0.12:{port}"})
    h.eventually(lambda: {b["address"]: b["admin_state"] for b in _stats_backends(lb2)}
                 == {f"127.0.0.11:{port}": "drain", f"127.0.0.12:{port}": "ready"}, timeout=3,
                 msg="the saved drain applied to the resolved backend")
    assert {_name_via(lb2.listen) for _ in range(6)} == {"127.0.0.12"}
    doc = json.load(open(state_file))
    assert [o["backend"] for o in doc["overrides"]] == [f"127.0.0.11:{port}"], doc


def test_dns_change_moves_only_the_changed_addresses_clients_with_consistent_hash():
    port = _free_port_on(["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    _id_backends(["127.0.0.11", "127.0.0.12", "127.0.0.13"], port)
    dns = Dns(["127.0.0.11 app.test", "127.0.0.12 app.test", "127.0.0.13 app.test"])
    lb = _start([{"address": f"app.test:{port}", "resolve": True}], [dns.addr],
                algorithm="consistent_hash")
    _wait_addresses(lb, {f"127.0.0.1{i}:{port}" for i in (1, 2, 3)})
    host, lport = h.split_addr(lb.listen)

    def owner(client_ip: str) -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        h.ctx().add_sock(s)
        s.settimeout(2.0)
        s.bind((client_ip, 0))
        s.connect((host, lport))
        line = h.recv_line(s, timeout=2.0).decode().rstrip("\n")
        s.close()
        return line

    clients = [f"127.0.{2 + i // 200}.{1 + i % 200}" for i in range(120)]
    before = {c: owner(c) for c in clients}
    assert set(before.values()) == {"127.0.0.11", "127.0.0.12", "127.0.0.13"}, before
    dns.set_hosts(["127.0.0.11 app.test", "127.0.0.12 app.test"])
    _wait_addresses(lb, {f"127.0.0.11:{port}", f"127.0.0.12:{port}"})
    after = {c: owner(c) for c in clients}
    moved = [c for c in clients if before[c] != after[c]]
    assert all(before[c] == "127.0.0.13" for c in moved), \
        [(c, before[c], after[c]) for c in moved if before[c] != "127.0.0.13"]
    assert all(after[c] == before[c] for c in clients if before[c] != "127.0.0.13")
