"""Runtime control: the admin port's write requests (state, weight, connections), their
authorisation (bearer token over TCP, file mode on a unix socket), overrides that last over
reloads and restarts (state_file), and slow start."""
import json
import os
import re
import signal
import socket
import stat
import time

import harness as h


# ---------------------------------------------------------------------------- helpers

TOKEN = "t0k3n-for-tests"


def _token_file() -> str:
    path = h.tmp_path("token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    return path


def _start(services: list[dict], token: bool = True, admin: str | None = None,
           **global_opts) -> tuple[h.L4lb, str]:
    """l4lb with SERVICES and an admin listener (TCP with a token_file unless told
    otherwise, or ADMIN such as "unix:/path"); returns (l4lb, admin address)."""
    if admin is None:
        admin = f"127.0.0.1:{h.free_port()}"
    g = dict(global_opts)
    g["admin"] = {"listen": admin}
    if token:
        g["admin"]["token_file"] = _token_file()
    lb = h.start_l4lb(h.config(*services, **g))
    return lb, admin


def _connect_admin(admin: str, timeout: float = 5.0) -> socket.socket:
    if admin.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(admin[5:])
        h.ctx().add_sock(s)
        return s
    return h.connect(admin, timeout=timeout)


def _call(admin: str, method: str, path: str, body: bytes | str | None = None,
          token: str | None = TOKEN, headers: dict | None = None) -> tuple[int, dict, bytes]:
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: l4lb", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    s = _connect_admin(admin)
    s.sendall(raw)
    data = h.recv_all(s, timeout=5.0)
    s.close()
    head, sep, payload = data.partition(b"\r\n\r\n")
    assert sep, f"no complete answer to {raw[:80]!r}: {data[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", status_line)
    assert m, status_line
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdrs, payload


def _path(service: str, backend: str, what: str) -> str:
    return f"/services/{service}/backends/{backend}/{what}"


def _set_state(admin: str, backend: str, state: str, service: str = "web") -> dict:
    st, _, body = _call(admin, "PUT", _path(service, backend, "state"), state)
    assert st == 200, (st, body)
    return json.loads(body)


def _set_weight(admin: str, backend: str, weight, service: str = "web") -> dict:
    st, _, body = _call(admin, "PUT", _path(service, backend, "weight"), str(weight))
    assert st == 200, (st, body)
    return json.loads(body)


def _stats(admin: str) -> dict:
    st, _, body = _call(admin, "GET", "/stats", token=None)
    assert st == 200, st
    return json.loads(body)


def _backend(admin: str, addr: str, service: str = "web") -> dict:
    for svc in _stats(admin)["services"]:
        if svc["name"] == service:
            for b in svc["backends"]:
                if b["address"] == addr:
                    return b
    h.fail(f"no backend {addr} in service {service}")


def _name(lb: h.L4lb, hold: list | None = None) -> str:
    """Connects through LB, reads the id backend's name; keeps the socket in HOLD if given."""
    s = h.connect(lb.listen, timeout=3.0)
    line = h.recv_line(s, timeout=3.0).decode().strip()
    if hold is None:
        s.close()
    else:
        hold.append(s)
    return line


def _reload(lb: h.L4lb, cfg: dict) -> None:
    off = lb.log_offset()
    _rewrite(lb, cfg)
    lb.signal(signal.SIGHUP)
    lb.wait_for_log(r'msg="reload (ok|failed)"', timeout=5.0, start=off)


def _rewrite(lb: h.L4lb, cfg: dict) -> None:
    with open(lb.config_path, "w") as f:
        f.write(h.to_yaml(h.with_workers(cfg)))


# ---------------------------------------------------------------------------- authorisation


def test_admin_writes_over_tcp_need_the_bearer_token():
    a = h.start_backend("id", name="alpha")
    lb, admin = _start([h.service(h.free_port(), [a])])
    p = _path("web", a.addr, "state")
    st, hdrs, body = _call(admin, "PUT", p, "drain", token=None)
    assert st == 401 and hdrs.get("www-authenticate", "").startswith("Bearer"), (st, hdrs, body)
    assert "error" in json.loads(body)
    st, _, _ = _call(admin, "PUT", p, "drain", token="wrong")
    assert st == 401
    st, _, _ = _call(admin, "PUT", p, "drain", token=TOKEN + "x")
    assert st == 401
    assert _backend(admin, a.addr)["admin_state"] == "ready"  # nothing changed
    st, _, body = _call(admin, "PUT", p, "drain")
    assert st == 200 and json.loads(body)["admin_state"] == "drain", body
    # Reads need no token; a wrong one is ignored.
    st, _, _ = _call(admin, "GET", "/stats", token="wrong")
    assert st == 200
    lb.wait_for_log(rf'msg="admin set" service=web backend={re.escape(a.addr)} what=state '
                    rf'value=drain peer=127\.0\.0\.1:\d+')


def test_admin_writes_over_tcp_without_token_file_are_forbidden():
    a = h.start_backend("id", name="alpha")
    lb, admin = _start([h.service(h.free_port(), [a])], token=False)
    for method, what, body in (("PUT", "state", "drain"), ("PUT", "weight", "3"),
                               ("DELETE", "connections", None)):
        st, _, payload = _call(admin, method, _path("web", a.addr, what), body)
        assert st == 403, (method, what, st, payload)
    # Authorisation comes before the path: even an unknown path is 403 for a write.
    st, _, _ = _call(admin, "PUT", "/nope", "x")
    assert st == 403
    assert _backend(admin, a.addr)["admin_state"] == "ready"


def test_admin_write_requests_answer_400_404_405_411_413():
    a = h.start_backend("id", name="alpha")
    lb, admin = _start([h.service(h.free_port(), [a])])
    state = _path("web", a.addr, "state")
    weight = _path("web", a.addr, "weight")
    for body in ("", "drained", "READY", "ready now"):
        st, _, payload = _call(admin, "PUT", state, body)
        assert st == 400 and "error" in json.loads(payload), (body, st, payload)
    for body in ("0", "1001", "-1", "2.5", "abc", "01", ""):
        st, _, payload = _call(admin, "PUT", weight, body)
        assert st == 400 and "error" in json.loads(payload), (body, st, payload)
    st, _, _ = _call(admin, "PUT", _path("nope", a.addr, "state"), "drain")
    assert st == 404
    st, _, _ = _call(admin, "PUT", _path("web", "127.0.0.1:1", "state"), "drain")
    assert st == 404
    st, _, _ = _call(admin, "PUT", _path("web", a.addr, "colour"), "drain")
    assert st == 404
    st, hdrs, _ = _call(admin, "GET", state)
    assert st == 405 and hdrs.get("allow") == "PUT", hdrs
    st, hdrs, _ = _call(admin, "POST", state, "drain")
    assert st == 405
    st, hdrs, _ = _call(admin, "PUT", _path("web", a.addr, "connections"))
    assert st == 405 and hdrs.get("allow") == "DELETE", hdrs
    st, _, _ = _call(admin, "PUT", state, None, headers={"Transfer-Encoding": "chunked"})
    assert st == 411
    st, _, _ = _call(admin, "PUT", state, "drain" + " " * 1100)
    assert st == 413
    # Whitespace around a body is ignored; the backend may be percent-encoded.
    enc = a.addr.replace(":", "%3A").replace(".", "%2E")
    st, _, payload = _call(admin, "PUT", _path("web", enc, "weight"), "  7\r\n")
    assert st == 200 and json.loads(payload)["weight"] == 7, payload
    assert _backend(admin, a.addr)["admin_state"] == "ready"  # the bad ones changed nothing
    assert lb.alive()


def test_unix_socket_admin_allows_writes_without_token_and_is_private():
    a = h.start_backend("id", name="alpha")
    path = h.tmp_path("admin.sock")
    # A stale socket file (nobody listening) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    lb, admin = _start([h.service(h.free_port(), [a])], token=False, admin=f"unix:{path}")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert stat.S_ISSOCK(os.stat(path).st_mode) and mode == 0o600, oct(mode)
    body = _set_state(admin, a.addr, "maint")
    assert body["state"] == "maint" and body["admin_state"] == "maint"
    lb.wait_for_log(rf'msg="admin set" service=web backend={re.escape(a.addr)} what=state '
                    rf'value=maint peer=unix:{os.getuid()}')
    # A second l4lb on the same live socket cannot start (exit 3).
    cfg2 = h.config(h.service(h.free_port(), [a]), admin={"listen": f"unix:{path}"})
    r = h.run_l4lb(["-c", h.write_config(cfg2, "second.yaml")], timeout=10)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert os.path.exists(path)
    lb.signal(signal.SIGTERM)
    assert lb.wait(10) == 0
    assert not os.path.exists(path), "the socket file stays after exit"


# ---------------------------------------------------------------------------- states and weights


def test_drain_keeps_open_connections_and_moves_new_ones():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb, admin = _start([h.service(h.free_port(), [a, b])])
    lb.listen = _stats(admin)["services"][0]["listen"]
    held = []
    names = [_name(lb, held) for _ in range(4)]
    assert names.count("alpha") == 2, names
    _set_state(admin, a.addr, "drain")
    assert _backend(admin, a.addr)["state"] == "draining"
    new = [_name(lb) for _ in range(6)]
    assert new == ["bravo"] * 6, new
    # The open ones run on: each still answers (the id backend echoes nothing, but the
    # connection is open: a send succeeds and no EOF/reset arrives).
    for s in held:
        s.sendall(b"ping\n")
    time.sleep(0.2)
    for s in held:
        s.setblocking(False)
        try:
            data = s.recv(1)
            assert False, f"held connection ended: {data!r}"
        except BlockingIOError:
            pass
    assert _backend(admin, a.addr)["active_connections"] == 2
    _set_state(admin, a.addr, "ready")
    back = [_name(lb) for _ in range(6)]
    assert "alpha" in back, back
    assert _backend(admin, a.addr)["override"] is None  # ready is what the file says


def test_maint_stops_health_checks_and_ready_resumes_them():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb, admin = _start([h.service(h.free_port(), [a, b],
                                  health_check={"type": "tcp", "interval": "200ms",
                                                "timeout": "1s"})])
    h.eventually(lambda: _backend(admin, a.addr)["health_checks"]["success"] >= 2, timeout=5)
    _set_state(admin, a.addr, "maint")
    time.sleep(0.3)  # one in flight may finish
    before = _backend(admin, a.addr)["health_checks"]
    time.sleep(1.2)
    after = _backend(admin, a.addr)["health_checks"]
    assert after == before, (before, after)
    assert _backend(admin, a.addr)["state"] == "maint"
    # drain: checks go on.
    _set_state(admin, a.addr, "drain")
    h.eventually(lambda: _backend(admin, a.addr)["health_checks"]["success"] >= before["success"] + 2,
                 timeout=5, msg="checks resume under drain")


def test_weight_override_shares_follow():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb, admin = _start([h.service(h.free_port(), [a, b], algorithm="weighted_round_robin")])
    lb.listen = _stats(admin)["services"][0]["listen"]
    body = _set_weight(admin, a.addr, 3)
    assert body["weight"] == 3 and body["configured_weight"] == 1
    assert body["override"] == {"state": None, "weight": 3}
    seen = [_name(lb) for _ in range(40)]
    assert seen.count("alpha") == 30 and seen.count("bravo") == 10, seen
    st, _, payload = _call(admin, "PUT", _path("web", a.addr, "weight"), "config")
    assert st == 200 and json.loads(payload)["weight"] == 1 and json.loads(payload)["override"] is None
    seen = [_name(lb) for _ in range(20)]
    assert seen.count("alpha") == 10, seen
    st, _, metrics = _call(admin, "GET", "/metrics", token=None)
    text = metrics.decode()
    assert re.search(rf'l4lb_backend_weight{{service="web",backend="{re.escape(a.addr)}"}} 1\b', text), text[:500]
    assert re.search(rf'l4lb_backend_admin_state{{service="web",backend="{re.escape(a.addr)}",state="ready"}} 1\b', text)


def test_close_resets_exactly_that_backends_connections():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    lb, admin = _start([h.service(h.free_port(), [a, b])])
    lb.listen = _stats(admin)["services"][0]["listen"]
    held = []
    names = [_name(lb, held) for _ in range(4)]
    st, _, body = _call(admin, "DELETE", _path("web", a.addr, "connections"))
    assert st == 200 and json.loads(body) == {"closed": 2}, body
    for name, s in zip(names, held):
        if name == "alpha":
            assert h.wait_closed(s, timeout=2.0) == "reset", name
    for name, s in zip(names, held):
        if name == "bravo":  # still open: nothing to read, no EOF, no reset
            s.setblocking(False)
            try:
                data = s.recv(1)
                assert False, f"bravo's connection ended: {data!r}"
            except BlockingIOError:
                pass
    lb.wait_for_log(r'msg="admin set" service=web backend=\S+ what=connections')
    h.eventually(lambda: _backend(admin, a.addr)["active_connections"] == 0, timeout=3)
    assert _backend(admin, b.addr)["active_connections"] == 2


# ---------------------------------------------------------------------------- overrides last


def test_overrides_last_over_reloads_until_the_file_changes_that_property():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    port = h.free_port()
    lb, admin = _start([h.service(port, [a, b])])
    cfg = h.config(h.service(port, [a, b]),
                   admin={"listen": admin, "token_file": _token_file()})
    _set_state(admin, a.addr, "drain")
    _set_weight(admin, b.addr, 5)
    # An unrelated change: both overrides stay.
    cfg["services"][0]["retries"] = 1
    _reload(lb, cfg)
    assert _backend(admin, a.addr)["override"] == {"state": "drain", "weight": None}
    assert _backend(admin, b.addr)["weight"] == 5
    # The file changes a's drain and b's weight: the file wins, each drop logged.
    off = lb.log_offset()
    cfg["services"][0]["backends"] = [{"address": a.addr, "drain": True},
                                      {"address": b.addr, "weight": 2}]
    _reload(lb, cfg)
    lb.wait_for_log(rf'msg="override dropped" service=web backend={re.escape(a.addr)} what=state', start=off)
    lb.wait_for_log(rf'msg="override dropped" service=web backend={re.escape(b.addr)} what=weight', start=off)
    ba, bb = _backend(admin, a.addr), _backend(admin, b.addr)
    assert ba["override"] is None and ba["admin_state"] == "drain", ba
    assert bb["override"] is None and bb["weight"] == 2, bb


def test_overrides_last_over_a_restart_through_the_state_file():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    state_dir = h.tmp_path("state")
    os.makedirs(state_dir, exist_ok=True)
    state_file = os.path.join(state_dir, "state.json")
    port = h.free_port()
    lb, admin = _start([h.service(port, [a, b])], state_file=state_file)
    _set_state(admin, a.addr, "maint")
    _set_weight(admin, b.addr, 9)
    doc = json.load(open(state_file))
    assert doc["version"] == 1 and len(doc["overrides"]) == 2, doc
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert sorted(os.listdir(state_dir)) == ["state.json"], os.listdir(state_dir)
    lb.signal(signal.SIGTERM)
    assert lb.wait(10) == 0
    lb2 = h.start_l4lb(open(lb.config_path).read())
    assert _backend(admin, a.addr)["admin_state"] == "maint"
    assert _backend(admin, b.addr)["weight"] == 9
    lb2.signal(signal.SIGTERM)
    assert lb2.wait(10) == 0
    # The file changed b's weight while l4lb was stopped: the file wins at start.
    cfg = h.config(h.service(port, [a, {"address": b.addr, "weight": 4}]),
                   admin={"listen": admin, "token_file": _token_file()}, state_file=state_file)
    lb3 = h.start_l4lb(cfg)
    lb3.wait_for_log(rf'msg="override dropped" service=web backend={re.escape(b.addr)} what=weight')
    assert _backend(admin, b.addr)["weight"] == 4
    assert _backend(admin, a.addr)["admin_state"] == "maint"
    doc = json.load(open(state_file))
    assert [o["backend"] for o in doc["overrides"]] == [a.addr], doc


def test_a_corrupt_state_file_is_a_warning_and_start_goes_on():
    a = h.start_backend("id", name="alpha")
    state_file = h.tmp_path("corrupt.json")
    with open(state_file, "w") as f:
        f.write('{"version":1,"overrides":[{"service":"web"')
    lb, admin = _start([h.service(h.free_port(), [a])], state_file=state_file)
    lb.wait_for_log(r'level=warn msg="state file ignored"')
    assert _backend(admin, a.addr)["admin_state"] == "ready"
    _set_state(admin, a.addr, "drain")  # and the next change writes a good one
    assert json.load(open(state_file))["overrides"][0]["state"] == "drain"


# ---------------------------------------------------------------------------- slow start


def _slow_start_shares(algorithm: str) -> None:
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    window = 4.0
    lb, admin = _start([h.service(h.free_port(), [a, b], algorithm=algorithm,
                                  slow_start=f"{window:g}s",
                                  health_check={"type": "tcp", "interval": "100ms",
                                                "timeout": "500ms", "healthy_threshold": 1,
                                                "unhealthy_threshold": 1})])
    lb.listen = _stats(admin)["services"][0]["listen"]
    _set_state(admin, b.addr, "maint")
    time.sleep(0.2)
    t0 = time.monotonic()
    _set_state(admin, b.addr, "ready")  # maint -> ready: slow start
    first = []
    while time.monotonic() - t0 < window / 4:
        first.append(_name(lb))
    share = first.count("bravo") / len(first)
    assert len(first) >= 20 and share <= 0.30, (share, len(first))
    time.sleep(max(0.0, t0 + window + 0.3 - time.monotonic()))
    after = [_name(lb) for _ in range(40)]
    share = after.count("bravo") / len(after)
    assert 0.4 <= share <= 0.6, (share, after)


def test_slow_start_under_weighted_round_robin():
    _slow_start_shares("weighted_round_robin")


def test_slow_start_under_least_connections():
    _slow_start_shares("least_connections")


def test_slow_start_after_a_backend_comes_back_from_down():
    a = h.start_backend("id", name="alpha")
    port = h.free_port()
    b = h.start_backend("id", name="bravo", listen=f"127.0.0.1:{port}")
    lb, admin = _start([h.service(h.free_port(), [{"address": a.addr, "weight": 10},
                                                  {"address": b.addr, "weight": 10}],
                                  algorithm="weighted_round_robin", slow_start="3s",
                                  health_check={"type": "tcp", "interval": "100ms",
                                                "timeout": "500ms", "healthy_threshold": 1,
                                                "unhealthy_threshold": 1})])
    lb.listen = _stats(admin)["services"][0]["listen"]
    b.stop()
    h.eventually(lambda: _backend(admin, b.addr)["state"] == "down", timeout=5)
    b2 = h.start_backend("id", name="bravo", listen=f"127.0.0.1:{port}")
    h.eventually(lambda: _backend(admin, b.addr)["state"] == "up", timeout=5)
    w = _backend(admin, b.addr)["weight"]
    assert 1 <= w <= 5, w  # weight x t / slow_start, early in the window
    h.eventually(lambda: _backend(admin, b.addr)["weight"] == 10, timeout=6, msg="full weight after the window")
    assert b2
