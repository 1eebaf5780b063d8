"""systemd integration: sd_notify protocol, journal log format, the unit file, make install,
man pages."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import harness as h

ROOT = h.ROOT
INTERFACE_MD = os.path.join(os.path.dirname(ROOT), "shared", "INTERFACE.md")


# ---------------------------------------------------------------------------- sd_notify

class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self):
        # sun_path is at most 107 bytes: a short directory of our own.
        self.dir = tempfile.mkdtemp(prefix="l4n-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        h.ctx().add_sock(self.sock)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs: list[tuple[int, list[str]]] = []  # (CLOCK_MONOTONIC µs at receipt, lines)
        self.cond = threading.Condition()
        self.closed = False
        self.on_message = None  # called (in the reader thread) with each message's lines
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            lines = data.decode(errors="replace").split("\n")
            lines = [l for l in lines if l]
            if self.on_message:
                self.on_message(lines)
            with self.cond:
                self.msgs.append((time.monotonic_ns() // 1000, lines))
                self.cond.notify_all()

    def wait_for(self, pred, start: int, timeout: float, what: str) -> int:
        """Index (>= START) of the first message whose lines satisfy PRED."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.msgs)):
                    if pred(self.msgs[i][1]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    h.fail(f"no sd_notify message with {what} within {timeout}s; got {self.dump()}")
                self.cond.wait(min(left, 0.1))

    def count(self) -> int:
        with self.cond:
            return len(self.msgs)

    def dump(self) -> list[list[str]]:
        return [m[1] for m in self.msgs]

    def close(self):
        self.closed = True
        self.sock.close()
        self.thread.join(1)
        shutil.rmtree(self.dir, ignore_errors=True)


def _has(line: str):
    return lambda lines: line in lines


def _field(lines: list[str], key: str) -> str | None:
    for l in lines:
        if l.startswith(key + "="):
            return l[len(key) + 1:]
    return None


def _events(msgs: list[list[str]]) -> list[str]:
    out = []
    for lines in msgs:
        for l in lines:
            if l in ("READY=1", "RELOADING=1", "STOPPING=1"):
                out.append(l.split("=")[0])
    return out


@h.timeout(60)
def test_sd_notify_ready_reload_failed_reload_stopping():
    a = h.start_backend("id", name="alpha")
    b = h.start_backend("id", name="bravo")
    port = h.free_port()
    listen = f"127.0.0.1:{port}"
    ns = NotifySocket()
    try:
        lb = h.start_l4lb(h.config(h.service(listen, [a])), env={"NOTIFY_SOCKET": ns.path})
        i_ready = ns.wait_for(_has("READY=1"), 0, 5.0, "READY=1")
        i_status = ns.wait_for(lambda m: _field(m, "STATUS") is not None, i_ready, 3.0,
                               "STATUS= after READY=1")
        status = _field(ns.msgs[i_status][1], "STATUS")
        assert re.search(r"\b1 services?\b.*\b1/1 backends up\b", status), \
            f"STATUS after start should count 1 service and 1/1 backends up: {status!r}"

        # A valid reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
        h.write_config(h.config(h.service(listen, [a, b])), os.path.basename(lb.config_path))
        n = ns.count()
        t0 = time.monotonic_ns() // 1000
        lb.signal(signal.SIGHUP)
        i_rel = ns.wait_for(_has("RELOADING=1"), n, 5.0, "RELOADING=1")
        t_recv, rel_lines = ns.msgs[i_rel]
        usec = _field(rel_lines, "MONOTONIC_USEC")
        assert usec is not None and usec.isdigit(), \
            f"RELOADING=1 must come with MONOTONIC_USEC=<µs> in the same message: {rel_lines}"
        usec = int(usec)
        assert t0 - 1000 <= usec <= t_recv + 1000, \
            (f"MONOTONIC_USEC={usec} not CLOCK_MONOTONIC at the reload: SIGHUP sent at {t0}, "
             f"message received at {t_recv} (off by {usec - t0} µs)")
        i_ok = ns.wait_for(_has("READY=1"), i_rel + 1, 5.0, "READY=1 after the reload")
        i_st2 = ns.wait_for(lambda m: (_field(m, "STATUS") or "").find("2/2 backends up") >= 0,
                            i_rel, 3.0, "STATUS= with 2/2 backends up after the reload")
        assert i_st2 >= i_rel and i_ok > i_rel

        # A rejected reload: RELOADING=1, then READY=1 with STATUS=reload failed: ...
        h.write_config("services:\n  - name: web\n    listen: " + listen +
                       "\n    backends:\n      - address: " + a.addr + "\n        weight: heavy\n",
                       os.path.basename(lb.config_path))
        n = ns.count()
        lb.signal(signal.SIGHUP)
        i_rel2 = ns.wait_for(_has("RELOADING=1"), n, 5.0, "RELOADING=1 (rejected config)")
        i_ok2 = ns.wait_for(_has("READY=1"), i_rel2 + 1 if "READY=1" not in ns.msgs[i_rel2][1]
                            else i_rel2, 5.0, "READY=1 after the rejected reload")
        failed = [(_field(m, "STATUS") or "") for _, m in ns.msgs[i_rel2:i_ok2 + 1]]
        failed = [s for s in failed if s.startswith("reload failed")]
        assert failed, (f"no STATUS=reload failed... between RELOADING=1 and READY=1: "
                        f"{ns.dump()[i_rel2:i_ok2 + 1]}")
        assert "weight" in failed[-1], f"STATUS should carry the first error: {failed[-1]!r}"
        assert lb.alive()

        # SIGTERM: STOPPING=1.
        n = ns.count()
        lb.signal(signal.SIGTERM)
        ns.wait_for(_has("STOPPING=1"), n, 5.0, "STOPPING=1")
        rc = lb.wait(10)
        assert rc == 0, f"exit code {rc}"
        time.sleep(0.1)
        ev = _events(ns.dump())
        want = ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"]
        assert ev == want, f"notification order {ev}, expected {want}; messages {ns.dump()}"
        return f"MONOTONIC_USEC {usec - t0} µs after the SIGHUP; failed STATUS {failed[-1][:60]!r}"
    finally:
        ns.close()


def test_sd_notify_ready_after_listeners_and_admin_bound():
    a = h.start_backend("id", name="alpha")
    p1, p2, pa = h.free_port(), h.free_port(), h.free_port()
    ns = NotifySocket()
    probes: dict = {}

    def on_message(lines):
        # Runs the moment READY=1 arrives: everything must already accept connections.
        if "READY=1" in lines and not probes:
            for name, port in (("web", p1), ("db", p2), ("admin", pa)):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                    probes[name] = "ok"
                except OSError as e:
                    probes[name] = repr(e)

    ns.on_message = on_message
    try:
        cfg = h.config(h.service(p1, [a]), h.service(p2, [a], name="db"),
                       admin={"listen": f"127.0.0.1:{pa}"})
        lb = h.start_l4lb(cfg, env={"NOTIFY_SOCKET": ns.path})
        ns.wait_for(_has("READY=1"), 0, 5.0, "READY=1")
        h.eventually(lambda: len(probes) == 3, timeout=3.0, msg="probes after READY=1")
        assert probes == {"web": "ok", "db": "ok", "admin": "ok"}, \
            f"at READY=1 not everything accepted connections: {probes}"
        assert lb.alive()
    finally:
        ns.close()


# ---------------------------------------------------------------------------- journal

LEVEL_PRIO = {"error": 3, "warn": 4, "info": 6, "debug": 7}


def test_journal_stream_lines_carry_priority_and_no_ts():
    a = h.start_backend("id", name="alpha")
    dead = h.dead_addr()
    port = h.free_port()
    cfg = h.config(h.service(port, [a, dead], health_check={"type": "tcp", "interval": "30s",
                                                             "timeout": "500ms"}),
                   log_level="debug")
    path = h.write_config(cfg)
    errpath = h.tmp_path("journal-stderr.log")
    errf = open(errpath, "ab")
    st = os.fstat(errf.fileno())
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    proc = subprocess.Popen([h.L4LB_BIN, "-c", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=errf, env=env, close_fds=True)
    errf.close()
    h.ctx().add_proc(proc)

    def text():
        with open(errpath, "rb") as f:
            return f.read().decode(errors="replace")

    h.eventually(lambda: "msg=ready" in text(), timeout=5.0, msg="ready line")
    h.eventually(lambda: 'msg="backend down"' in text(), timeout=5.0, msg="backend down line")
    s = h.connect(port)
    assert h.recv_line(s) == b"alpha\n"
    s.close()
    with open(path, "w") as f:
        f.write("services: [\n")
    os.kill(proc.pid, signal.SIGHUP)
    h.eventually(lambda: 'msg="reload failed"' in text(), timeout=5.0, msg="reload failed line")
    os.kill(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        h.fail("l4lb did not exit within 10s of SIGTERM")
    assert rc == 0, f"exit code {rc}"

    lines = text().splitlines()
    assert lines, "no log lines"
    bad = []
    prios = set()
    for l in lines:
        m = re.match(r"<([0-7])>level=(\w+) msg=", l)
        if not m or "ts=" in l:
            bad.append(l)
            continue
        prio, level = int(m.group(1)), m.group(2)
        if LEVEL_PRIO.get(level) != prio:
            bad.append(l)
        prios.add(prio)
    assert not bad, f"lines not of the form '<PRIO>level=... msg=...' without ts=: {bad[:5]}"
    assert {3, 4, 6} <= prios, f"expected <3>, <4> and <6> lines, saw priorities {sorted(prios)}"

    # JOURNAL_STREAM naming some other file: plain logfmt with ts=.
    lb = h.start_l4lb(h.config(h.service(h.free_port(), [a])),
                      env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    first = lb.log_lines()[0]
    assert first.startswith("ts="), f"JOURNAL_STREAM not naming stderr, yet: {first!r}"
    return f"priorities seen: {sorted(prios)}"


# ---------------------------------------------------------------------------- unit file

def _unit_lines(path: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment."""
    out, section = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.append((section, k.strip(), v.strip()))
    return out


def test_unit_file_directives():
    path = os.path.join(ROOT, "systemd", "l4lb.service")
    lines = _unit_lines(path)
    svc: dict[str, list[str]] = {}
    for sec, k, v in lines:
        if sec == "Service":
            svc.setdefault(k, []).append(v)

    def one(k):
        v = svc.get(k)
        assert v and len(v) == 1, f"[Service] {k}= should be set once, got {v}"
        return v[0]

    assert one("Type") == "notify"
    assert one("ExecStart").split()[:3] == ["/usr/local/sbin/l4lb", "-c", "/etc/l4lb/l4lb.yaml"], \
        one("ExecStart")
    rel = svc.get("ExecReload", [])
    assert len(rel) == 2, f"ExecReload: --check first, then kill -HUP: {rel}"
    assert re.search(r"\bl4lb\b.*(--check|-t)\b.*-c /etc/l4lb/l4lb.yaml", rel[0]), rel[0]
    assert re.fullmatch(r"/bin/kill -HUP \$MAINPID", rel[1]), rel[1]
    assert one("Restart") == "on-failure"
    assert "1" in one("RestartPreventExitStatus").split(), "no restart after a config error (exit 1)"
    m = re.fullmatch(r"(\d+)(s|min)?", one("TimeoutStopSec"))
    assert m, one("TimeoutStopSec")
    secs = int(m.group(1)) * (60 if m.group(2) == "min" else 1)
    assert secs > 30, f"TimeoutStopSec {secs}s must be above the default drain_timeout 30s"
    assert one("LimitNOFILE") == "1048576"
    assert one("DynamicUser") == "yes"
    assert one("AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert one("CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                 ("PrivateDevices", "yes"), ("ProtectHome", "yes")):
        assert one(k) == v, f"{k}={one(k)}, expected {v}"
    fams = set(one("RestrictAddressFamilies").split())
    assert fams == {"AF_INET", "AF_INET6", "AF_UNIX"}, fams
    assert "@system-service" in svc.get("SystemCallFilter", []), svc.get("SystemCallFilter")
    # systemd 252 (Debian 12) has no Type=notify-reload; KillSignal must stay SIGTERM (drain).
    assert svc.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"], svc.get("KillSignal")
    # Upgrade: the new process (not the main one yet) sends READY=1, the old MAINPID=.
    assert one("NotifyAccess") == "all", one("NotifyAccess")
    # fd store: the listening sockets survive a crash and restart.
    assert int(one("FileDescriptorStoreMax")) >= 16, one("FileDescriptorStoreMax")


# ---------------------------------------------------------------------------- make install

def _make_install(destdir: str, *extra: str) -> subprocess.CompletedProcess:
    """make install with the binary under test, without rebuilding it."""
    if not shutil.which("make"):
        raise h.Skip("make not installed")
    bdir = tempfile.mkdtemp(prefix="bin-", dir=h.ctx().dir)
    shutil.copy2(h.L4LB_BIN, os.path.join(bdir, "l4lb"))
    fake = os.path.join(h.ctx().dir, "fakebin")
    os.makedirs(fake, exist_ok=True)
    marker = os.path.join(h.ctx().dir, "systemctl-called")
    with open(os.path.join(fake, "systemctl"), "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 0\n")
    os.chmod(os.path.join(fake, "systemctl"), 0o755)
    env = dict(os.environ)
    env["PATH"] = fake + ":" + env.get("PATH", "/usr/bin:/bin")
    for k in ("PREFIX", "SBINDIR", "UNITDIR", "MANDIR", "DOCDIR", "DESTDIR"):
        env.pop(k, None)
    r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "install",
                        f"DESTDIR={destdir}", f"BUILD={bdir}", "-o", f"{bdir}/l4lb", *extra],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, f"make install failed ({r.returncode}): {r.stdout[-800:]} {r.stderr[-800:]}"
    assert not os.path.exists(marker), f"make install ran systemctl: {open(marker).read()!r}"
    return r


def _check_file(path: str, mode: int) -> None:
    assert os.path.isfile(path), f"{path} not installed"
    got = stat.S_IMODE(os.stat(path).st_mode)
    assert got == mode, f"{path}: mode {oct(got)}, expected {oct(mode)}"


def test_make_install_tree():
    dest = tempfile.mkdtemp(prefix="dest-", dir=h.ctx().dir)
    r = _make_install(dest)
    binp = dest + "/usr/local/sbin/l4lb"
    unit = dest + "/lib/systemd/system/l4lb.service"
    conf = dest + "/etc/l4lb/l4lb.yaml"
    example = dest + "/usr/local/share/doc/l4lb/l4lb.yaml.example"
    man8 = dest + "/usr/local/share/man/man8/l4lb.8"
    man5 = dest + "/usr/local/share/man/man5/l4lb.yaml.5"
    _check_file(binp, 0o755)
    for p in (unit, conf, example, man8, man5):
        _check_file(p, 0o644)
    with open(binp, "rb") as f1, open(h.L4LB_BIN, "rb") as f2:
        assert f1.read() == f2.read(), "installed binary differs from the one built"
    with open(os.path.join(ROOT, "conf", "l4lb.yaml")) as f:
        example_text = f.read()
    assert open(conf).read() == example_text and open(example).read() == example_text
    ver = subprocess.run([binp, "--version"], capture_output=True, text=True, timeout=10)
    assert ver.returncode == 0 and ver.stdout.startswith("l4lb "), ver
    chk = subprocess.run([binp, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0, f"installed config does not validate: {chk.stderr}"
    out = r.stdout + r.stderr
    assert "systemctl daemon-reload" in out and "systemctl enable" in out, \
        f"make install should print the next steps: {out!r}"
    assert "/usr/local/sbin/l4lb" in open(unit).read()

    # A second install keeps an existing (edited) config.
    with open(conf, "a") as f:
        f.write("# edited by the admin\n")
    edited = open(conf).read()
    _make_install(dest)
    assert open(conf).read() == edited, "make install overwrote an existing /etc/l4lb/l4lb.yaml"

    # PREFIX / SBINDIR / UNITDIR: files land there and the unit names the binary's path.
    dest2 = tempfile.mkdtemp(prefix="dest2-", dir=h.ctx().dir)
    _make_install(dest2, "PREFIX=/usr", "SBINDIR=/usr/bin", "UNITDIR=/etc/systemd/system")
    _check_file(dest2 + "/usr/bin/l4lb", 0o755)
    _check_file(dest2 + "/usr/share/man/man8/l4lb.8", 0o644)
    _check_file(dest2 + "/usr/share/man/man5/l4lb.yaml.5", 0o644)
    _check_file(dest2 + "/usr/share/doc/l4lb/l4lb.yaml.example", 0o644)
    _check_file(dest2 + "/etc/l4lb/l4lb.yaml", 0o644)
    u2 = open(dest2 + "/etc/systemd/system/l4lb.service").read()
    execs = re.findall(r"^Exec\w+=(\S+)", u2, re.M)
    assert execs and all(e in ("/usr/bin/l4lb", "/bin/kill") for e in execs), \
        f"unit installed with SBINDIR=/usr/bin runs {execs}"
    assert not os.path.exists(dest2 + "/usr/local"), "PREFIX=/usr still wrote under /usr/local"


def test_installed_unit_passes_systemd_analyze_verify():
    sa = shutil.which("systemd-analyze")
    if not sa:
        raise h.Skip("systemd-analyze not installed (package systemd); unit not verified")
    # Installed as `make install` does (scripts/install.sh, default paths, under DESTDIR).
    dest = tempfile.mkdtemp(prefix="dest-", dir=h.ctx().dir)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFIX", "SBINDIR", "UNITDIR", "MANDIR", "DOCDIR")}
    r = subprocess.run([os.path.join(ROOT, "scripts", "install.sh"), h.L4LB_BIN],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=dict(env, DESTDIR=dest), timeout=60)
    assert r.returncode == 0, f"scripts/install.sh failed ({r.returncode}): {r.stderr[-800:]}"
    unit = dest + "/lib/systemd/system/l4lb.service"
    mandir = dest + "/usr/local/share/man"
    # Every Documentation=man:PAGE(N) is installed in the tree (whether or not man is).
    doc_lines = "\n".join(re.findall(r"^Documentation=.*", open(unit).read(), re.M))
    docs = re.findall(r"man:([\w.-]+)\((\d)\)", doc_lines)
    assert docs, "the unit names no man page in Documentation="
    for page, sec in docs:
        _check_file(f"{mandir}/man{sec}/{page}.{sec}", 0o644)
    # verify --root needs the targets the unit refers to (sysinit.target, ...): give the
    # root a copy of the host's unit directory next to the installed tree. The Exec*
    # binaries are looked up inside the root (/usr/local/sbin/l4lb as installed).
    root = tempfile.mkdtemp(prefix="root-", dir=h.ctx().dir)
    shutil.copytree(dest, root, symlinks=True, dirs_exist_ok=True)
    host_units = "/usr/lib/systemd/system" if os.path.isdir("/usr/lib/systemd/system") \
        else "/lib/systemd/system"
    os.makedirs(root + "/usr/lib/systemd", exist_ok=True)
    shutil.copytree(host_units, root + "/usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True, ignore_dangling_symlinks=True)
    shutil.copy2(unit, root + "/usr/lib/systemd/system/l4lb.service")
    env["MANPATH"] = mandir  # Documentation=man:... is looked up with man(1), in the tree
    env["SYSTEMD_LOG_LEVEL"] = "notice"
    # Without man(1) (man-db is not in a minimal Debian) verify would report every page as
    # missing: the pages were checked above, verify checks everything else.
    has_man = shutil.which("man", path=env.get("PATH")) is not None
    args = [sa, "verify", f"--root={root}"] + ([] if has_man else ["--man=no"]) + ["l4lb.service"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, cwd=root)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, f"systemd-analyze verify (exit {r.returncode}): {out}"
    ver = subprocess.run([sa, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    pages = ", ".join(f"{p}({s})" for p, s in docs)
    return ver + (f"; man {pages} found by man(1)" if has_man
                  else f"; man(1) not installed: {pages} checked in the tree, verify --man=no")


# ---------------------------------------------------------------------------- man pages

def _render(path: str, squeeze: bool = True) -> str:
    """The man page as plain text, wide and unhyphenated; fails on groff warnings."""
    if not shutil.which("groff"):
        raise h.Skip("groff not installed")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    r = subprocess.run(["groff", "-ww", "-man", "-Tutf8", "-rLL=200n", "-rHY=0", "-P-cbu", path],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and not r.stderr.strip(), f"groff on {path}: {r.stderr}"
    text = r.stdout.replace("\u2010", "-").replace("\u2212", "-")
    return re.sub(r"[ \t]+", " ", text) if squeeze else text


def _interface_config_keys() -> list[str]:
    """Every key of the config reference (INTERFACE.md, or the commented example)."""
    if os.path.exists(INTERFACE_MD):
        with open(INTERFACE_MD) as f:
            md = f.read()
        sec = md[md.index("## Config file"):]
        block = sec[sec.index("```yaml") + 7:]
        block = block[:block.index("```")]
    else:
        with open(os.path.join(ROOT, "conf", "l4lb.yaml")) as f:
            block = f.read()
    keys = []
    for line in block.splitlines():
        m = re.match(r"\s*#?\s*(?:- )?([a-z_]+):", line)
        if m and m.group(1) not in keys:
            keys.append(m.group(1))
    return keys


def test_man_pages_match_help_and_config_reference():
    page8 = _render(os.path.join(ROOT, "docs", "l4lb.8"))
    page5 = _render(os.path.join(ROOT, "docs", "l4lb.yaml.5"))

    helptext = h.run_l4lb(["--help"]).stdout
    opts = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", helptext.split("Signals:")[0]))
    assert {"-c", "--config", "-t", "--check", "--version", "-h", "--help"} <= opts, opts
    for o in sorted(opts):
        assert re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", page8), f"l4lb(8) lacks {o}"
    version = h.run_l4lb(["--version"]).stdout.strip()
    assert version in page8, f"l4lb(8) does not say {version!r}"
    assert "/etc/l4lb/l4lb.yaml" in page8 and "FILE: ok" in page8
    for code, words in (("0", "clean exit"), ("1", "invalid config"), ("2", "bad command line"),
                        ("3", "could not start")):
        assert re.search(r"^\s*" + code + r"\s+" + words, page8, re.M | re.I), \
            f"l4lb(8) EXIT STATUS lacks {code} = {words}"
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "READY=1", "RELOADING=1", "MONOTONIC_USEC",
                 "STOPPING=1", "STATUS=", "JOURNAL_STREAM", "l4lb.yaml(5)"):
        assert word in page8, f"l4lb(8) does not mention {word}"

    keys = _interface_config_keys()
    assert len(keys) >= 25, f"parsed too few keys from INTERFACE.md: {keys}"
    for k in keys:
        assert re.search(r"\b" + re.escape(k) + r"\b", page5), f"l4lb.yaml(5) lacks key {k}"
    defaults = {"workers": "1", "max_connections": "65536", "drain_timeout": "30s",
                "log_level": "info", "algorithm": "round_robin", "connect_timeout": "2s",
                "idle_timeout": "5m", "retries": "2", "proxy_protocol": "off", "type": "tcp",
                "interval": "5s", "timeout": "2s", "healthy_threshold": "2",
                "unhealthy_threshold": "3", "path": "/health", "expect_status": "200",
                "weight": "1", "backup": "false", "drain": "false"}
    for k, v in defaults.items():
        assert f"{k} (default {v})" in page5, f"l4lb.yaml(5): {k} should say (default {v})"
    assert page5.count("max_connections (default 0)") >= 2, "service/backend max_connections default 0"
    for alg in ("round_robin", "weighted_round_robin", "least_connections",
                "weighted_least_connections", "random", "ip_hash", "consistent_hash"):
        assert alg in page5, f"l4lb.yaml(5) lacks algorithm {alg}"
    for word in ("l4lb(8)", "/etc/l4lb/l4lb.yaml"):
        assert word in page5
    # The example in l4lb.yaml(5) is a valid config.
    raw5 = _render(os.path.join(ROOT, "docs", "l4lb.yaml.5"), squeeze=False)
    ex = raw5[raw5.index("\nEXAMPLE") + 1:raw5.index("\nFILES")]
    ex = "\n".join(l[7:] if l.startswith("       ") else l for l in ex.splitlines()[1:])
    path = h.write_config(ex.replace("db1.internal", "127.0.0.1").replace("db2.internal", "127.0.0.2"))
    r = h.run_l4lb(["-t", "-c", path])
    assert r.returncode == 0, f"the EXAMPLE of l4lb.yaml(5) does not validate: {r.stderr}\n{ex}"
