#!/usr/bin/env python3
"""Load generators and a light echo backend for test/integration/test_load.py
(Python 3.11, stdlib only, one epoll loop per process: no thread per connection).

  loadgen.py echo-server [--listen HOST:PORT]
      epoll echo backend that can hold thousands of connections; prints
      "listening HOST:PORT"; on EOF from a client: shutdown(SHUT_WR) and close.
  loadgen.py hold       --target HOST:PORT --n N [--src-first 10 --src-count 40]
      opens N connections, each sends b"x" and waits for its echo; prints one JSON line
      {"established":..,"failed":..}; holds them until stdin reaches EOF; closes them,
      prints {"closed":N} and exits.
  loadgen.py slowloris  --target HOST:PORT --n N [--interval 1.0]
      opens N connections that each send one byte every INTERVAL seconds (phases spread
      over the interval) and read the echo; prints {"ready":..} once all are connected and
      have had their first byte echoed, runs until stdin reaches EOF, then prints the
      final JSON {"sent":..,"echoed":..,"closed_by_peer":..} and exits.
  loadgen.py short      --target HOST:PORT --count N --duration S [--concurrency C]
      N short connections (or as many as fit in S seconds): connect, send 16 bytes, read
      the 16-byte echo, close; prints one JSON line with the count and failures.
  loadgen.py resets     --target HOST:PORT --count N [--concurrency C] [--seed S]
      N connections that each end with a reset (SO_LINGER 0) at a random moment: at once,
      after a random short delay, right after sending, after the echo, or mid-transfer
      (after 64-512 KiB of a bulk send with the echo only partly read); prints JSON.
  loadgen.py transfers  --target HOST:PORT --n N --size BYTES [--chunk BYTES --pace S]
      N concurrent transfers to a digest backend, each sending SIZE bytes of its own data
      in CHUNKs every PACE seconds, then half-closing and reading "<count> <sha256>\\n";
      prints {"inflight":..} once every transfer has sent its first chunk, then the final
      JSON {"ok":..,"bad":[..]} .

Client sockets bind to 127.0.0.FIRST..127.0.0.(FIRST+COUNT-1) with IP_BIND_ADDRESS_NO_PORT,
so the source port is chosen at connect time per 4-tuple and neither the ephemeral range
nor TIME_WAIT runs out. Every mode raises its own RLIMIT_NOFILE soft limit to the hard one.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import resource
import selectors
import socket
import struct
import sys
import threading
import time

IP_BIND_ADDRESS_NO_PORT = 24
LINGER_RST = struct.pack("ii", 1, 0)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def out(obj) -> None:
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


class Sources:
    def __init__(self, first: int, count: int):
        self.addrs = [f"127.0.0.{first + i}" for i in range(count)]
        self.i = 0

    def new_socket(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((self.addrs[self.i % len(self.addrs)], 0))
        self.i += 1
        s.setblocking(False)
        return s


def start_connect(src: Sources, target: tuple[str, int]) -> socket.socket:
    s = src.new_socket()
    err = s.connect_ex(target)
    if err not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(err, os.strerror(err))
    return s


def stdin_eof_event() -> threading.Event:
    ev = threading.Event()

    def rd():
        try:
            while sys.stdin.buffer.read(1):
                pass
        except OSError:
            pass
        ev.set()

    threading.Thread(target=rd, daemon=True).start()
    return ev


# ---------------------------------------------------------------------------- echo server

def echo_server(a) -> None:
    raise_nofile()
    host, port = split(a.listen)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytearray] = {}
    out(f"listening {host}:{ls.getsockname()[1]}")

    def close(c):
        try:
            sel.unregister(c)
        except (KeyError, ValueError):
            pass
        pending.pop(c, None)
        c.close()

    while True:
        for key, ev in sel.select():
            c = key.fileobj
            if key.data is None:
                for _ in range(256):
                    try:
                        n, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break  # e.g. EMFILE: try again on the next event
                    n.setblocking(False)
                    sel.register(n, selectors.EVENT_READ, "c")
                continue
            if ev & selectors.EVENT_WRITE:
                buf = pending.get(c)
                try:
                    k = c.send(buf) if buf else 0
                except (BlockingIOError, InterruptedError):
                    k = 0
                except OSError:
                    close(c)
                    continue
                del buf[:k]
                if not buf:
                    pending.pop(c, None)
                    sel.modify(c, selectors.EVENT_READ, "c")
                continue
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                close(c)
                continue
            if not data:
                try:
                    c.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                close(c)
                continue
            try:
                k = c.send(data)
            except (BlockingIOError, InterruptedError):
                k = 0
            except OSError:
                close(c)
                continue
            if k < len(data):  # stop reading until the rest is written
                pending[c] = bytearray(data[k:])
                sel.modify(c, selectors.EVENT_WRITE, "c")


# ---------------------------------------------------------------------------- hold

def hold(a) -> None:
    hard = raise_nofile()
    if a.n + 64 > hard:
        sys.exit(f"hold: RLIMIT_NOFILE hard limit {hard} too low for {a.n}")
    target = split(a.target)
    src = Sources(a.src_first, a.src_count)
    sel = selectors.DefaultSelector()
    est: list[socket.socket] = []
    failed: dict[str, int] = {}
    started = 0
    inflight = 0
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    while (started < a.n or inflight) and time.monotonic() < deadline:
        while started < a.n and inflight < a.window:
            started += 1
            try:
                s = start_connect(src, target)
            except OSError as e:
                failed[f"connect: {e.strerror}"] = failed.get(f"connect: {e.strerror}", 0) + 1
                continue
            sel.register(s, selectors.EVENT_WRITE, "connecting")
            inflight += 1
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            if key.data == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    why = f"connect: {os.strerror(err)}"
                else:
                    try:
                        s.send(b"x")
                        sel.modify(s, selectors.EVENT_READ, "waiting")
                        continue
                    except OSError as e:
                        why = f"send: {e.strerror}"
            else:
                try:
                    b = s.recv(16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    b, why = None, f"recv: {e.strerror}"
                if b == b"x":
                    sel.unregister(s)
                    est.append(s)
                    inflight -= 1
                    continue
                if b is not None:
                    why = f"echo {b!r}"
            failed[why] = failed.get(why, 0) + 1
            sel.unregister(s)
            s.close()
            inflight -= 1
    if inflight:
        failed["no echo before timeout"] = inflight
    out({"established": len(est), "failed": sum(failed.values()), "why": failed,
         "elapsed": round(time.monotonic() - t0, 3)})
    stdin_eof_event().wait()
    for s in est:
        s.close()
    out({"closed": len(est)})


# ---------------------------------------------------------------------------- slowloris

def slowloris(a) -> None:
    raise_nofile()
    target = split(a.target)
    src = Sources(a.src_first, a.src_count)
    sel = selectors.DefaultSelector()
    conns: list[socket.socket] = []
    failures: dict[str, int] = {}
    for i in range(a.n):
        try:
            s = src.new_socket()
            s.setblocking(True)
            s.settimeout(5)
            s.connect(target)
            s.setblocking(False)
            conns.append(s)
        except OSError as e:
            failures[f"connect: {e}"] = failures.get(f"connect: {e}", 0) + 1
        if i % 256 == 255:
            time.sleep(0.01)
    index = {s: i for i, s in enumerate(conns)}
    alive = [True] * len(conns)
    sent = [0] * len(conns)
    echoed = [0] * len(conns)
    closed_by_peer = 0
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    stop = stdin_eof_event()
    t0 = time.monotonic()
    n = max(1, len(conns))
    # connection i sends at t0 + i/n*interval + k*interval
    next_due = [t0 + i * a.interval / n for i in range(len(conns))]
    ready_said = False
    order = sorted(range(len(conns)), key=lambda i: next_due[i])
    pos = 0
    while not stop.is_set():
        now = time.monotonic()
        # send what is due (the order is stable: every connection keeps its phase)
        for _ in range(len(order)):
            i = order[pos]
            if next_due[i] > now:
                break
            if alive[i]:
                try:
                    conns[i].send(b"s")
                    sent[i] += 1
                except OSError:
                    pass
            next_due[i] += a.interval
            pos = (pos + 1) % len(order)
        wait = max(0.0, min(0.05, next_due[order[pos]] - time.monotonic())) if order else 0.05
        for key, _ in sel.select(timeout=wait):
            s = key.fileobj
            i = index[s]
            try:
                b = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                b = b""
            if b:
                echoed[i] += len(b)
                continue
            closed_by_peer += 1
            alive[i] = False
            sel.unregister(s)
        if not ready_said and all(e >= 1 for e in echoed):
            ready_said = True
            out({"ready": len(conns), "connect_failures": failures,
                 "elapsed": round(time.monotonic() - t0, 3)})
        if not ready_said and time.monotonic() - t0 > 15:
            ready_said = True
            out({"ready": sum(1 for e in echoed if e >= 1), "connect_failures": failures,
                 "not_echoed": sum(1 for e in echoed if e < 1)})
    out({"connections": len(conns), "sent": sum(sent), "echoed": sum(echoed),
         "closed_by_peer": closed_by_peer, "min_sent": min(sent) if sent else 0,
         "connect_failures": failures, "seconds": round(time.monotonic() - t0, 2)})
    for s in conns:
        s.close()


# ---------------------------------------------------------------------------- short

def short(a) -> None:
    raise_nofile()
    target = split(a.target)
    src = Sources(a.src_first, a.src_count)
    sel = selectors.DefaultSelector()
    done = started = inflight = 0
    failed: dict[str, int] = {}
    t0 = time.monotonic()
    stop_at = t0 + a.duration
    lat_max = 0.0

    def bad(s, why):
        nonlocal inflight
        failed[why] = failed.get(why, 0) + 1
        sel.unregister(s)
        s.close()
        inflight -= 1

    while True:
        now = time.monotonic()
        while started < a.count and inflight < a.concurrency and now < stop_at:
            started += 1
            try:
                s = start_connect(src, target)
            except OSError as e:
                failed[f"connect: {e.strerror}"] = failed.get(f"connect: {e.strerror}", 0) + 1
                continue
            msg = b"%015d\n" % started
            sel.register(s, selectors.EVENT_WRITE, [msg, bytearray(), now])
            inflight += 1
        if not inflight:
            break
        if now > stop_at + 10:
            failed["unfinished 10 s after the deadline"] = inflight
            break
        for key, ev in sel.select(timeout=0.5):
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    bad(s, f"connect: {os.strerror(err)}")
                    continue
                try:
                    s.send(st[0])  # 16 bytes always fit in an empty send buffer
                except OSError as e:
                    bad(s, f"send: {e.strerror}")
                    continue
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                b = s.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                bad(s, f"recv: {e.strerror}")
                continue
            if not b:
                bad(s, f"EOF after {len(st[1])} bytes")
                continue
            st[1] += b
            if len(st[1]) < 16:
                continue
            if bytes(st[1]) != st[0]:
                bad(s, "wrong echo")
                continue
            lat_max = max(lat_max, time.monotonic() - st[2])
            sel.unregister(s)
            s.close()
            inflight -= 1
            done += 1
    out({"done": done, "failed": sum(failed.values()), "why": failed,
         "elapsed": round(time.monotonic() - t0, 3), "max_latency_ms": round(lat_max * 1000, 1)})


# ---------------------------------------------------------------------------- resets

KINDS = ["rst-at-once", "rst-after-delay", "rst-after-send", "rst-after-echo", "rst-mid-transfer"]


def resets(a) -> None:
    raise_nofile()
    target = split(a.target)
    src = Sources(a.src_first, a.src_count)
    rnd = random.Random(a.seed)
    sel = selectors.DefaultSelector()
    blob = os.urandom(1 << 20)
    kinds = {k: 0 for k in KINDS}
    bulk = {"bytes_sent": 0, "bytes_read": 0, "reset_by_timer": 0}
    failed: dict[str, int] = {}
    started = inflight = 0
    timers: dict[socket.socket, float] = {}  # reset at this time (if still open)
    t0 = time.monotonic()

    class St:
        __slots__ = ("kind", "phase", "msg", "got", "sent", "limit", "at")

    def rst(s, st):
        nonlocal inflight
        timers.pop(s, None)
        if st.kind == "rst-mid-transfer":
            bulk["bytes_sent"] += st.sent
            bulk["bytes_read"] += st.got
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        s.close()
        kinds[st.kind] += 1
        inflight -= 1

    def bad(s, why):
        nonlocal inflight
        failed[why] = failed.get(why, 0) + 1
        timers.pop(s, None)
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        inflight -= 1

    while (started < a.count or inflight) and time.monotonic() - t0 < a.timeout:
        while started < a.count and inflight < a.concurrency:
            started += 1
            try:
                s = start_connect(src, target)
            except OSError as e:
                failed[f"connect: {e.strerror}"] = failed.get(f"connect: {e.strerror}", 0) + 1
                continue
            st = St()
            st.kind = rnd.choice(KINDS)
            st.phase = "connecting"
            st.msg = b"reset test %08d\n" % started
            st.got = 0
            st.sent = 0
            st.limit = rnd.randrange(64 << 10, 512 << 10)
            st.at = rnd.uniform(0.0, 0.05)
            sel.register(s, selectors.EVENT_WRITE, st)
            inflight += 1
        now = time.monotonic()
        for s in [s for s, due in timers.items() if due <= now]:
            st = sel.get_key(s).data
            if st.kind == "rst-mid-transfer":
                bulk["reset_by_timer"] += 1
            rst(s, st)
        wait = max(0.0, min([0.2] + [due - now for due in timers.values()]))
        for key, ev in sel.select(timeout=wait):
            s, st = key.fileobj, key.data
            if st.phase == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    bad(s, f"connect: {os.strerror(err)}")
                    continue
                if st.kind == "rst-at-once":
                    rst(s, st)
                    continue
                if st.kind == "rst-after-delay":
                    st.phase = "delay"
                    sel.modify(s, selectors.EVENT_READ, st)
                    timers[s] = time.monotonic() + st.at
                    continue
                if st.kind == "rst-mid-transfer":
                    st.phase = "bulk"
                    timers[s] = time.monotonic() + 1.0  # if the echo backs up: reset anyway
                    sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
                    continue
                try:
                    s.send(st.msg)
                except OSError as e:
                    bad(s, f"send: {e.strerror}")
                    continue
                if st.kind == "rst-after-send":
                    rst(s, st)
                    continue
                st.phase = "echo"
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            if st.phase == "delay":
                try:
                    if s.recv(64) == b"":
                        bad(s, "EOF while waiting")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    bad(s, f"recv: {e.strerror}")
                continue
            if st.phase == "echo":
                try:
                    b = s.recv(64)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    bad(s, f"recv: {e.strerror}")
                    continue
                if not b:
                    bad(s, "EOF before echo")
                    continue
                st.got += len(b)
                if st.got >= len(st.msg):
                    rst(s, st)
                continue
            # bulk: send until the limit, read only a quarter as much echo, then reset
            if ev & selectors.EVENT_READ and st.got < st.limit // 4:
                try:
                    b = s.recv(16384)
                    if not b:
                        bad(s, "EOF mid-transfer")
                        continue
                    st.got += len(b)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    bad(s, f"recv: {e.strerror}")
                    continue
            if ev & selectors.EVENT_WRITE and st.sent < st.limit:
                off = st.sent % len(blob)
                try:
                    st.sent += s.send(blob[off:off + min(65536, st.limit - st.sent)])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    bad(s, f"send: {e.strerror}")
                    continue
            if st.sent >= st.limit:
                rst(s, st)
            elif st.got >= st.limit // 4:
                sel.modify(s, selectors.EVENT_WRITE, st)
    if inflight:
        failed["unfinished at timeout"] = inflight
    out({"reset": sum(kinds.values()), "kinds": kinds, "mid_transfer": bulk,
         "failed": sum(failed.values()),
         "why": failed, "elapsed": round(time.monotonic() - t0, 3)})


# ---------------------------------------------------------------------------- transfers

def transfers(a) -> None:
    raise_nofile()
    target = split(a.target)
    src = Sources(a.src_first, a.src_count)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.n):
        s = src.new_socket()
        s.setblocking(True)
        s.settimeout(5)
        s.connect(target)
        s.setblocking(False)
        data = random.Random(i * 7919 + 1).randbytes(a.size)
        st = {"i": i, "data": data, "sent": 0, "next": 0.0, "reply": bytearray(), "done": False,
              "expected": f"{a.size} {hashlib.sha256(data).hexdigest()}\n".encode(), "err": None}
        conns.append((s, st))
    t0 = time.monotonic()
    for k, (s, st) in enumerate(conns):
        st["next"] = t0 + k * a.pace / len(conns)
        sel.register(s, selectors.EVENT_READ, st)
    inflight_said = False
    left = len(conns)
    while left and time.monotonic() - t0 < a.timeout:
        now = time.monotonic()
        for s, st in conns:
            if st["done"] or st["err"] or st["sent"] >= a.size or st["next"] > now:
                continue
            piece = st["data"][st["sent"]:st["sent"] + a.chunk]
            try:
                st["sent"] += s.send(piece)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                st["err"] = f"send at {st['sent']}: {e.strerror}"
                left -= 1
                sel.unregister(s)
                continue
            st["next"] = now + a.pace
            if st["sent"] >= a.size:
                s.shutdown(socket.SHUT_WR)
        if not inflight_said and all(st["sent"] > 0 for _, st in conns):
            inflight_said = True
            out({"inflight": len(conns), "min_sent": min(st["sent"] for _, st in conns),
                 "max_sent": max(st["sent"] for _, st in conns)})
        for key, _ in sel.select(timeout=0.01):
            s, st = key.fileobj, key.data
            try:
                b = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                st["err"] = f"recv after {st['sent']} sent: {e.strerror}"
                b = None
            if b:
                st["reply"] += b
                continue
            if b is not None and st["sent"] < a.size:
                st["err"] = f"EOF after {st['sent']} of {a.size} sent"
            st["done"] = True
            left -= 1
            sel.unregister(s)
    bad = []
    for s, st in conns:
        if st["err"]:
            bad.append(f"#{st['i']}: {st['err']}")
        elif not st["done"]:
            bad.append(f"#{st['i']}: unfinished, sent {st['sent']}")
        elif bytes(st["reply"]) != st["expected"]:
            bad.append(f"#{st['i']}: digest {bytes(st['reply'])!r} != {st['expected']!r}")
        s.close()
    out({"ok": len(conns) - len(bad), "bad": bad[:10], "n_bad": len(bad),
         "elapsed": round(time.monotonic() - t0, 3)})


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo-server")
    e.add_argument("--listen", default="127.0.0.1:0")
    for name in ("hold", "slowloris", "short", "resets", "transfers"):
        q = sub.add_parser(name)
        q.add_argument("--target", required=True)
        q.add_argument("--src-first", type=int, default=10)
        q.add_argument("--src-count", type=int, default=40)
        q.add_argument("--timeout", type=float, default=50.0)
        if name in ("hold", "slowloris", "transfers"):
            q.add_argument("--n", type=int, required=True)
        if name == "hold":
            q.add_argument("--window", type=int, default=256)
        if name == "slowloris":
            q.add_argument("--interval", type=float, default=1.0)
        if name in ("short", "resets"):
            q.add_argument("--count", type=int, required=True)
            q.add_argument("--concurrency", type=int, default=32)
        if name == "short":
            q.add_argument("--duration", type=float, default=40.0)
        if name == "resets":
            q.add_argument("--seed", type=int, default=1)
        if name == "transfers":
            q.add_argument("--size", type=int, default=1 << 20)
            q.add_argument("--chunk", type=int, default=32 << 10)
            q.add_argument("--pace", type=float, default=0.1)
    a = p.parse_args()
    {"echo-server": echo_server, "hold": hold, "slowloris": slowloris, "short": short,
     "resets": resets, "transfers": transfers}[a.mode](a)


if __name__ == "__main__":
    main()
