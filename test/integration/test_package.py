"""The Debian package (`make deb`): file list, conffiles, maintainer scripts, the installed
example config, and the installed unit under systemd-analyze verify.

The package is built by `make deb` in the test (bounded; a tree left by an earlier
`make deb` in build/deb/ makes it a relink), or taken from env L4LB_DEB=PATH.
Skipped with the reason where dpkg-buildpackage or debhelper is missing
(scripts/install-deps.sh --package installs them)."""

import glob
import os
import re
import shutil
import subprocess
import tempfile

import harness as h

ROOT = h.ROOT
BUILD_TIMEOUT = 1500  # a build from scratch on 2 shared cores; a rebuild takes seconds

_built: dict = {}


def _run(args, timeout=60, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(args)} failed ({r.returncode}): {r.stdout[-1500:]} {r.stderr[-1500:]}"
    return r


def _deb() -> str:
    """Path of the package: L4LB_DEB, or built now with `make deb`."""
    if "deb" in _built:
        return _built["deb"]
    path = os.environ.get("L4LB_DEB")
    if path:
        assert os.path.isfile(path), f"L4LB_DEB={path} is not a file"
    else:
        missing = [t for t in ("dpkg-buildpackage", "dh", "dpkg-deb", "make") if not shutil.which(t)]
        if missing:
            raise h.Skip(f"{', '.join(missing)} not installed (scripts/install-deps.sh --package "
                         f"installs debhelper and dpkg-dev); package not built")
        try:
            r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "deb"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            h.fail(f"make deb did not finish within {BUILD_TIMEOUT}s")
        assert r.returncode == 0, f"make deb failed ({r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}"
        m = re.search(r"^built (build/l4lb_\S+\.deb)$", r.stdout, re.M)
        assert m, f"make deb did not say which package it built: {r.stdout[-800:]}"
        path = os.path.join(ROOT, m.group(1))
    _built["deb"] = path
    return path


def _field(deb: str, name: str) -> str:
    return _run(["dpkg-deb", "-f", deb, name]).stdout.strip()


@h.timeout(BUILD_TIMEOUT + 120)
def test_package_contents_conffiles_and_scripts():
    deb = _deb()
    version, arch = _field(deb, "Version"), _field(deb, "Architecture")
    assert os.path.basename(deb) == f"l4lb_{version}_{arch}.deb", deb
    assert _field(deb, "Package") == "l4lb"

    # The file list (dpkg -c): paths and modes.
    listing = _run(["dpkg", "-c", deb]).stdout
    files = {}
    for line in listing.splitlines():
        parts = line.split()
        path = parts[5].lstrip(".")
        files[path.rstrip("/") or "/"] = (parts[0], parts[1])
    want = {
        "/usr/sbin/l4lb": "-rwxr-xr-x",
        "/lib/systemd/system/l4lb.service": "-rw-r--r--",
        "/etc/l4lb/l4lb.yaml": "-rw-r--r--",
        "/etc/logrotate.d/l4lb": "-rw-r--r--",
        "/usr/share/man/man8/l4lb.8.gz": "-rw-r--r--",
        "/usr/share/man/man5/l4lb.yaml.5.gz": "-rw-r--r--",
        "/usr/share/doc/l4lb/copyright": "-rw-r--r--",
        "/usr/share/doc/l4lb/changelog.gz": "-rw-r--r--",
        "/usr/share/doc/l4lb/l4lb.yaml.example": "-rw-r--r--",
        "/usr/share/doc/l4lb/examples/keepalived/keepalived.conf": "-rw-r--r--",
        "/usr/share/doc/l4lb/examples/keepalived/l4lb.yaml": "-rw-r--r--",
        "/usr/share/doc/l4lb/examples/bird/bird.conf": "-rw-r--r--",
        "/usr/share/doc/l4lb/examples/bird/bird-router.conf": "-rw-r--r--",
        "/usr/share/doc/l4lb/examples/bird/l4lb-bird-health.sh": "-rwxr-xr-x",  # a script to install
    }
    for p, mode in want.items():
        assert p in files, f"{p} not in the package:\n{listing}"
        assert files[p] == (mode, "root/root"), f"{p}: {files[p]}, expected {mode} root/root"
    assert any(p.startswith("/usr/share/doc/l4lb/README") for p in files), listing
    assert not [p for p in files if p.startswith("/usr/local")], f"files under /usr/local:\n{listing}"

    # Conffiles: the operator's config and logrotate recipe survive an upgrade.
    ctl = tempfile.mkdtemp(prefix="control-", dir=h.ctx().dir)
    _run(["dpkg-deb", "-e", deb, ctl])
    conffiles = open(os.path.join(ctl, "conffiles")).read().split()
    for c in ("/etc/l4lb/l4lb.yaml", "/etc/logrotate.d/l4lb"):
        assert c in conffiles, f"{c} not a conffile: {conffiles}"

    # Runtime dependencies from dh_shlibdeps.
    depends = _field(deb, "Depends")
    for lib in ("libev", "libyaml-cpp", "libfmt", "libsystemd0", "libc6", "libstdc++6"):
        assert re.search(r"(^|[ ,])" + re.escape(lib), depends), f"Depends lacks {lib}: {depends}"

    # Maintainer scripts: enable on install, never a stop or restart on upgrade; SIGUSR2.
    postinst = open(os.path.join(ctl, "postinst")).read()
    prerm = open(os.path.join(ctl, "prerm")).read() if os.path.exists(os.path.join(ctl, "prerm")) else ""
    assert re.search(r"deb-systemd-helper enable 'l4lb.service'", postinst), postinst
    assert not re.search(r"deb-systemd-invoke (\$_dh_action|start|restart|try-restart)", postinst), \
        f"postinst starts or restarts l4lb:\n{postinst}"
    assert "systemctl restart" not in postinst.replace("Restart it when convenient: systemctl restart", "")
    assert re.search(r"systemctl kill --signal=USR2 --kill-whom=main l4lb.service", postinst), postinst
    # prerm stops the service only on removal (dh: `[ "$1" = remove ]`), never on upgrade.
    for m in re.finditer(r"deb-systemd-invoke stop", prerm):
        head = prerm[:m.start()]
        cond = head[head.rfind("if "):]
        assert re.search(r'"\$1" = "?remove"?', cond) and "upgrade" not in cond, \
            f"prerm stops l4lb other than on removal:\n{prerm}"
    assert "deb-systemd-invoke stop" in prerm, f"removing the package does not stop l4lb:\n{prerm}"

    # The changelog's version is the binary's.
    root = tempfile.mkdtemp(prefix="root-", dir=h.ctx().dir)
    _run(["dpkg-deb", "-x", deb, root])
    ver = _run([root + "/usr/sbin/l4lb", "--version"], timeout=10).stdout.strip()
    assert ver == f"l4lb {version}", f"l4lb --version says {ver!r}, the package is {version}"
    return f"{len(files)} entries, Depends: {depends}"


@h.timeout(BUILD_TIMEOUT + 120)
def test_package_installed_example_config_and_unit():
    deb = _deb()
    root = tempfile.mkdtemp(prefix="root-", dir=h.ctx().dir)
    _run(["dpkg-deb", "-x", deb, root])
    binp = root + "/usr/sbin/l4lb"
    conf = root + "/etc/l4lb/l4lb.yaml"
    with open(os.path.join(ROOT, "conf", "l4lb.yaml")) as f:
        assert open(conf).read() == f.read(), "/etc/l4lb/l4lb.yaml is not conf/l4lb.yaml"
    chk = subprocess.run([binp, "-t", "-c", conf], capture_output=True, text=True, timeout=10)
    assert chk.returncode == 0 and chk.stdout.strip() == f"{conf}: ok", \
        f"l4lb -t on the installed example ({chk.returncode}): {chk.stdout} {chk.stderr}"

    unit = root + "/lib/systemd/system/l4lb.service"
    text = open(unit).read()
    execs = re.findall(r"^Exec\w+=(\S+)", text, re.M)
    assert execs and all(e in ("/usr/sbin/l4lb", "/bin/kill") for e in execs), \
        f"the packaged unit runs {execs}"
    assert "/usr/local" not in text
    assert re.search(r"^WantedBy=multi-user.target$", text, re.M)
    docs = re.findall(r"man:([\w.-]+)\((\d)\)", "\n".join(re.findall(r"^Documentation=.*", text, re.M)))
    assert docs, "the unit names no man page"
    mandir = root + "/usr/share/man"
    for page, sec in docs:
        assert os.path.isfile(f"{mandir}/man{sec}/{page}.{sec}.gz"), f"{page}({sec}) not installed"

    sa = shutil.which("systemd-analyze")
    if not sa:
        raise h.Skip("systemd-analyze not installed (package systemd); the packaged unit not verified")
    # As test_systemd's verify of `make install`: the root gets the host's units (the targets
    # the unit refers to); Exec* binaries and man pages are looked up inside the root.
    host_units = "/usr/lib/systemd/system" if os.path.isdir("/usr/lib/systemd/system") \
        else "/lib/systemd/system"
    os.makedirs(root + "/usr/lib/systemd", exist_ok=True)
    shutil.copytree(host_units, root + "/usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True, ignore_dangling_symlinks=True)
    # /lib is /usr/lib on Debian 12 (merged /usr): the unit as systemd would find it there.
    shutil.copy2(unit, root + "/usr/lib/systemd/system/l4lb.service")
    env = dict(os.environ, MANPATH=mandir, SYSTEMD_LOG_LEVEL="notice")
    has_man = shutil.which("man") is not None
    args = [sa, "verify", f"--root={root}"] + ([] if has_man else ["--man=no"]) + ["l4lb.service"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, cwd=root)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, f"systemd-analyze verify (exit {r.returncode}): {out}"
    # The check must be able to fail: a unit whose binary is not in the root is refused.
    os.rename(binp, binp + ".moved")
    bad = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, cwd=root)
    os.rename(binp + ".moved", binp)
    assert bad.returncode != 0 and "/usr/sbin/l4lb" in bad.stdout + bad.stderr, \
        f"verify did not notice a missing /usr/sbin/l4lb in the root: {bad.stdout} {bad.stderr}"
    pages = ", ".join(f"{p}({s})" for p, s in docs)
    return (f"l4lb -t ok; verify --root ok" +
            (f", man {pages} found by man(1)" if has_man else f", man(1) absent: {pages} checked in the tree"))


# ---------------------------------------------------------------------------- postinst

def _postinst_sandbox(running_pid: int | None, new_pid: str, check_ok: bool = True):
    """scripts/debian/l4lb.postinst with its system paths pointed into a scratch dir, a fake
    systemctl (records calls; MainPID is RUNNING_PID until the signal file appears, then
    NEW_PID) and a fake l4lb --check. Returns (run(args) -> CompletedProcess, calls())."""
    d = tempfile.mkdtemp(prefix="postinst-", dir=h.ctx().dir)
    os.makedirs(d + "/bin")
    os.makedirs(d + "/run-systemd-system")
    calls = d + "/calls"
    sigfile = d + "/signalled"
    active = "exit 0" if running_pid else "exit 3"
    with open(d + "/bin/systemctl", "w") as f:
        f.write(f"""#!/bin/sh
echo "systemctl $*" >> {calls}
case "$1" in
  is-active) {active} ;;
  show) if [ -e {sigfile} ]; then echo {new_pid}; else echo {running_pid or 0}; fi ;;
  kill) kill -USR2 {running_pid or 0} && : > {sigfile} ;;
  *) exit 1 ;;
esac
""")
    with open(d + "/bin/l4lb", "w") as f:
        f.write(f"#!/bin/sh\necho \"l4lb $*\" >> {calls}\nexit {0 if check_ok else 1}\n")
    for n in ("systemctl", "l4lb"):
        os.chmod(f"{d}/bin/{n}", 0o755)
    src = open(os.path.join(ROOT, "scripts", "debian", "l4lb.postinst")).read()
    assert "#DEBHELPER#" in src
    script = (src.replace("/run/systemd/system", d + "/run-systemd-system")
              .replace("/usr/sbin/policy-rc.d", d + "/no-policy-rc.d")
              .replace("/usr/sbin/l4lb", d + "/bin/l4lb")
              .replace("#DEBHELPER#", ""))
    with open(d + "/postinst", "w") as f:
        f.write(script)
    shell = shutil.which("dash") or "/bin/sh"
    env = dict(os.environ, PATH=d + "/bin:" + os.environ.get("PATH", "/usr/bin:/bin"))

    def run(*args):
        return subprocess.run([shell, "-e", d + "/postinst", *args], capture_output=True,
                              text=True, env=env, timeout=30)

    def got():
        return open(calls).read().splitlines() if os.path.exists(calls) else []
    return run, got


def _usr2_catcher():
    """A process that catches SIGUSR2 (as l4lb with the upgrade), and whether it got one."""
    p = subprocess.Popen(["python3", "-c",
                          "import signal,sys,time\n"
                          "signal.signal(signal.SIGUSR2, lambda s, f: print('usr2', flush=True))\n"
                          "print('ready', flush=True)\ntime.sleep(60)\n"],
                         stdout=subprocess.PIPE, text=True)
    h.ctx().add_proc(p)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_package_postinst_upgrade_sends_usr2_never_restarts():
    # Upgrade with l4lb running and catching SIGUSR2: check the config, signal, wait for the
    # new MAINPID. No restart, no start.
    p = _usr2_catcher()
    run, calls = _postinst_sandbox(p.pid, "4242")
    r = run("configure", "0.0.9")
    assert r.returncode == 0, f"postinst failed: {r.stdout} {r.stderr}"
    c = calls()
    assert any(l.startswith("l4lb --check -c /etc/l4lb/l4lb.yaml") for l in c), c
    kills = [l for l in c if l.startswith("systemctl kill")]
    assert kills == ["systemctl kill --signal=USR2 --kill-whom=main l4lb.service"], c
    assert not [l for l in c if re.match(r"systemctl (restart|start|stop|try-restart)", l)], c
    assert p.stdout.readline().strip() == "usr2", "the running process got no SIGUSR2"
    assert f"pid {p.pid} -> 4242" in r.stdout, r.stdout

    # The new binary rejects the config: no signal, the running one carries on, exit 0.
    run, calls = _postinst_sandbox(p.pid, "4242", check_ok=False)
    r = run("configure", "0.0.9")
    assert r.returncode == 0 and "not upgraded" in r.stderr, (r.stdout, r.stderr)
    assert not [l for l in calls() if l.startswith("systemctl kill")], calls()

    # A running l4lb that does not catch SIGUSR2 (an older build): not signalled (it would die).
    q = subprocess.Popen(["sleep", "60"])
    h.ctx().add_proc(q)
    run, calls = _postinst_sandbox(q.pid, "4242")
    r = run("configure", "0.0.9")
    assert r.returncode == 0 and "predates SIGUSR2" in r.stderr, (r.stdout, r.stderr)
    assert not [l for l in calls() if l.startswith("systemctl kill")], calls()
    assert q.poll() is None, "a process that does not catch SIGUSR2 was signalled"

    # Upgrade with l4lb stopped: nothing is started. First install: nothing is started either.
    for args in (("configure", "0.0.9"), ("configure", "")):
        run, calls = _postinst_sandbox(None, "4242")
        r = run(*args)
        assert r.returncode == 0, f"postinst {args}: {r.stderr}"
        assert not [l for l in calls() if re.match(r"systemctl (kill|restart|start)", l)], calls()
