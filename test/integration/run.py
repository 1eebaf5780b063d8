#!/usr/bin/env python3
"""Runs the l4lb integration tests.

  run.py [FILTER...]     run every test_* function of every test/integration/test_*.py
                         (only those whose name contains one of the FILTERs, if given)

Each test runs in a child process of its own with a fresh harness context and a hard
timeout (60 s, or @harness.timeout(N)); on timeout the child and every process it started
are killed by PID. Prints "PASS name (1.2s)", "SKIP name: why" or "FAIL name: reason"
(+ the tail of l4lb's stderr), and ends with "integration: N passed, N failed".
Binaries: env L4LB_BIN (default build/l4lb), L4LB_TESTD (default build/l4lb-testd).
A FILTER that matches no test is reported ("FAIL FILTER: matches no test") and counted
as a failure. Env L4LB_WORKERS=N: every l4lb runs with N workers (see harness.py);
L4LB_FAIL_ON_TSAN=1: a ThreadSanitizer report in l4lb's stderr fails the test.
"""

from __future__ import annotations

import faulthandler
import glob
import importlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

DEFAULT_TIMEOUT = 60.0
FAIL_ON_TSAN = os.environ.get("L4LB_FAIL_ON_TSAN", "") not in ("", "0")


def discover() -> list[tuple[str, str, float]]:
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        mod = importlib.import_module(modname)
        funcs = [f for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in funcs:
            tests.append((modname, f.__name__, float(getattr(f, "timeout", DEFAULT_TIMEOUT))))
    return tests


# ---------------------------------------------------------------------------- child

def child(modname: str, fname: str, directory: str, limit: float) -> int:
    # Shortly before the parent's hard kill, dump every thread's stack (shown on FAIL).
    faulthandler.dump_traceback_later(max(1.0, limit - 1.5), exit=False)
    c = harness.Context(directory)
    harness.set_context(c)
    result: dict = {"status": "fail", "reason": "did not finish"}
    try:
        mod = importlib.import_module(modname)
        fn = getattr(mod, fname)
        harness._single_worker = bool(getattr(fn, "single_worker", False))
        note = fn()
        result = {"status": "pass"}
        if isinstance(note, str) and note:
            result["note"] = note
    except harness.Skip as e:
        result = {"status": "skip", "reason": str(e)}
    except AssertionError as e:
        msg = str(e)
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f for f in reversed(tb) if os.path.basename(f.filename).startswith("test_")),
                     tb[-1] if tb else None)
        if not msg and where is not None:
            msg = f"assertion failed: {where.line}"
        if where is not None:
            msg += f" [{os.path.basename(where.filename)}:{where.lineno}]"
        result = {"status": "fail", "reason": msg}
    except BaseException as e:  # noqa: BLE001
        tb = traceback.extract_tb(e.__traceback__)
        where = tb[-1] if tb else None
        loc = f" [{os.path.basename(where.filename)}:{where.lineno}]" if where else ""
        result = {"status": "fail", "reason": f"{type(e).__name__}: {e}{loc}",
                  "traceback": traceback.format_exc()}
    finally:
        try:
            c.cleanup()
        except Exception:  # noqa: BLE001
            pass
    if FAIL_ON_TSAN:
        reports = tsan_reports(c)
        if reports:
            result = {"status": "fail", "reason": f"ThreadSanitizer: {len(reports)} report(s) in "
                      f"l4lb's stderr (was: {result['status']})", "tsan": reports}
    with open(os.path.join(directory, "result.json"), "w") as f:
        json.dump(result, f)
    faulthandler.cancel_dump_traceback_later()
    return 0


def tsan_reports(c: harness.Context) -> list[str]:
    """Every ThreadSanitizer report (WARNING ... SUMMARY lines) in the stderr of the l4lb
    processes the test started."""
    out = []
    for l in c.l4lbs:
        l._reader.join(2)  # killed by cleanup: the rest of its stderr is on its way
        block: list[str] | None = None
        for line in l.stderr_text().splitlines():
            if "WARNING: ThreadSanitizer" in line:
                block = []
            if block is not None:
                block.append(line)
                if line.startswith("SUMMARY: ThreadSanitizer"):
                    out.append("\n".join(block))
                    block = None
        if block:
            out.append("\n".join(block))
    return out


# ---------------------------------------------------------------------------- parent

def kill_recorded(directory: str) -> None:
    try:
        with open(os.path.join(directory, "pids")) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def l4lb_tail(directory: str, lines: int = 25) -> str:
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "l4lb-*.stderr")),
                       key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0])):
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        tail = text.splitlines()[-lines:]
        if tail:
            out.append(f"    --- {os.path.basename(path)} (last {len(tail)} lines)")
            out.extend("    " + l for l in tail)
    return "\n".join(out)


def run_one(modname: str, fname: str, limit: float) -> str:
    directory = tempfile.mkdtemp(prefix=f"l4lb-it-{fname[:40]}-")
    t0 = time.monotonic()
    outp = os.path.join(directory, "child.out")
    try:
        with open(outp, "wb") as out:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child",
                                     modname, fname, directory, str(limit)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    close_fds=True)
            timed_out = False
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        kill_recorded(directory)  # normally all dead already; after a timeout, not
        elapsed = time.monotonic() - t0
        result = None
        try:
            with open(os.path.join(directory, "result.json")) as f:
                result = json.load(f)
        except (OSError, ValueError):
            pass
        if timed_out:
            result = {"status": "fail", "reason": f"timed out after {limit:.0f}s"}
        elif result is None:
            result = {"status": "fail", "reason": f"test process died (exit {proc.returncode})"}

        if result["status"] == "pass":
            note = f" [{result['note']}]" if result.get("note") else ""
            print(f"PASS {fname} ({elapsed:.1f}s){note}", flush=True)
        elif result["status"] == "skip":
            print(f"SKIP {fname}: {result.get('reason', '')}", flush=True)
        else:
            print(f"FAIL {fname}: {result.get('reason', '')} ({elapsed:.1f}s)")
            for report in result.get("tsan", []):
                print("    " + report.rstrip().replace("\n", "\n    "))
            if result.get("traceback"):
                print("    " + result["traceback"].rstrip().replace("\n", "\n    "))
            try:
                with open(outp, "rb") as f:
                    child_out = f.read().decode(errors="replace").strip()
            except OSError:
                child_out = ""
            if child_out:
                tail = child_out.splitlines()[-(40 if timed_out else 15):]
                print("    --- test output (last %d lines)" % len(tail))
                print("\n".join("    " + l for l in tail))
            tail = l4lb_tail(directory)
            if tail:
                print(tail)
            sys.stdout.flush()
        return result["status"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "--child":
        return child(argv[1], argv[2], argv[3], float(argv[4]))
    filters = [a for a in argv if a]
    tests = discover()
    passed = failed = skipped = 0
    if filters:
        for f in filters:
            if not any(f in t[1] for t in tests):
                print(f"FAIL {f}: matches no test (a renamed or misspelt name?)", flush=True)
                failed += 1
        tests = [t for t in tests if any(f in t[1] for f in filters)]
    if harness.workers() is not None:
        print(f"integration: every l4lb with workers {harness.workers()} (L4LB_WORKERS), "
              "except @single_worker tests", flush=True)
    for modname, fname, limit in tests:
        status = run_one(modname, fname, limit)
        if status == "pass":
            passed += 1
        elif status == "skip":
            skipped += 1
        else:
            failed += 1
    if skipped:
        print(f"integration: {skipped} skipped")
    print(f"integration: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
