"""What test_ha.py and test_ecmp.py share: running a network-namespace demo script
(scripts/ha-demo.sh, scripts/ecmp-demo.sh, both built on scripts/lib/netns-demo.sh).

Not a test file (run.py collects test_*.py only). The demos need root, `ip netns` (made and
entered) and their own daemons; skip_unless_runnable() raises harness.Skip otherwise.
run_demo() runs one, removes whatever namespaces it left (by their <prefix>-<pid>- names),
turns its exit 77 into a skip, checks that it exited 0 in time and that the pids it printed are
gone, and returns its output and its RESULT line as a dict.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import harness as h


def skip_unless_runnable(prefix: str, tools: dict[str, str]) -> None:
    """Skips unless we are root, have `ip`, every tool in TOOLS (name -> the skip message when it
    is missing, checked in order) and can make and enter a namespace (named PREFIX-probe-PID)."""
    if os.geteuid() != 0:
        raise h.Skip("needs root (network namespaces, veth, a bridge)")
    if not shutil.which("ip"):
        raise h.Skip("ip (iproute2) is not installed")
    for tool, missing in tools.items():
        if not shutil.which(tool):
            raise h.Skip(missing)
    # Made and entered: in a chroot `ip netns add` works but entering fails
    # ("mount --make-rslave /" failed: Invalid argument).
    probe = f"{prefix}-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise h.Skip(f"network namespaces unavailable: ip netns add: {r.stderr.strip()[:200]}")
    try:
        r = subprocess.run(["ip", "netns", "exec", probe, "true"], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise h.Skip(f"network namespaces unavailable: ip netns exec: {r.stderr.strip()[:200]}")
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)


def our_namespaces(prefix: str) -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [l.split()[0] for l in r.stdout.splitlines() if l.startswith(prefix)]


def remove_leftovers(prefix: str) -> list[str]:
    """Backstop if the script could not clean up (e.g. it was killed): kill what runs in its
    namespaces, by pid, and delete them, by name. Returns the names it found."""
    left = our_namespaces(prefix)
    for ns in left:
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    return left


def run_demo(script: str, prefix: str, timeout: int, max_elapsed: int) -> tuple[str, dict[str, str]]:
    """Runs SCRIPT (its namespaces are PREFIX-<its pid>-*); SIGTERM after TIMEOUT s (its trap
    cleans up). Fails unless it exits 0 within MAX_ELAPSED s, leaves no namespace and no pid it
    printed ("(pid N)") running; skips when it exits 77. Returns its output (stdout and stderr)
    and its RESULT line's key=value pairs."""
    name = os.path.basename(script)
    env = dict(os.environ, L4LB_BIN=h.L4LB_BIN, L4LB_TESTD=h.L4LB_TESTD)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("JOURNAL_STREAM", None)
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, close_fds=True)
    h.ctx().add_proc(proc)
    ours = f"{prefix}-{proc.pid}-"
    try:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)          # its trap cleans up
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            h.fail(f"{name} did not finish within {timeout} s:\n" + out.decode(errors="replace")[-3000:])
    finally:
        left = remove_leftovers(ours)
    text = out.decode(errors="replace")
    elapsed = time.monotonic() - t0
    print(text)

    if left:
        h.fail(f"{name} (exit {proc.returncode}) left namespaces behind: {left}")
    if proc.returncode == 77:  # this machine cannot run it (stdout and stderr are merged)
        m = re.search(r"SKIP: (.*)", text)
        raise h.Skip(m.group(1) if m else f"{name} cannot run here")
    if proc.returncode != 0:
        h.fail(f"{name} exited {proc.returncode}:\n" + text[-3000:])
    assert elapsed < max_elapsed, f"{name} took {elapsed:.1f}s (must stay under {max_elapsed} s)"

    # Every l4lb it started (it prints their pids) is gone.
    for pid in {int(p) for p in re.findall(r"\(pid (\d+)\)", text)}:
        try:
            os.kill(pid, 0)
            h.fail(f"pid {pid} from {name} still running after it exited")
        except ProcessLookupError:
            pass

    m = re.search(r"^RESULT (.*)$", text, re.M)
    assert m, "no RESULT line:\n" + text[-2000:]
    return text, dict(kv.split("=", 1) for kv in m.group(1).split())
