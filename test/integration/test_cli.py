"""Command line: -t, --version, -h, bad options, exit codes."""

import os
import re
import socket
import subprocess

import harness as h

BAD_YAML = """\
global:
  drain_timeout: 5s
services:
  - name: web
    listen: 127.0.0.1:{port}
    backends:
      - address: 127.0.0.1:1
        weight: heavy
      - address: 127.0.0.1:2
    algoritm: round_robin
"""


def test_check_good_and_bad_configs():
    d = h.ctx().dir
    port = h.free_port()
    good = h.config(h.service(port, ["127.0.0.1:1", "127.0.0.1:2"]))
    with open(os.path.join(d, "good.yaml"), "w") as f:
        f.write(h.to_yaml(good))

    # -t binds nothing: it succeeds while the test itself holds the listen port ...
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.ctx().add_sock(holder)
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    r = h.run_l4lb(["-t", "-c", "good.yaml"], cwd=d)
    assert r.returncode == 0, f"-t on a good file (port held by the test): exit {r.returncode}, stderr {r.stderr!r}"
    assert r.stdout == "good.yaml: ok\n", f"stdout {r.stdout!r}"
    holder.close()
    # ... and leaves the port free.
    r = h.run_l4lb(["--check", "--config", "good.yaml"], cwd=d)
    assert r.returncode == 0 and r.stdout == "good.yaml: ok\n", f"long options: {r.returncode} {r.stdout!r} {r.stderr!r}"
    assert h.is_port_free(port), "the listen port is bound after l4lb -t"

    # A bad file: exit 1, FILE:LINE:COL: errors, every error reported.
    with open(os.path.join(d, "bad.yaml"), "w") as f:
        f.write(BAD_YAML.format(port=port))
    r = h.run_l4lb(["-t", "-c", "bad.yaml"], cwd=d)
    assert r.returncode == 1, f"-t on a bad file: exit {r.returncode}, stderr {r.stderr!r}"
    assert "ok" not in r.stdout, f"stdout {r.stdout!r}"
    lines = r.stderr.splitlines()
    located = [re.match(r"^bad\.yaml:(\d+):(\d+): (.*)$", l) for l in lines]
    located = [m for m in located if m]
    assert located, f"no 'bad.yaml:LINE:COL: ...' line on stderr: {r.stderr!r}"
    weight = [m for m in located if "weight" in m.group(3)]
    assert weight and weight[0].group(1) == "8", f"weight error not reported at line 8: {lines}"
    typo = [m for m in located if "algoritm" in m.group(3)]
    assert typo and typo[0].group(1) == "10", f"unknown key 'algoritm' not reported at line 10: {lines}"

    # A missing file: exit 1, with -t and without.
    r = h.run_l4lb(["-t", "-c", "missing.yaml"], cwd=d)
    assert r.returncode == 1, f"-t on a missing file: exit {r.returncode}"
    assert "missing.yaml" in r.stderr, f"stderr does not name the file: {r.stderr!r}"
    r = h.run_l4lb(["-c", "missing.yaml"], cwd=d)
    assert r.returncode == 1, f"start with a missing file: exit {r.returncode}"

    # --version, -h, an unknown option.
    r = h.run_l4lb(["--version"])
    assert r.returncode == 0 and r.stdout.strip() == "l4lb 0.1.0", f"--version: {r.returncode} {r.stdout!r}"
    r = h.run_l4lb(["-h"])
    assert r.returncode == 0, f"-h: exit {r.returncode}"
    assert "usage" in (r.stdout + r.stderr).lower() and "-c" in r.stdout + r.stderr, f"-h output: {r.stdout!r}"
    r = h.run_l4lb(["--no-such-option"])
    assert r.returncode == 2, f"unknown option: exit {r.returncode}, stderr {r.stderr!r}"
    for extra in (["--version", "extra"], ["-h", "extra"], ["-t", "-c", "good.yaml", "extra"]):
        r = h.run_l4lb(extra, cwd=d)
        assert r.returncode == 2 and r.stdout == "", f"{extra}: exit {r.returncode}, stdout {r.stdout!r}"

    # A listen address already bound by someone else: exit 3.
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.ctx().add_sock(busy)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    cfg_path = h.write_config(h.config(h.service(busy_port, ["127.0.0.1:1"])), "busy.yaml")
    r = h.run_l4lb(["-c", cfg_path], timeout=10)
    assert r.returncode == 3, f"listen address in use: exit {r.returncode}, stderr {r.stderr[-400:]!r}"


def test_config_errors_at_start_carry_the_journald_priority():
    # Under systemd (JOURNAL_STREAM names stderr) the FILE:LINE:COL lines start with <3>, so
    # `journalctl -p err` shows why the service did not start; elsewhere they are bare.
    d = h.ctx().dir
    with open(os.path.join(d, "bad.yaml"), "w") as f:
        f.write(BAD_YAML.format(port=h.free_port()))
    err_path = os.path.join(d, "stderr.txt")
    with open(err_path, "wb") as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.run([h.L4LB_BIN, "-c", "bad.yaml"], cwd=d, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err, timeout=10)
    assert proc.returncode == 1, proc.returncode
    lines = open(err_path).read().splitlines()
    assert lines and all(re.match(r"^<3>bad\.yaml:\d+:\d+: ", l) for l in lines), lines
