"""Byte streams through l4lb: integrity, half-close, resets, idle timeout, IPv6."""

import hashlib
import json
import os
import socket
import threading
import time

import harness as h

MiB = 1 << 20


def _bulk_echo(lb, n_clients: int, size: int) -> float:
    """N_CLIENTS each send SIZE random bytes through LB to an echo backend and check they
    get exactly those bytes back; returns the seconds it took."""
    chunk = 256 * 1024
    results = [None] * n_clients
    errors = []

    def client(i):
        try:
            s = h.connect(lb.listen, timeout=60.0)
            sent_hash = hashlib.sha256()
            send_err = []

            def sender():
                try:
                    left = size
                    while left:
                        block = os.urandom(min(chunk, left))
                        sent_hash.update(block)
                        s.sendall(block)
                        left -= len(block)
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    send_err.append(e)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            got_hash = hashlib.sha256()
            got = 0
            deadline = time.monotonic() + 90
            while True:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                b = s.recv(1 << 18)
                if not b:
                    break
                got_hash.update(b)
                got += len(b)
            t.join(10)
            s.close()
            if send_err:
                raise send_err[0]
            results[i] = (got, got_hash.hexdigest(), sent_hash.hexdigest())
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    dt = time.monotonic() - t0
    assert not errors, f"{len(errors)} clients failed: {errors[:4]}"
    bad = [(i, r) for i, r in enumerate(results) if r is None or r[0] != size or r[1] != r[2]]
    assert not bad, (f"{len(bad)} of {n_clients} clients got wrong bytes, e.g. "
                     f"client {bad[0][0]}: {bad[0][1] and bad[0][1][0]} bytes back of {size}")
    return dt


@h.timeout(120)
def test_bulk_integrity_32_clients():
    echo = h.start_backend("echo")
    lb = h.start_service([echo], connect_timeout="2s")
    n_clients, size = 32, 8 * MiB
    dt = _bulk_echo(lb, n_clients, size)
    return f"{n_clients * size * 2 / MiB / dt:.0f} MiB/s through l4lb in {dt:.1f}s"


@h.timeout(120)
def test_bulk_integrity_with_splice_always_and_never():
    # global.splice: every bulk flow spliced, or every byte copied (the default `auto`
    # copies to destinations on this host while the worker has CPU to spare).
    echo = h.start_backend("echo")
    out = []
    for mode in ("always", "never"):
        admin = h.free_port()
        lb = h.start_service([echo], connect_timeout="2s",
                             global_opts={"splice": mode, "admin": {"listen": f"127.0.0.1:{admin}"}})
        n_clients, size = 8, 8 * MiB
        dt = _bulk_echo(lb, n_clients, size)
        st, body = h.http_get(admin, "/stats")
        assert st == 200
        svc = json.loads(body)["services"][0]
        assert svc["bytes_in"] == n_clients * size and svc["bytes_out"] == n_clients * size, svc
        lb.kill()
        out.append(f"{mode}: {n_clients * size * 2 / MiB / dt:.0f} MiB/s")
    return ", ".join(out)


def test_half_close_passes_through():
    digest = h.start_backend("digest")
    lb = h.start_service([digest])
    data = os.urandom(MiB)
    s = h.connect(lb.listen, timeout=5.0)
    h.send_all(s, data)
    s.shutdown(socket.SHUT_WR)
    answer = h.recv_all(s, timeout=10.0)  # the line, then EOF
    expected = f"{len(data)} {h.sha256(data)}\n".encode()
    assert answer == expected, f"expected {expected!r}, got {answer!r}"


def test_server_speaks_first():
    b = h.start_backend("id", name="greeter")
    lb = h.start_service([b])
    s = h.connect(lb.listen, timeout=3.0)
    line = h.recv_line(s, timeout=2.0)
    assert line == b"greeter\n", f"got {line!r}"
    # The connection stays usable after the greeting: closing our side ends it cleanly.
    s.shutdown(socket.SHUT_WR)
    rest = h.recv_all(s, timeout=3.0)
    assert rest == b"", f"unexpected extra bytes {rest!r}"


def test_backend_reset_mid_stream_ends_client():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.ctx().add_sock(ls)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(10)
    reset_at = []
    got_bytes = []

    def server():
        try:
            c, _ = ls.accept()
        except OSError:
            return
        c.settimeout(5)
        try:
            got_bytes.append(c.recv(5))
        except OSError:
            got_bytes.append(b"")
        h.set_linger_reset(c)
        reset_at.append(time.monotonic())
        c.close()

    t = threading.Thread(target=server, daemon=True)
    t.start()
    lb = h.start_service([f"127.0.0.1:{ls.getsockname()[1]}"])
    s = h.connect(lb.listen, timeout=3.0)
    try:
        s.sendall(b"hello, are you there? " * 10)
    except OSError:
        pass
    t.join(5)
    assert reset_at, "the backend never got the connection"
    assert got_bytes and got_bytes[0], f"backend read {got_bytes!r} before resetting"
    left = max(0.0, reset_at[0] + 1.0 - time.monotonic())
    how = h.wait_closed(s, timeout=left + 0.05)
    dt = time.monotonic() - reset_at[0]
    assert dt <= 1.05, f"client connection ended {dt:.2f}s after the backend reset"
    return f"client saw {how} {dt * 1000:.0f} ms after the reset"


@h.timeout(30)
def test_idle_timeout_closes_idle_and_spares_active():
    echo = h.start_backend("echo")
    lb = h.start_service([echo], idle_timeout="1s")

    active_result = {}

    def active():
        try:
            s = h.connect(lb.listen, timeout=3.0)
            t_end = time.monotonic() + 3.0
            n = 0
            while time.monotonic() < t_end:
                msg = f"ping {n}\n".encode()
                s.sendall(msg)
                got = h.recv_exactly(s, len(msg), timeout=1.0)
                if got != msg:
                    active_result["error"] = f"echo {n}: sent {msg!r}, got {got!r}"
                    return
                n += 1
                time.sleep(0.3)
            msg = b"still here\n"
            s.sendall(msg)
            got = h.recv_exactly(s, len(msg), timeout=1.0)
            if got != msg:
                active_result["error"] = f"final echo: got {got!r}"
                return
            active_result["pings"] = n
            s.close()
        except BaseException as e:  # noqa: BLE001
            active_result["error"] = f"active connection: {e}"

    t = threading.Thread(target=active, daemon=True)
    t.start()

    idle = h.connect(lb.listen, timeout=3.0)
    h.send_all(idle, b"x")
    assert h.recv_exactly(idle, 1, timeout=2.0) == b"x"
    t0 = time.monotonic()
    how = h.wait_closed(idle, timeout=2.5)
    dt = time.monotonic() - t0
    assert how == "eof", f"idle connection ended by {how}, expected an orderly close (FIN)"
    assert dt >= 0.8, f"idle connection closed after only {dt:.2f}s (idle_timeout 1s)"

    t.join(6)
    assert not t.is_alive(), "active connection thread hung"
    assert "error" not in active_result, active_result.get("error")
    assert active_result.get("pings", 0) >= 8, f"only {active_result.get('pings')} pings"
    return f"idle closed after {dt:.2f}s"


def test_ipv6_listen_and_backend():
    if not h.ipv6_available():
        raise h.Skip("::1 unavailable on this host")
    echo = h.start_backend("echo", listen="[::1]:0")
    ident = h.start_backend("id", name="six", listen="[::1]:0")
    assert echo.addr.startswith("[::1]:"), echo.addr
    lb = h.start_service([echo], listen_host="::1")
    s = h.connect(lb.listen, timeout=3.0)
    data = os.urandom(200_000)
    got = []
    rt = threading.Thread(target=lambda: got.append(h.recv_all(s, timeout=10.0)), daemon=True)
    rt.start()
    h.send_all(s, data)
    s.shutdown(socket.SHUT_WR)
    rt.join(12)
    assert got and got[0] == data, f"echo over IPv6: sent {len(data)} bytes, got {len(got[0]) if got else None}"

    lb2 = h.start_service([ident], listen_host="::1")
    s2 = h.connect(lb2.listen, timeout=3.0)
    assert h.recv_line(s2, timeout=2.0) == b"six\n"


@h.timeout(90)
def test_slow_backend_bounds_memory():
    _slow_backend_bounds_memory({})


@h.timeout(60)
def test_slow_backend_bounds_memory_when_copying():
    # Copy only: what the backend does not take waits in the flow's copy buffer (at most
    # one per direction), never piles up.
    _slow_backend_bounds_memory({"splice": "never"})


def _slow_backend_bounds_memory(global_opts: dict):
    sink = h.start_backend("sink", read_chunk=64 * 1024, read_delay_ms=10)
    lb = h.start_service([sink], connect_timeout="2s", global_opts=global_opts)
    time.sleep(0.2)
    rss0 = lb.rss_kib()
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            try:
                samples.append(lb.rss_kib())
            except (OSError, AssertionError):
                return
            time.sleep(0.1)

    st = threading.Thread(target=sampler, daemon=True)
    st.start()

    total_max, push_for = 256 * MiB, 15.0
    pattern = os.urandom(4 * MiB)
    view = memoryview(pattern)
    sent_hash = hashlib.sha256()
    sent = 0
    s = h.connect(lb.listen, timeout=5.0)
    send_error = None
    t_end = time.monotonic() + push_for
    s.settimeout(0.2)
    while sent < total_max and time.monotonic() < t_end:
        off = sent % len(pattern)
        piece = view[off:min(len(pattern), off + 256 * 1024, off + total_max - sent)]
        try:
            n = s.send(piece)
        except socket.timeout:
            continue
        except OSError as e:
            send_error = e
            break
        sent_hash.update(piece[:n])
        sent += n
    assert send_error is None, f"send failed after {sent} bytes: {send_error!r}"
    s.shutdown(socket.SHUT_WR)
    answer = h.recv_all(s, timeout=45.0)
    stop.set()
    st.join(2)
    peak = max(samples) if samples else rss0
    grew = peak - rss0
    assert len(samples) >= 50, f"only {len(samples)} RSS samples"
    assert grew <= 16 * 1024, f"RSS grew by {grew} KiB (start {rss0} KiB, peak {peak} KiB)"
    expected = f"{sent} {sent_hash.hexdigest()}\n".encode()
    assert answer == expected, f"sink reported {answer!r}, expected {expected!r}"
    return f"pushed {sent / MiB:.0f} MiB, RSS {rss0} -> peak {peak} KiB"


@h.timeout(30)
def test_idle_close_is_a_fin_even_with_bytes_stuck_in_l4lb():
    # The backend sends a lot and then only waits; the client never reads. Nothing moves, so
    # the idle timeout closes the pair: with FIN on both sides (INTERFACE.md), although bytes
    # nobody will take are still queued in l4lb's sockets.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    h.ctx().add_sock(srv)
    lb = h.start_service([f"127.0.0.1:{srv.getsockname()[1]}"], idle_timeout="1s", health_check={"type": "none"})
    client = h.connect(lb.listen, timeout=3.0)
    h.send_all(client, b"hello")
    srv.settimeout(3.0)
    conn, _ = srv.accept()
    h.ctx().add_sock(conn)
    conn.setblocking(False)
    sent = 0
    chunk = b"z" * 65536
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:  # until every buffer on the way is full
        try:
            sent += conn.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
            try:
                sent += conn.send(chunk)
            except BlockingIOError:
                break
    conn.setblocking(True)
    assert conn.recv(5) == b"hello"
    conn.settimeout(5.0)
    t0 = time.monotonic()
    try:
        tail = conn.recv(1)  # the backend waits for more from the client
    except ConnectionResetError:
        h.fail(f"backend reset by the idle close after {time.monotonic() - t0:.2f}s ({sent} bytes sent)")
    assert tail == b"", tail
    took = time.monotonic() - t0
    assert 0.5 <= took <= 3.0, f"idle close after {took:.2f}s"
    # The client gets what l4lb had already sent it, then EOF (not a reset).
    got, how = 0, "eof"
    client.settimeout(3.0)
    while True:
        try:
            b = client.recv(1 << 16)
        except ConnectionResetError:
            how = "reset"
            break
        if not b:
            break
        got += len(b)
    assert how == "eof", f"client saw a reset after {got} bytes"
    return f"{sent} bytes sent by the backend, {got} reached the client before the FIN; backend saw FIN after {took:.2f}s"
