"""Integration test harness for l4lb (Python 3.11, stdlib only).

Every test runs in its own child process (see run.py) with one Context: every process a
test starts is recorded (and its PID written to CTX_DIR/pids, so run.py can kill it by PID
even if the test hangs), every socket it opens through these helpers is closed, and the
temp dir is removed at the end.

API in brief
  free_port(host)                          a port that was free a moment ago
  start_backend(mode, name=None, listen="127.0.0.1:0", read_chunk=, read_delay_ms=,
                health_file=, hold_ms=, stats=, also_listen=[...])
                                           -> Backend(.addr .host .port .pid .name .stop()
                                              .addrs .counts())
  start_l4lb(config, wait_ready=True)      -> L4lb(.pid .config_path .stderr_text() .signal()
                                              .wait(timeout) .rss_kib() .fd_count() ...)
  run_l4lb(args, timeout=10)               -> CompletedProcess (for -t, --version, bad starts)
  service(...), config(...)                build a config dict (or pass YAML text)
  connect(addr, timeout), send_all, recv_all, recv_line, recv_exactly, wait_closed
  eventually(fn, timeout), sha256(data), tmp_path(name), Skip, fail(msg)

Env L4LB_WORKERS=N: every config written through config(), write_config() or start_l4lb()
gets global.workers: N unless it sets workers itself (@single_worker tests: always 1).
Env L4LB_FAIL_ON_TSAN=1 (read by run.py): a ThreadSanitizer report in the stderr of an l4lb
the test started fails the test.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bin(env: str, default: str) -> str:
    path = os.environ.get(env) or default
    if not os.path.isabs(path):
        cand = os.path.abspath(path)
        path = cand if os.path.exists(cand) else os.path.join(ROOT, path)
    return path


L4LB_BIN = _bin("L4LB_BIN", "build/l4lb")
L4LB_TESTD = _bin("L4LB_TESTD", "build/l4lb-testd")
# L4LB_WORKERS=N runs every test with N workers (see workers()); unset: l4lb's default (1).
_WORKERS_ENV = os.environ.get("L4LB_WORKERS", "").strip()
if _WORKERS_ENV and not re.fullmatch(r"[1-9][0-9]*|auto", _WORKERS_ENV):
    raise SystemExit(f"L4LB_WORKERS must be a positive integer or auto, got {_WORKERS_ENV!r}")
_single_worker = False  # set by run.py for a test marked @single_worker
# A sanitizer build (make test SANITIZE=1|thread builds in build/san, build/tsan): its
# allocator keeps freed memory in quarantine, so RSS bounds say nothing there.
SANITIZED = os.path.basename(os.path.dirname(os.path.abspath(L4LB_BIN))) in ("san", "tsan")


class Skip(Exception):
    """Raise to report a test as skipped (e.g. ::1 unavailable)."""


class TestFailure(AssertionError):
    pass


def fail(msg: str) -> None:
    raise TestFailure(msg)


# ---------------------------------------------------------------------------- context

class Context:
    def __init__(self, directory: str | None = None):
        self.dir = directory or tempfile.mkdtemp(prefix="l4lb-it-")
        self.procs: list[subprocess.Popen] = []
        self.socks: list[socket.socket] = []
        self.l4lbs: list["L4lb"] = []
        self.lock = threading.Lock()
        self.counter = 0

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def add_proc(self, p: subprocess.Popen) -> None:
        with self.lock:
            self.procs.append(p)
            with open(os.path.join(self.dir, "pids"), "a") as f:
                f.write(f"{p.pid}\n")

    def add_sock(self, s: socket.socket) -> None:
        with self.lock:
            self.socks.append(s)

    def cleanup(self) -> None:
        with self.lock:
            socks, self.socks = self.socks, []
            procs, self.procs = self.procs, []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def l4lb_stderr_tail(self, lines: int = 30) -> str:
        out = []
        for l in self.l4lbs:
            text = l.stderr_text()
            tail = text.splitlines()[-lines:]
            if tail:
                out.append(f"--- l4lb pid {l.pid} stderr (last {len(tail)} lines):")
                out.extend(tail)
        return "\n".join(out)


_ctx: Context | None = None


def ctx() -> Context:
    global _ctx
    if _ctx is None:
        # Used outside run.py (e.g. from a REPL): clean up at interpreter exit.
        _ctx = Context()
        atexit.register(_cleanup_default, _ctx)
    return _ctx


def _cleanup_default(c: Context) -> None:
    c.cleanup()
    shutil.rmtree(c.dir, ignore_errors=True)


def set_context(c: Context | None) -> None:
    global _ctx
    _ctx = c


def tmp_path(name: str) -> str:
    return os.path.join(ctx().dir, name)


# ---------------------------------------------------------------------------- small utils

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def eventually(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05,
               msg: str = "condition") -> Any:
    """Calls fn until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            fail(f"{msg} not reached within {timeout}s{extra}")
        time.sleep(interval)


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, never one this test process handed out before (two calls in a row
    could otherwise get the same port back from the kernel before either is bound)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    return port


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def split_addr(addr: str | int | tuple) -> tuple[str, int]:
    if isinstance(addr, int):
        return "127.0.0.1", addr
    if isinstance(addr, tuple):
        return addr[0], int(addr[1])
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
        return host, int(port)
    host, _, port = addr.rpartition(":")
    return host, int(port)


def join_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------- sockets

def connect(addr: str | int | tuple, timeout: float = 3.0, track: bool = True) -> socket.socket:
    """Connects with a timeout; the socket keeps `timeout` as its I/O timeout."""
    host, port = split_addr(addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if track:
        ctx().add_sock(s)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def set_linger_reset(s: socket.socket) -> None:
    """Makes close() send a RST."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset(s: socket.socket) -> None:
    set_linger_reset(s)
    s.close()


def send_all(s: socket.socket, data: bytes, timeout: float | None = None) -> None:
    if timeout is not None:
        s.settimeout(timeout)
    s.sendall(data)


def recv_all(s: socket.socket, timeout: float = 10.0, limit: int = 1 << 31) -> bytes:
    """Reads until EOF; fails if EOF does not come within `timeout` seconds overall."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"no EOF within {timeout}s (got {len(out)} bytes: {bytes(out[:80])!r})")
        s.settimeout(left)
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            fail(f"no EOF within {timeout}s (got {len(out)} bytes: {bytes(out[:80])!r})")
        if not b:
            return bytes(out)
        out += b
        if len(out) > limit:
            fail(f"more than {limit} bytes received")


def recv_exactly(s: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"got {len(out)} of {n} bytes within {timeout}s")
        s.settimeout(left)
        try:
            b = s.recv(n - len(out))
        except socket.timeout:
            fail(f"got {len(out)} of {n} bytes within {timeout}s")
        if not b:
            fail(f"EOF after {len(out)} of {n} bytes: {bytes(out[:80])!r}")
        out += b
    return bytes(out)


def recv_line(s: socket.socket, timeout: float = 5.0, limit: int = 4096) -> bytes:
    """Reads one line (up to and including b'\\n') byte by byte."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"no complete line within {timeout}s (got {bytes(out)!r})")
        s.settimeout(left)
        try:
            b = s.recv(1)
        except socket.timeout:
            fail(f"no complete line within {timeout}s (got {bytes(out)!r})")
        if not b:
            fail(f"EOF before end of line (got {bytes(out)!r})")
        out += b
        if len(out) > limit:
            fail("line too long")
    return bytes(out)


def wait_closed(s: socket.socket, timeout: float) -> str:
    """Waits for the peer to close: returns 'eof' or 'reset'. Data that arrives is
    discarded. Fails if the connection is still open after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"connection still open after {timeout}s")
        s.settimeout(left)
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            fail(f"connection still open after {timeout}s")
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return "reset"
        if not b:
            return "eof"


class PacedSender:
    """Sends TOTAL bytes on S in CHUNK-byte blocks with PAUSE seconds between them, from a
    thread (a transfer that is still in flight when the test acts), then shuts down
    writing. .sent, .error, .done; .sha256 is the hex digest of what was sent."""

    def __init__(self, s: socket.socket, total: int, chunk: int = 256 * 1024,
                 pause: float = 0.012):
        self.sent, self.error, self.done = 0, None, False
        self._hash = hashlib.sha256()
        pattern = os.urandom(4 << 20)

        def run():
            try:
                while self.sent < total:
                    off = self.sent % len(pattern)
                    block = pattern[off:off + chunk]
                    s.sendall(block)
                    self._hash.update(block)
                    self.sent += len(block)
                    time.sleep(pause)
                s.shutdown(socket.SHUT_WR)
                self.done = True
            except OSError as e:
                self.error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (a connect is refused)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return True


# ---------------------------------------------------------------------------- backends

class Backend:
    def __init__(self, proc: subprocess.Popen, addr: str, name: str, mode: str,
                 addrs: list[str] | None = None, stats_addr: str | None = None):
        self.proc = proc
        self.pid = proc.pid
        self.addr = addr
        self.addrs = addrs or [addr]  # every port it listens on (also_listen=)
        self.stats_addr = stats_addr
        self.host, self.port = split_addr(addr)
        self.name = name
        self.mode = mode

    def counts(self) -> dict[str, int]:
        """Needs stats="127.0.0.1:0": {"open", "peak", "accepted"} over every port; "peak"
        is the most connections open at once since the previous counts()."""
        if self.stats_addr is None:
            fail(f"{self!r} was started without stats=")
        s = connect(self.stats_addr, timeout=3.0)
        try:
            words = recv_line(s, timeout=3.0).decode().split()
        finally:
            s.close()
        return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def __repr__(self) -> str:
        return f"Backend({self.mode} {self.name} {self.addr} pid {self.pid})"


def start_backend(mode: str, name: str | None = None, listen: str = "127.0.0.1:0",
                  also_listen: list[str] | None = None, **opts: Any) -> Backend:
    """Starts l4lb-testd; opts: read_chunk, read_delay_ms, health_file, hold_ms, stats.
    also_listen: more ports for the same process (connections counted together)."""
    if not os.path.exists(L4LB_TESTD):
        fail(f"test backend binary {L4LB_TESTD} not found (make build/l4lb-testd)")
    args = [L4LB_TESTD, "--mode", mode, "--listen", listen]
    for extra in also_listen or []:
        args += ["--listen", extra]
    if name is not None:
        args += ["--name", name]
    for k, v in opts.items():
        if v is None:
            continue
        args += ["--" + k.replace("_", "-"), str(v)]
    c = ctx()
    errf = open(os.path.join(c.dir, f"testd-{c.next_id()}.stderr"), "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=errf, close_fds=True)
    errf.close()
    c.add_proc(proc)
    line = _readline_timeout(proc.stdout, 5.0)
    if not line.startswith(b"listening "):
        fail(f"l4lb-testd {' '.join(args[1:])} did not start: {line!r}")
    words = line.decode().split()
    addrs = words[1:words.index("stats")] if "stats" in words else words[1:]
    stats_addr = words[words.index("stats") + 1] if "stats" in words else None
    return Backend(proc, addrs[0], name if name is not None else addrs[0], mode, addrs, stats_addr)


def _readline_timeout(f, timeout: float) -> bytes:
    result: list[bytes] = []

    def rd():
        try:
            result.append(f.readline())
        except Exception:  # noqa: BLE001
            result.append(b"")

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else b""


def dead_addr() -> str:
    """127.0.0.1:PORT where nothing listens (connects are refused)."""
    return f"127.0.0.1:{free_port()}"


# ---------------------------------------------------------------------------- config

def service(listen: str | int, backends: list, name: str = "web", **opts: Any) -> dict:
    """A service dict. backends: list of addresses, Backend objects or dicts."""
    bl = []
    for b in backends:
        if isinstance(b, Backend):
            bl.append({"address": b.addr})
        elif isinstance(b, str):
            bl.append({"address": b})
        else:
            bl.append(b)
    if isinstance(listen, int):
        listen = f"127.0.0.1:{listen}"
    svc: dict = {"name": name, "listen": listen, "algorithm": "round_robin",
                 "connect_timeout": "2s", "health_check": {"type": "none"}}
    svc.update(opts)
    svc["backends"] = bl
    return svc


def workers() -> int | str | None:
    """The workers every config gets unless it says otherwise: L4LB_WORKERS (int or
    "auto"), 1 in a @single_worker test, None when L4LB_WORKERS is unset."""
    if not _WORKERS_ENV:
        return None
    if _single_worker:
        return 1
    return _WORKERS_ENV if _WORKERS_ENV == "auto" else int(_WORKERS_ENV)


def config(*services: dict, **global_opts: Any) -> dict:
    g = {"drain_timeout": "5s", "log_level": "info"}
    if workers() is not None:
        g["workers"] = workers()
    g.update(global_opts)
    return {"global": g, "services": list(services)}


def with_workers(cfg: str | dict) -> str | dict:
    """CFG with global.workers set to workers() where it sets no workers itself (a dict is
    copied; YAML text gets one line in its top-level `global:` block, or a `global:` block
    appended at the end). Unchanged when L4LB_WORKERS is unset, or when the text has no
    top-level block mapping to add to."""
    n = workers()
    if n is None:
        return cfg
    if isinstance(cfg, dict):
        if "services" not in cfg and "global" not in cfg:
            return cfg
        g = cfg.get("global")
        if g is None:
            g = {}
        if not isinstance(g, dict) or "workers" in g:
            return cfg
        return {**cfg, "global": {**g, "workers": n}}
    lines = cfg.splitlines(keepends=True)
    top = [i for i, l in enumerate(lines) if re.match(r"global\s*:", l)]
    if not top:
        if not any(re.match(r"services\s*:", l) for l in lines):
            return cfg
        out = cfg + ("" if cfg.endswith("\n") else "\n") + f"global:\n  workers: {n}\n"
    else:
        i = top[0]
        if not re.fullmatch(r"global\s*:\s*(#.*)?\n?", lines[i]):
            return cfg  # flow style or anchors: leave it alone
        indent, j = None, i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith("#")
                                  or lines[j][0] in " \t"):
            m = re.match(r"([ \t]+)(\S[^:]*?)\s*:", lines[j])
            if m and not lines[j].lstrip().startswith("#"):
                if indent is None:
                    indent = m.group(1)
                if m.group(1) == indent and m.group(2) == "workers":
                    return cfg
            j += 1
        lines.insert(i + 1, f"{indent or '  '}workers: {n}\n")
        out = "".join(lines)
    try:
        import yaml  # optional: only to make sure the edit did not break the document
    except ImportError:
        return out
    try:
        before = yaml.safe_load(cfg)
    except yaml.YAMLError:
        return cfg  # invalid anyway: its errors (and their lines) are what the test is after
    try:
        after = yaml.safe_load(out)
        ok = isinstance(after, dict) and after.get("global", {}).get("workers") == n
    except (yaml.YAMLError, AttributeError):
        ok = False
    return out if ok and isinstance(before, dict) else cfg


def _yaml_scalar(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./@-][A-Za-z0-9_./@:\[\]-]*", s) and not s.startswith("["):
        return s
    return json.dumps(s)


def to_yaml(v: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return pad + "{}\n"
        out = ""
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out += f"{pad}{k}:\n" + to_yaml(x, indent + 2)
            elif isinstance(x, dict):
                out += f"{pad}{k}: {{}}\n"
            elif isinstance(x, list):
                out += f"{pad}{k}: []\n"
            else:
                out += f"{pad}{k}: {_yaml_scalar(x)}\n"
        return out
    if isinstance(v, list):
        out = ""
        for x in v:
            if isinstance(x, (dict, list)) and x:
                body = to_yaml(x, indent + 2)
                out += f"{pad}- " + body[indent + 2:]
            else:
                out += f"{pad}- {_yaml_scalar(x) if not isinstance(x, (dict, list)) else json.dumps(x)}\n"
        return out
    return pad + _yaml_scalar(v) + "\n"


def write_config(cfg: str | dict, name: str | None = None) -> str:
    c = ctx()
    path = os.path.join(c.dir, name or f"l4lb-{c.next_id()}.yaml")
    cfg = with_workers(cfg)
    text = cfg if isinstance(cfg, str) else to_yaml(cfg)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------- l4lb

class L4lb:
    def __init__(self, proc: subprocess.Popen, config_path: str, log_path: str):
        self.proc = proc
        self.pid = proc.pid
        self.config_path = config_path
        self.log_path = log_path
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._eof = False
        self.start_time = time.monotonic()
        self.listen: str | None = None  # set by start_service()
        self.port: int | None = None
        self.host: str | None = None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        with open(self.log_path, "ab") as logf:
            while True:
                try:
                    b = os.read(self.proc.stderr.fileno(), 65536)
                except OSError:
                    b = b""
                if b:
                    logf.write(b)
                    logf.flush()
                with self._cond:
                    if b:
                        self._buf += b
                    else:
                        self._eof = True
                    self._cond.notify_all()
                if not b:
                    return

    def stderr_text(self) -> str:
        with self._lock:
            return self._buf.decode(errors="replace")

    def log_lines(self) -> list[str]:
        return self.stderr_text().splitlines()

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 5.0,
                     start: int = 0) -> str:
        """Waits for a stderr line matching the regex `pattern` (searching from byte `start`)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._buf[start:].decode(errors="replace")
                for line in text.splitlines():
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    break
                self._cond.wait(min(left, 0.1))
        rc = self.proc.poll()
        state = f"exited with {rc}" if rc is not None else "still running"
        fail(f"l4lb ({state}) logged no line matching {rx.pattern!r} within {timeout}s")

    def log_offset(self) -> int:
        with self._lock:
            return len(self._buf)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Waits for exit; returns the exit code (negative: killed by a signal)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            fail(f"l4lb did not exit within {timeout}s")
        self._reader.join(2)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=5)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        fail("no VmRSS in /proc/PID/status")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fds(self) -> dict[str, str]:
        out = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                out[fd] = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                pass
        return out

    def thread_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))


READY_RX = re.compile(r'\bmsg=(ready\b|"ready")')


def start_l4lb(cfg: str | dict, wait_ready: bool = True, ready_timeout: float = 5.0,
               extra_args: list[str] | None = None, env: dict | None = None) -> L4lb:
    """Writes the config, starts l4lb -c FILE and waits for its msg=ready log line."""
    if not os.path.exists(L4LB_BIN):
        fail(f"l4lb binary {L4LB_BIN} not found (make build/l4lb)")
    path = write_config(cfg)
    c = ctx()
    log_path = os.path.join(c.dir, f"l4lb-{c.next_id()}.stderr")
    e = dict(os.environ)
    e.pop("NOTIFY_SOCKET", None)
    e.pop("JOURNAL_STREAM", None)
    if env:
        e.update(env)
    proc = subprocess.Popen([L4LB_BIN, "-c", path] + (extra_args or []),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, close_fds=True, env=e)
    c.add_proc(proc)
    l = L4lb(proc, path, log_path)
    c.l4lbs.append(l)
    if wait_ready:
        l.wait_for_log(READY_RX, timeout=ready_timeout)
    return l


def run_l4lb(args: list[str], timeout: float = 10.0, cwd: str | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs l4lb to completion with ARGS; returns a CompletedProcess with text output."""
    if not os.path.exists(L4LB_BIN):
        fail(f"l4lb binary {L4LB_BIN} not found (make build/l4lb)")
    e = dict(os.environ)
    e.pop("NOTIFY_SOCKET", None)
    e.pop("JOURNAL_STREAM", None)
    if env:
        e.update(env)
    proc = subprocess.Popen([L4LB_BIN] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=e, close_fds=True)
    ctx().add_proc(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        fail(f"l4lb {' '.join(args)} did not exit within {timeout}s; stderr: {err[-500:]!r}")
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       out.decode(errors="replace"), err.decode(errors="replace"))


# ---------------------------------------------------------------------------- decorators

def timeout(seconds: float):
    """Per-test hard timeout (default 60 s): @harness.timeout(90)."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


def single_worker(fn):
    """Runs the test with workers 1 whatever L4LB_WORKERS says (only for a test that by
    nature cannot hold with several workers; say why next to it)."""
    fn.single_worker = True
    return fn


def start_service(backends: list, listen_host: str = "127.0.0.1",
                  global_opts: dict | None = None, **svc_opts: Any) -> L4lb:
    """Starts l4lb with one service "web" on a free port of listen_host in front of
    BACKENDS; the returned L4lb has .listen ("HOST:PORT") and .port set."""
    port = free_port(listen_host)
    listen = join_addr(listen_host, port)
    cfg = config(service(listen, backends, **svc_opts), **(global_opts or {}))
    l = start_l4lb(cfg)
    l.listen = listen
    l.port = port
    l.host = listen_host
    return l


def http_get(addr: str | int, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET; returns (status, body)."""
    s = connect(addr, timeout=timeout)
    host, port = split_addr(addr)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: {join_addr(host, port)}\r\n\r\n".encode())
    data = recv_all(s, timeout=timeout)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        fail(f"bad HTTP answer from {addr}{path}: {data[:200]!r}")
    return status, body
