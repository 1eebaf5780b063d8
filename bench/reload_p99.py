#!/usr/bin/env python3
"""Helper of bench/reload_p99.sh.

  reload_p99.py drive PID INTERVAL DURATION NOTIFY_SOCK   (prints raw lines: key value)
      Binds NOTIFY_SOCK (the NOTIFY_SOCKET l4lb was started with), then for DURATION s
      sends SIGHUP to PID every INTERVAL s (INTERVAL 0: none, only waits) and pairs each
      signal with l4lb's sd_notify messages: RELOADING=1 MONOTONIC_USEC=T (start of the
      reload, l4lb's CLOCK_MONOTONIC) and the READY=1 that ends it (receive time, same clock).
      Per reload: signal_ms (SIGHUP sent -> reload started), reload_ms (started -> READY=1).
  reload_p99.py wrk FILE                                     (prints raw lines: key value)
      p50/p99/max latency, requests and errors of a `wrk --latency` output.
  reload_p99.py report --raw RAW [--raw RAW2 ...] --meta META --out FILE.md
      Medians over the rounds of RAW (TSV: design round mode key value) into markdown; the
      rounds of several raw files are pooled (numbered on after the earlier files').
"""
import os
import re
import signal
import socket
import statistics
import sys
import time
from collections import defaultdict


def now_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def drive(pid, interval, duration, path):
    pid, interval, duration = int(pid), float(interval), float(duration)
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    sent, starts, readies = [], [], []

    def drain(timeout):
        s.settimeout(max(timeout, 0.0001))
        try:
            while True:
                msg = s.recv(4096).decode(errors="replace")
                t = now_us()
                f = dict(l.split("=", 1) for l in msg.split("\n") if "=" in l)
                if f.get("RELOADING") == "1":
                    starts.append(int(f.get("MONOTONIC_USEC", t)))
                elif f.get("READY") == "1":
                    readies.append((t, f.get("STATUS", "").startswith("reload failed")))
                s.settimeout(0.0001)
        except (socket.timeout, BlockingIOError):
            pass

    t0 = time.monotonic()
    nxt = t0 + interval if interval > 0 else None
    while time.monotonic() - t0 < duration:
        if nxt is not None and time.monotonic() >= nxt:
            sent.append(now_us())
            os.kill(pid, signal.SIGHUP)
            nxt += interval
        wake = min(nxt if nxt is not None else 1e18, t0 + duration)
        drain(wake - time.monotonic())
    end = time.monotonic() + 10  # the last reload finishes
    while len(readies) < len(starts) and time.monotonic() < end:
        drain(0.1)
    s.close()
    os.unlink(path)
    print("reloads_sent", len(sent))
    print("reloads_done", min(len(starts), len(readies)))
    print("reloads_failed", sum(1 for _, failed in readies if failed))
    # Signals arriving while a reload runs coalesce: pair each reload with the last
    # signal sent before it started.
    for st, (rd, _) in zip(starts, readies):
        before = [x for x in sent if x <= st]
        if before:
            print("signal_ms", "%.3f" % ((st - before[-1]) / 1000))
        print("reload_ms", "%.3f" % ((rd - st) / 1000))


def parse_wrk(path):
    t = open(path).read()

    def ms(v, u):
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", t)
    if not m:
        sys.exit("wrk output not understood:\n" + t)
    print("requests", m.group(1))
    m2 = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if m2:
        print("rps", m2.group(1))
    for p in ("50", "99"):
        m3 = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, t, re.M)
        if m3:
            print("p%s_ms %.4f" % (p, ms(m3.group(1), m3.group(2))))
    # Thread Stats: "Latency  avg  stdev  max  +/-stdev" (over all threads)
    m4 = re.search(r"^\s+Latency\s+\S+?(us|ms|s|m)\s+\S+?(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)", t, re.M)
    if m4:
        print("max_ms %.4f" % ms(m4.group(3), m4.group(4)))
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errs = sum(int(x) for x in e.groups()) if e else 0
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    errs += int(n2.group(1)) if n2 else 0
    print("errors", errs)


def q(xs, p):
    """p-quantile, nearest rank."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p * (len(xs) - 1)))))]


def report(raw_paths, meta_path, out):
    meta = dict(l.rstrip("\n").split("=", 1) for l in open(meta_path) if "=" in l)
    runs = defaultdict(lambda: defaultdict(list))  # (design, round, mode) -> key -> [values]
    offset = 0
    for raw_path in raw_paths:
        top = 0
        for line in open(raw_path):
            p = line.rstrip("\n").split("\t")
            if len(p) == 5:
                runs[(p[0], int(p[1]) + offset, p[2])][p[3]].append(float(p[4]))
                top = max(top, int(p[1]))
        offset += top
    designs = []
    for (d, _, _) in sorted(runs, key=lambda k: k[1]):
        if d not in designs:
            designs.append(d)
    rounds = sorted({r for (_, r, _) in runs})
    # what each binary is (the defaults name the comparison this script was written for)
    title = {"new": os.environ.get("RELOAD_NEW_TITLE", "control thread (this tree)"),
             "old": os.environ.get("RELOAD_OLD_TITLE", "worker 0 on the main loop (b051eb2)")}

    def one(d, r, m, k):
        v = runs.get((d, r, m), {}).get(k)
        return v[0] if v else None

    def med(d, m, k):
        v = [x for x in (one(d, r, m, k) for r in rounds) if x is not None]
        return statistics.median(v) if v else None

    def pooled(d, k):
        v = []
        for r in rounds:
            v += runs.get((d, r, "b"), {}).get(k, [])
        return v

    def f(v, fmt="%.2f"):
        return "—" if v is None else fmt % v

    L = []
    w = L.append
    w("# l4lb: what a reload costs the data path")
    w("")
    w(f"Generated by `{meta.get('cmdline')}` on {meta.get('date')} ({meta.get('elapsed')} s). "
      "Do not edit by hand: rerun the script.")
    if meta.get("note"):
        w("")
        w(meta["note"])
    w("")
    w("## Machine and setup")
    w("")
    w(f"- CPU: {meta.get('cpu')}; kernel {meta.get('kernel')}")
    for d in designs:
        w(f"- l4lb, {title.get(d, d)}: {meta.get('l4lb_' + d)}")
    w(f"- wrk: {meta.get('wrk')}; nginx (backend): {meta.get('nginx')}")
    w(f"- other load: {meta.get('load')} (1/5/15-min load averages); other processes' CPU at the start "
      "of each run, % of both CPUs, in the per-round table; benchmark processes at nice "
      f"{meta.get('nice')}")
    w(f"- config: {meta.get('services')} services, {meta.get('backends')} backends, each given by a host "
      f"name in /etc/hosts (a marked block added for the run, removed at exit); `workers: 2`, admin port on, "
      "`health_check: {type: none}`, log_level info. Service s001 carries the traffic: its "
      f"{meta.get('live_backends')} backends resolve to 127.77.0.1–{meta.get('live_backends')}, where one nginx "
      "(1 worker, 65-byte `return 200`, keep-alive) listens; the other services' backends point at a closed port.")
    w(f"- load: `wrk -c{meta.get('wrk_c')} -t{meta.get('wrk_t')} -d{meta.get('duration')}s --latency` "
      "(keep-alive; per-request latency, all connections pooled: wrk does not say which connection or "
      f"worker a request went through) on CPU {meta.get('gen_cpu')} with the backend and this script; "
      f"l4lb on CPU {meta.get('lb_cpu')}"
      + (f", except its main thread, moved to CPU {meta['control_cpu']} once running (the control "
         "thread in the current design; worker 0 and control work in the previous one)."
         if meta.get("control_cpu") else " (all its threads)."))
    w(f"- (a) no reload; (b) SIGHUP every {meta.get('interval')} s for the whole run. Each reload re-reads "
      "the file and resolves the 1,000 names (l4lb since 9e66bb6: /etc/hosts read once per reload where "
      "nsswitch looks in files first; before, glibc's getaddrinfo, which reads the whole file per name). "
      "Each run in a "
      f"fresh l4lb; {len(rounds)} rounds, (a)/(b) and the designs interleaved; medians over the rounds.")
    w("- `swap_us`: from l4lb's `reload ok` log lines (the time the data workers are parked for the swap; "
      "the previous design does not log it). Reload wall time: l4lb's own sd_notify messages on a "
      "NOTIFY_SOCKET the script listens on, `RELOADING=1` with `MONOTONIC_USEC` (start) to `READY=1` "
      "(end, receive time on the same clock); signal→start is SIGHUP sent to `RELOADING=1`.")
    w("")
    w("## Results (medians over the rounds)")
    w("")
    hdr = "| | " + " | ".join(f"{title.get(d, d)}: {m}" for d in designs for m in ("(a) no reload", "(b) reloads")) + " |"
    w(hdr)
    w("|---|" + "---|" * (2 * len(designs)))
    for label, k, fm in (("requests/s", "rps", "%.0f"), ("p50, ms", "p50_ms", "%.3f"),
                         ("p99, ms", "p99_ms", "%.3f"), ("max, ms", "max_ms", "%.2f"),
                         ("wrk errors", "errors", "%.0f"), ("reloads done (of signals sent)", None, None)):
        cells = []
        for d in designs:
            for m in ("a", "b"):
                if k is None:
                    cells.append("—" if m == "a" else f"{f(med(d, m, 'reloads_done'), '%.0f')} ({f(med(d, m, 'reloads_sent'), '%.0f')})")
                else:
                    cells.append(f(med(d, m, k), fm))
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")
    w("| per design | " + " | ".join(title.get(d, d) for d in designs) + " |")
    w("|---|" + "---|" * len(designs))

    def rise(d, k):
        v = [one(d, r, "b", k) - one(d, r, "a", k) for r in rounds
             if one(d, r, "b", k) is not None and one(d, r, "a", k) is not None]
        return statistics.median(v) if v else None
    cells = []
    for d in designs:
        rz = rise(d, "p99_ms")
        cells.append("—" if rz is None else f"{rz:+.3f} ms ({'met' if rz <= 1.0 else 'NOT met'})")
    w("| p99 rise (b − a), median of the rounds' differences; target ≤ 1 ms | " + " | ".join(cells) + " |")
    w("| max rise (b − a), ms | " + " | ".join(f(rise(d, "max_ms"), "%+.2f") for d in designs) + " |")

    def dist(d, k, fm):
        v = pooled(d, k)
        if not v:
            return "—"
        return (f"{fm % min(v)} / {fm % statistics.median(v)} / {fm % q(v, 0.99)} / {fm % max(v)} "
                f"(n={len(v)})")
    w("| `swap_us` from the log, µs: min / median / p99 / max, all (b) reloads | "
      + " | ".join(dist(d, "swap_us", "%.0f") for d in designs) + " |")
    w("| reload wall time (RELOADING→READY), ms: min / median / p99 / max | "
      + " | ".join(dist(d, "reload_ms", "%.1f") for d in designs) + " |")
    w("| SIGHUP sent → reload started, ms: min / median / p99 / max | "
      + " | ".join(dist(d, "signal_ms", "%.2f") for d in designs) + " |")
    cells = []
    for d in designs:
        v = [one(d, r, "b", "main_cpu_s") / one(d, r, "b", "reloads_done") for r in rounds
             if one(d, r, "b", "main_cpu_s") is not None and one(d, r, "b", "reloads_done")]
        cells.append(f"{statistics.median(v) * 1000:.1f} ms" if v and d == "new" else
                     "— (worker 0 shares that thread)" if v else "—")
    w("| CPU of l4lb's main (control) thread per reload, (b) | " + " | ".join(cells) + " |")
    w("| `l4lb -t` on this config (reads it, resolves the 1,000 names; nothing running), once, ms | "
      + " | ".join(meta.get("check_ms_" + d, "—") for d in designs) + " |")
    w("")
    w("## Per round")
    w("")
    w("| design | round | mode | other load % | requests/s | p50 ms | p99 ms | max ms | errors | reloads | swap_us median | reload ms median | CPU s: main thread; other threads |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rounds:
        for d in designs:
            for m in ("a", "b"):
                g = runs.get((d, r, m))
                if not g:
                    continue
                sw, rl = g.get("swap_us", []), g.get("reload_ms", [])
                w(f"| {d} | {r} | {m} | {f(one(d, r, m, 'bg_pct'), '%.0f')} | {f(one(d, r, m, 'rps'), '%.0f')} | "
                  f"{f(one(d, r, m, 'p50_ms'), '%.3f')} | {f(one(d, r, m, 'p99_ms'), '%.3f')} | "
                  f"{f(one(d, r, m, 'max_ms'), '%.2f')} | {f(one(d, r, m, 'errors'), '%.0f')} | "
                  f"{f(one(d, r, m, 'reloads_done'), '%.0f')} | "
                  f"{'%.0f' % statistics.median(sw) if sw else '—'} | {'%.1f' % statistics.median(rl) if rl else '—'} | "
                  f"{f(one(d, r, m, 'main_cpu_s'), '%.1f')}; {' / '.join('%.1f' % x for x in g.get('thread_cpu_s', [])) or '—'} |")
    w("")
    w("CPU s: on-CPU time (schedstat) of l4lb's main thread over the wrk run, and of each other thread "
      "(the data workers; since l4lb started, 1 s before wrk) — how the load split between the workers.")
    w("")
    w("Raw values (design, round, mode, key, value): "
      + (", ".join(f"`bench/raw/{os.path.basename(p)}`" for p in raw_paths) + " (rounds pooled in this order)"
         if len(raw_paths) > 1 else "`" + os.path.basename(out).rsplit(".md", 1)[0] + ".raw.tsv`")
      + "; `bench/reload_p99.py report --raw X.raw.tsv [--raw ...] --meta X.meta --out X.md` regenerates this file.")
    w("")
    with open(out, "w") as fh:
        fh.write("\n".join(L))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["drive"] and len(a) == 5:
        drive(*a[1:])
    elif a[:1] == ["wrk"] and len(a) == 2:
        parse_wrk(a[1])
    elif a[:1] == ["report"]:
        raws = [v for k, v in zip(a[1::2], a[2::2]) if k == "--raw"]
        kw = dict(zip(a[1::2], a[2::2]))
        report(raws, kw["--meta"], kw["--out"])
    else:
        sys.exit(__doc__)
