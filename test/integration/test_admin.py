"""The admin port: /health, /stats and /metrics report exactly the traffic that went
through; strict HTTP answers (404/405/400/431); connection limit, slowloris deadline;
garbage on the admin port does not disturb the data path."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time

import harness as h

# ---------------------------------------------------------------------------- helpers


def _start(services: list[dict], **global_opts) -> tuple[h.L4lb, int]:
    """Starts l4lb with SERVICES and an admin port; returns (l4lb, admin port)."""
    port = h.free_port()
    g = dict(global_opts)
    g["admin"] = {"listen": f"127.0.0.1:{port}"}
    lb = h.start_l4lb(h.config(*services, **g))
    h.eventually(lambda: not h.is_port_free(port), timeout=3.0, msg="admin port listening")
    return lb, port


def _request(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Sends RAW, reads to EOF; returns (status, headers (lowercase names), body)."""
    s = h.connect(port, timeout=timeout)
    s.sendall(raw)
    data = h.recv_all(s, timeout=timeout)
    s.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        h.fail(f"no complete HTTP answer to {raw[:60]!r}: {data[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", lines[0])
    if not m:
        h.fail(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers and not raw.startswith(b"HEAD "):
        assert int(headers["content-length"]) == len(body), \
            f"Content-Length {headers['content-length']} but {len(body)} body bytes"
    return int(m.group(1)), headers, body


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    return _request(port, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Connection: close\r\n\r\n".encode())


def _stats(port: int) -> dict:
    status, headers, body = _get(port, "/stats")
    assert status == 200, f"/stats answered {status}: {body[:200]!r}"
    assert headers.get("content-type", "").startswith("application/json"), headers
    return json.loads(body)


def _metrics(port: int) -> str:
    status, headers, body = _get(port, "/metrics")
    assert status == 200, f"/metrics answered {status}"
    ct = headers.get("content-type", "")
    assert ct.startswith("text/plain; version=0.0.4"), f"Content-Type {ct!r}"
    return body.decode()


_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|[+-]Inf")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _num(text: str) -> float:
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def _parse_labels(s: str, i: int) -> tuple[dict, int]:
    """Parses {a="x",b="y"} starting at s[i] == '{'; returns (labels, index after '}')."""
    labels: dict = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            if labels:  # "{a="x",}" would get here: no trailing comma
                raise ValueError("trailing comma in label set")
            return labels, i + 1
        m = _LABEL.match(s, i)
        if not m or m.group(0).startswith("__"):
            raise ValueError(f"bad label name at {s[i:i + 20]!r}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError("label without =\"")
        i += 2
        value = []
        while True:
            if i >= len(s):
                raise ValueError("unterminated label value")
            c = s[i]
            i += 1
            if c == '"':
                break
            if c == "\\":
                e = s[i:i + 1]
                i += 1
                if e not in ("\\", '"', "n"):
                    raise ValueError(f"bad escape \\{e}")
                value.append("\n" if e == "n" else e)
            else:
                value.append(c)
        if name in labels:
            raise ValueError(f"label {name} twice")
        labels[name] = "".join(value)
        if s[i:i + 1] == ",":
            i += 1
            if s[i:i + 1] == "}":
                raise ValueError("trailing comma in label set")
            continue
        if s[i:i + 1] != "}":
            raise ValueError("label set not closed")
        return labels, i + 1


def check_exposition(text: str) -> dict:
    """Strict checker of the Prometheus text format 0.0.4. Fails on the first problem;
    returns {(name, frozenset(labels)): value}."""
    problems: list[str] = []
    families: dict[str, dict] = {}
    series: dict = {}
    hists: dict = {}
    current = None

    def bad(n, msg):
        problems.append(f"line {n}: {msg}")

    if not text.endswith("\n"):
        bad(0, "does not end with a newline")

    def enter(n, name):
        nonlocal current
        if name == current:
            return
        if current is not None:
            families[current]["closed"] = True
        if families.setdefault(name, {}).get("closed"):
            bad(n, f"family {name} in two blocks")
        current = name

    for n, line in enumerate(text.rstrip("\n").split("\n"), 1):
        if not line:
            bad(n, "empty line")
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind = line[2:6]
            name, _, arg = line[7:].partition(" ")
            if not _METRIC.fullmatch(name):
                bad(n, f"bad metric name {name!r}")
            enter(n, name)
            f = families.setdefault(name, {})
            if f.get("samples"):
                bad(n, f"{kind} after samples of {name}")
            if f.get(kind):
                bad(n, f"second {kind} for {name}")
            f[kind] = arg if kind == "TYPE" else True
            if kind == "HELP" and re.search(r"\\(?![\\n])", arg):
                bad(n, "bad escape in HELP")
            if kind == "TYPE":
                if arg not in _TYPES:
                    bad(n, f"unknown type {arg!r}")
                if arg == "counter" and not name.endswith("_total"):
                    bad(n, f"counter {name} does not end in _total")
            continue
        if line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if not m:
            bad(n, f"bad sample line {line!r}")
            continue
        name = m.group(0)
        i = m.end()
        labels: dict = {}
        if line[i:i + 1] == "{":
            try:
                labels, i = _parse_labels(line, i)
            except ValueError as e:
                bad(n, f"{e}: {line!r}")
                continue
        if line[i:i + 1] != " ":
            bad(n, f"no value: {line!r}")
            continue
        parts = line[i + 1:].split(" ")
        if not _NUMBER.fullmatch(parts[0]) or len(parts) > 2 or \
                (len(parts) == 2 and not re.fullmatch(r"-?[0-9]+", parts[1])):
            bad(n, f"bad value/timestamp: {line!r}")
            continue
        value = _num(parts[0])
        fam, suffix = None, ""
        if families.get(name, {}).get("TYPE"):
            fam = name
        else:
            for s in ("_bucket", "_sum", "_count"):
                base = name[:-len(s)]
                t = families.get(base, {}).get("TYPE")
                if name.endswith(s) and (t == "histogram" or (t == "summary" and s != "_bucket")):
                    fam, suffix = base, s
        if fam is None:
            bad(n, f"sample {name} without TYPE before it")
            continue
        if fam != current:
            bad(n, f"sample of {fam} outside its block")
        f = families[fam]
        f["samples"] = True
        if not f.get("HELP"):
            bad(n, f"sample of {fam} without HELP before it")
        if f["TYPE"] == "counter" and not value >= 0:
            bad(n, "negative counter")
        key = (name, frozenset(labels.items()))
        if key in series:
            bad(n, f"duplicate series {line!r}")
        series[key] = value
        if f["TYPE"] == "histogram":
            hk = (fam, frozenset((k, v) for k, v in labels.items() if k != "le"))
            hst = hists.setdefault(hk, {"buckets": [], "line": n})
            if suffix == "_bucket":
                if "le" not in labels or not _NUMBER.fullmatch(labels["le"]):
                    bad(n, "bucket without a valid le")
                    continue
                le = _num(labels["le"])
                if hst["buckets"]:
                    if not le > hst["buckets"][-1][0]:
                        bad(n, "le not increasing")
                    if value < hst["buckets"][-1][1]:
                        bad(n, "buckets not cumulative")
                hst["buckets"].append((le, value))
            elif suffix in ("_sum", "_count"):
                hst[suffix] = value
            else:
                bad(n, "histogram sample without _bucket/_sum/_count")
    for name, f in families.items():
        if not f.get("TYPE") or not f.get("HELP"):
            bad(0, f"family {name} lacks HELP or TYPE")
    for (fam, _), hst in hists.items():
        b = hst["buckets"]
        if not b or b[-1][0] != math.inf:
            bad(hst["line"], f"{fam}: buckets do not end with le=\"+Inf\"")
        if "_count" not in hst or (b and hst["_count"] != b[-1][1]):
            bad(hst["line"], f"{fam}: _count missing or not the +Inf bucket")
        if "_sum" not in hst:
            bad(hst["line"], f"{fam}: no _sum")
    if problems:
        h.fail("invalid exposition:\n  " + "\n  ".join(problems[:20]))
    return series


def _m(series: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    if key not in series:
        h.fail(f"no series {name}{labels}")
    return series[key]


def _echo_once(addr: str, payload: bytes) -> None:
    s = h.connect(addr, timeout=5.0)
    s.sendall(payload)
    got = h.recv_exactly(s, len(payload), timeout=5.0)
    assert got == payload, "echo mismatch"
    s.shutdown(socket.SHUT_WR)
    rest = h.recv_all(s, timeout=5.0)
    assert rest == b"", f"unexpected bytes after the echo: {rest[:40]!r}"
    s.close()


def _service(stats: dict, name: str) -> dict:
    for s in stats["services"]:
        if s["name"] == name:
            return s
    h.fail(f"no service {name} in /stats")


def _backend(svc: dict, addr: str) -> dict:
    for b in svc["backends"]:
        if b["address"] == addr:
            return b
    h.fail(f"no backend {addr} in service {svc['name']}")


STATS_SERVICE_KEYS = {"name", "listen", "algorithm", "active_connections", "total_connections",
                      "refused_connections", "bytes_in", "bytes_out", "backends"}
STATS_BACKEND_KEYS = {"address", "state", "weight", "backup", "active_connections",
                      "total_connections", "failed_connections", "bytes_in", "bytes_out",
                      "last_check", "last_check_error"}

# ---------------------------------------------------------------------------- tests


@h.timeout(60)
def test_admin_reports_exact_traffic_counts():
    echo = h.start_backend("echo")
    echo2 = h.start_backend("echo")
    dead = h.dead_addr()
    p_web, p_empty, p_retry = h.free_port(), h.free_port(), h.free_port()
    web = h.service(p_web, [echo], name="web")
    empty = h.service(p_empty, [{"address": echo.addr, "drain": True}], name="empty")
    retry = h.service(p_retry, [dead, echo2], name="retry", retries=1)
    lb, admin = _start([web, empty, retry])

    # Before any traffic: every key, every series, all at 0.
    st = _stats(admin)
    assert set(st) >= {"version", "uptime_seconds", "config_reloads", "services"}, st.keys()
    assert st["version"] == "0.1.0" and st["config_reloads"] == 0
    for svc in st["services"]:
        assert set(svc) >= STATS_SERVICE_KEYS, svc.keys()
        for b in svc["backends"]:
            assert set(b) >= STATS_BACKEND_KEYS, b.keys()
            assert b["last_check"] is None and b["last_check_error"] is None, b
    series = check_exposition(_metrics(admin))
    for svc, b in (("web", echo.addr), ("empty", echo.addr), ("retry", dead), ("retry", echo2.addr)):
        assert _m(series, "l4lb_backend_connections_total", service=svc, backend=b) == 0
        assert _m(series, "l4lb_backend_connect_duration_seconds_count", service=svc, backend=b) == 0

    # web: n connections, m bytes each way.
    n, m = 5, 3000
    for i in range(n):
        _echo_once(f"127.0.0.1:{p_web}", bytes([65 + i]) * m)
    # empty: its only backend drains: one client refused at once.
    s = h.connect(p_empty)
    assert h.wait_closed(s, timeout=2.0) in ("eof", "reset")
    s.close()
    # retry: connect until the dead backend has failed once (rotation order is the
    # algorithm's business); each client still gets the echo via the retry.
    k = 0
    while True:
        k += 1
        _echo_once(f"127.0.0.1:{p_retry}", b"r" * 100)
        if _backend(_service(_stats(admin), "retry"), dead)["failed_connections"] >= 1 or k >= 6:
            break

    def settled():
        st_ = _stats(admin)
        return st_ if all(s_["active_connections"] == 0 for s_ in st_["services"]) else None
    st = h.eventually(settled, timeout=5.0, msg="every connection closed")

    w = _service(st, "web")
    assert (w["total_connections"], w["refused_connections"], w["bytes_in"], w["bytes_out"]) == \
        (n, 0, n * m, n * m), w
    assert w["listen"] == f"127.0.0.1:{p_web}" and w["algorithm"] == "round_robin", w
    wb = _backend(w, echo.addr)
    assert (wb["total_connections"], wb["failed_connections"], wb["bytes_in"], wb["bytes_out"],
            wb["active_connections"]) == (n, 0, n * m, n * m, 0), wb
    assert wb["state"] == "up" and wb["weight"] == 1 and wb["backup"] is False, wb

    e = _service(st, "empty")
    assert (e["total_connections"], e["refused_connections"], e["bytes_in"], e["bytes_out"]) == \
        (1, 1, 0, 0), e
    eb = _backend(e, echo.addr)
    assert eb["state"] == "draining" and eb["total_connections"] == 0, eb

    r = _service(st, "retry")
    rd, re_ = _backend(r, dead), _backend(r, echo2.addr)
    assert rd["failed_connections"] == 1, f"dead backend never tried in {k} connections: {r}"
    assert (r["total_connections"], r["refused_connections"], r["bytes_in"], r["bytes_out"]) == \
        (k, 0, 100 * k, 100 * k), r
    assert (rd["total_connections"], rd["bytes_in"], rd["bytes_out"]) == (0, 0, 0), rd
    assert (re_["total_connections"], re_["failed_connections"], re_["bytes_in"]) == \
        (k, 0, 100 * k), re_

    series = check_exposition(_metrics(admin))
    assert _m(series, "l4lb_service_connections_total", service="web") == n
    assert _m(series, "l4lb_service_connections_active", service="web") == 0
    assert _m(series, "l4lb_service_connections_refused_total", service="empty") == 1
    assert _m(series, "l4lb_service_connections_total", service="empty") == 1
    assert _m(series, "l4lb_service_connections_total", service="retry") == k
    assert _m(series, "l4lb_backend_connections_total", service="web", backend=echo.addr) == n
    assert _m(series, "l4lb_backend_connections_active", service="web", backend=echo.addr) == 0
    assert _m(series, "l4lb_backend_bytes_total", service="web", backend=echo.addr,
              direction="in") == n * m
    assert _m(series, "l4lb_backend_bytes_total", service="web", backend=echo.addr,
              direction="out") == n * m
    assert _m(series, "l4lb_backend_connect_failures_total", service="retry", backend=dead) == 1
    assert _m(series, "l4lb_backend_connect_failures_total", service="web", backend=echo.addr) == 0
    assert _m(series, "l4lb_backend_connections_total", service="retry", backend=echo2.addr) == k
    assert _m(series, "l4lb_backend_up", service="web", backend=echo.addr) == 1
    assert _m(series, "l4lb_health_checks_total", service="web", backend=echo.addr,
              result="success") == 0  # health_check: none
    assert _m(series, "l4lb_config_reloads_total", result="success") == 0
    assert _m(series, "l4lb_config_reloads_total", result="failure") == 0
    assert _m(series, "l4lb_build_info", version="0.1.0") == 1
    assert _m(series, "l4lb_backend_connect_duration_seconds_count", service="web",
              backend=echo.addr) == n, \
        "one connect duration per established connection (Backend::connect_time.observe())"
    for name in ("process_open_fds", "process_max_fds", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "process_start_time_seconds"):
        assert _m(series, name) > 0, name
    assert abs(_m(series, "process_start_time_seconds") - time.time()) < 120

    # /health names the service without an available backend.
    status, headers, body = _get(admin, "/health")
    assert status == 503 and json.loads(body) == {"status": "unavailable", "services": ["empty"]}, \
        (status, body)
    assert headers["content-type"].startswith("application/json")
    assert lb.alive()


def test_admin_health_ok_then_stopping_during_drain():
    echo = h.start_backend("echo")
    lb, admin = _start([h.service(h.free_port(), [echo])], drain_timeout="5s")
    status, _, body = _get(admin, "/health")
    assert (status, body) == (200, b'{"status":"ok"}'), (status, body)
    # An open connection keeps the drain going; the admin port stays open through it.
    s = h.connect(_stats(admin)["services"][0]["listen"])
    s.sendall(b"x")
    assert h.recv_exactly(s, 1) == b"x"
    h.eventually(lambda: _stats(admin)["services"][0]["active_connections"] == 1, timeout=3)
    lb.signal(15)
    status, _, body = h.eventually(lambda: (lambda r: r if r[0] == 503 else None)(_get(admin, "/health")),
                                   timeout=3.0, msg="/health 503 after SIGTERM")
    assert json.loads(body) == {"status": "stopping"}, body
    s.close()
    assert lb.wait(7) == 0


def test_admin_http_errors_and_routing():
    lb, admin = _start([h.service(h.free_port(), [h.start_backend("echo")])])
    cases = [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"GET /stats?format=json&x=1 HTTP/1.1\r\n\r\n", 200),
        (b"GET /metrics HTTP/1.0\r\n\r\n", 200),
        # Not GET/HEAD on TCP: authorisation first, and no token_file here -> 403.
        (b"POST /stats HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 403),
        (b"DELETE /health HTTP/1.1\r\n\r\n", 403),
        (b"get /health HTTP/1.1\r\n\r\n", 403),  # methods are case-sensitive
        (b"GET /stats\r\n\r\n", 400),
        (b"GET  /stats HTTP/1.1\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nNoColonHere\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET /stats HTTP/2.0\r\n\r\n", 400),
        (b"GET /stats HTTP/0.9\r\n\r\n", 400),
        (b"GET /stats HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64), 400),
    ]
    for raw, want in cases:
        status, headers, _ = _request(admin, raw)
        assert status == want, f"{raw[:50]!r}: got {status}, want {want}"
        assert headers.get("connection", "").lower() == "close", headers
        if want == 405:
            assert headers.get("allow") == "GET, HEAD", headers
    # HEAD: the headers of GET, no body.
    status, headers, body = _get(admin, "/stats", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0, (status, headers)
    assert lb.alive()


@h.timeout(60)
def test_admin_slow_clients_cannot_lock_out_a_probe():
    # 64 slow clients fill the admin port; the 65th (a health probe) is answered at once and
    # the oldest slow client is closed to make room.
    lb, admin = _start([h.service(h.free_port(), [h.start_backend("echo")])])
    slow = []
    for _ in range(64):
        s = h.connect(admin, timeout=5.0)
        s.sendall(b"GET /health HTTP/1.1\r\n")  # never finished
        slow.append(s)
    time.sleep(0.5)  # all 64 accepted
    for i in range(3):
        t0 = time.monotonic()
        status, _, body = _get(admin, "/health")
        took = time.monotonic() - t0
        assert status == 200 and b'"ok"' in body, (status, body)
        assert took < 1.0, f"probe {i} answered after {took:.2f}s"
    # the oldest three gave way; the newest slow clients are still open
    assert h.wait_closed(slow[0], timeout=1.0) in ("eof", "reset")
    slow[-1].settimeout(0.2)
    try:
        b = slow[-1].recv(1)
        h.fail(f"the newest slow admin connection was closed ({b!r})")
    except socket.timeout:
        pass
    for s in slow:
        s.close()
    assert lb.alive()


@h.timeout(30)
def test_admin_slowloris_closed_after_5s():
    lb, admin = _start([h.service(h.free_port(), [h.start_backend("echo")])])
    s = h.connect(admin, timeout=10.0)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    t0 = time.monotonic()
    closed_after = None
    answered_meanwhile = 0
    while time.monotonic() - t0 < 10:
        try:
            s.sendall(b"X")  # one byte of a header, never a whole line
        except OSError:
            closed_after = time.monotonic() - t0
            break
        s.settimeout(0.5)
        try:
            b = s.recv(4096)
            if not b:
                closed_after = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed_after = time.monotonic() - t0
            break
        status, _, _ = _get(admin, "/health")  # others are served meanwhile, at once
        answered_meanwhile += status == 200
    assert closed_after is not None, "slow client still open after 10 s"
    assert 4.0 <= closed_after <= 7.0, f"closed after {closed_after:.2f}s"
    assert answered_meanwhile >= 5, answered_meanwhile
    assert lb.alive()


@h.timeout(120)
def test_admin_garbage_does_not_affect_data_transfer():
    echo = h.start_backend("echo")
    data_port = h.free_port()
    lb, admin = _start([h.service(data_port, [echo], connect_timeout="2s")])
    size = 48 << 20
    result: dict = {}

    def transfer():
        try:
            s = h.connect(data_port, timeout=60.0)
            sent = hashlib.sha256()

            def sender():
                left = size
                while left:
                    block = os.urandom(min(1 << 18, left))
                    sent.update(block)
                    s.sendall(block)
                    left -= len(block)
                s.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            got = hashlib.sha256()
            n = 0
            while True:
                b = s.recv(1 << 18)
                if not b:
                    break
                got.update(b)
                n += len(b)
            t.join(10)
            s.close()
            result.update(n=n, ok=got.hexdigest() == sent.hexdigest())
        except Exception as e:  # noqa: BLE001
            result["error"] = repr(e)

    stop = threading.Event()
    abuse = {"conns": 0}

    def abuser(kind: int):
        while not stop.is_set():
            try:
                s = h.connect(admin, timeout=2.0, track=False)
                if kind == 0:
                    s.sendall(os.urandom(4096))
                elif kind == 1:
                    s.sendall(b"GET /stats HTTP/1.1\r\n" + b"X-A: " + b"b" * 20000 + b"\r\n\r\n")
                elif kind == 2:
                    s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n" + os.urandom(100000))
                else:
                    s.sendall(b"\r\n" * 3000)
                s.settimeout(2.0)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
                s.close()
                abuse["conns"] += 1
            except OSError:
                time.sleep(0.01)

    abusers = [threading.Thread(target=abuser, args=(i % 4,), daemon=True) for i in range(8)]
    for t in abusers:
        t.start()
    t0 = time.monotonic()
    tr = threading.Thread(target=transfer, daemon=True)
    tr.start()
    tr.join(90)
    took = time.monotonic() - t0
    stop.set()
    for t in abusers:
        t.join(5)
    assert "error" not in result, result
    assert result.get("n") == size and result.get("ok"), f"transfer broken: {result}"
    assert abuse["conns"] > 20, f"only {abuse['conns']} abusive admin connections ran"
    status, _, body = _get(admin, "/health")
    assert status == 200, (status, body)
    assert lb.alive()
    return f"{size >> 20} MiB echoed in {took:.1f}s beside {abuse['conns']} garbage admin connections"


@h.timeout(40)
def test_admin_health_503_when_every_backend_down_and_back():
    a = h.start_backend("id", name="alpha")
    port = a.port
    hc = {"type": "tcp", "interval": "200ms", "timeout": "200ms",
          "unhealthy_threshold": 1, "healthy_threshold": 1}
    lb, admin = _start([h.service(h.free_port(), [a], name="web", health_check=hc),
                        h.service(h.free_port(), [h.start_backend("echo")], name="other")])
    h.eventually(lambda: _get(admin, "/health")[0] == 200, timeout=3, msg="/health 200")
    a.stop()
    status, _, body = h.eventually(lambda: (lambda r: r if r[0] == 503 else None)(_get(admin, "/health")),
                                   timeout=3, msg="/health 503 once web has no backend")
    assert json.loads(body) == {"status": "unavailable", "services": ["web"]}, body
    h.start_backend("id", name="alpha", listen=f"127.0.0.1:{port}")
    status, _, body = h.eventually(lambda: (lambda r: r if r[0] == 200 else None)(_get(admin, "/health")),
                                   timeout=3, msg="/health 200 again")
    assert json.loads(body) == {"status": "ok"}, body


_DATA_CLIENT = """
import os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
out = []
while not os.path.exists(stop):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"ping" * 16)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
    assert got == b"ping" * 16
    out.append(time.monotonic() - t0)
    time.sleep(0.01)
print(" ".join(f"{x:.6f}" for x in out))
"""


@h.timeout(90)
def test_admin_bad_input_never_disturbs_the_data_port():
    echo = h.start_backend("echo")
    data_port = h.free_port()
    lb, admin = _start([h.service(data_port, [echo])])
    # A normal client in a process of its own (no GIL shared with the abuse below),
    # served with normal latency throughout: first alone (the baseline on this
    # machine right now), then beside the abuse.
    def run_client(stop_file):
        client = subprocess.Popen([sys.executable, "-c", _DATA_CLIENT, str(data_port), stop_file],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        h.ctx().add_proc(client)
        return client

    def p99_of(client, stop_file):
        open(stop_file, "w").close()
        out, _ = client.communicate(timeout=10)
        lat = sorted(float(x) for x in out.split())
        assert len(lat) > 20, f"only {len(lat)} data-port exchanges"
        return lat[int(len(lat) * 0.99) - 1], len(lat)

    base_stop = h.tmp_path("stop-base")
    base = run_client(base_stop)
    time.sleep(3)
    base_p99, _ = p99_of(base, base_stop)
    stop_file = h.tmp_path("stop")
    client = run_client(stop_file)
    outcomes: dict[str, int] = {}

    def note(kind: str) -> None:
        outcomes[kind] = outcomes.get(kind, 0) + 1

    # 200 random garbage requests: each answered 400 (or 403/404/405/431) or closed.
    for i in range(200):
        raw = os.urandom(1 + (i * 37) % 3000)
        s = h.connect(admin, timeout=5, track=False)
        try:
            s.sendall(raw)
            s.settimeout(6)
            data = h.recv_all(s, timeout=6)
        except OSError:
            data = b""
        finally:
            s.close()
        if data:
            code = int(data.split(b" ", 2)[1])
            assert code in (400, 403, 404, 405, 431), (raw[:40], data[:80])
            note(str(code))
        else:
            note("closed")
    # A 1 MiB header line: 431 (or 400) and a close, never a hang.
    s = h.connect(admin, timeout=5, track=False)
    try:
        s.sendall(b"GET /stats HTTP/1.1\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\n\r\n")
    except OSError:
        pass  # closed while we were still sending: fine
    try:
        s.settimeout(5)
        data = s.recv(200)
    except OSError:
        data = b""
    s.close()
    assert data == b"" or data.split(b" ", 2)[1] in (b"431", b"400"), data[:80]
    # No CRLF ever: closed by the 5 s deadline (or the 8 KiB cap), never answered 200.
    s = h.connect(admin, timeout=5, track=False)
    s.sendall(b"GET /stats HTTP/1.1 " + b"x" * 100)
    assert h.wait_closed(s, timeout=7) in ("eof", "reset")
    s.close()
    # 500 concurrent slow connections: 64 held at a time, older ones give way; all gone in time.
    slow = []
    for _ in range(500):
        try:
            c = socket.create_connection(("127.0.0.1", admin), timeout=2)
            c.sendall(b"GET /health HTTP/1.1\r\n")
            slow.append(c)
        except OSError:
            note("slow refused")
    time.sleep(6)  # past the 5 s request deadline
    still_open = 0
    for c in slow:
        c.settimeout(0.01)
        try:
            if c.recv(1):
                still_open += 0
        except socket.timeout:
            still_open += 1
        except OSError:
            pass
        c.close()
    assert still_open == 0, f"{still_open} slow admin connections still open after 6 s"
    status, _, _ = _get(admin, "/health")
    assert status == 200
    p99, n = p99_of(client, stop_file)
    limit = max(0.05, 4 * base_p99)
    assert p99 <= limit, (f"data-port p99 {p99 * 1000:.1f} ms during the admin abuse "
                          f"(alone: {base_p99 * 1000:.1f} ms)")
    assert lb.alive()
    return (f"outcomes {outcomes}; data port p99 {base_p99 * 1000:.1f} ms alone, "
            f"{p99 * 1000:.1f} ms over {n} exchanges beside the abuse")
