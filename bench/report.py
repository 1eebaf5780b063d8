#!/usr/bin/env python3
"""Turn bench/run.sh raw measurements (TSV: lb rep test key value) into bench/results.md."""
import argparse
import os
import statistics
from collections import defaultdict

LBS = ["direct", "haproxy", "haproxy-splice", "nginx", "floor", "l4lb", "l4lb-splice", "l4lb-copy"]
TITLES = {
    "direct": "direct (no LB)",
    "haproxy": "HAProxy 2.6 (splice-auto)",
    "haproxy-splice": "HAProxy (forced splice)",
    "nginx": "nginx 1.22 stream",
    "floor": "floor (bench/floor_proxy.c)",
    "l4lb": "l4lb",
    "l4lb-splice": "l4lb, splice always",
    "l4lb-copy": "l4lb, copy only",
}
PEERS = ["haproxy", "haproxy-splice", "nginx"]


def load(paths):
    """Raw files of one or more runs; repeats of later files are numbered after earlier ones."""
    raw = defaultdict(dict)  # (lb, test, rep) -> {key: value}
    offset = 0
    for path in paths:
        top = 0
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            lb, rep, test, key, val = parts
            try:
                raw[(lb, test, int(rep) + offset)][key] = float(val)
                top = max(top, int(rep))
            except ValueError:
                pass
        offset += top
    return raw, offset


def derive(raw):
    """Per-repeat derived metrics: metric -> lb -> [values]."""
    m = defaultdict(lambda: defaultdict(list))
    for (lb, test, rep), d in sorted(raw.items()):
        if test.startswith("bulk"):
            n = test[4:]
            if "gbps" in d:
                m[f"gbps{n}"][lb].append(d["gbps"])
            if d.get("bytes"):
                gb = d["bytes"] / 1e9
                if "lb_cpu_s" in d:
                    m[f"cpu_gb{n}"][lb].append(d["lb_cpu_s"] / gb)
                    m[f"cpus_gb{n}"][lb].append(d["lb_cpu_sched_s"] / gb)
                m[f"core_gb{n}"][lb].append(d["core_s"] / gb)
            if n.endswith("cap") and d.get("wall_s"):
                # how much of the quota the balancer used, and how long the quota held it back
                if "lb_cpu_s" in d:
                    m[f"use_pct{n}"][lb].append(100 * d["lb_cpu_s"] / d["wall_s"])
                if "throttled_s" in d:
                    m[f"throttled_pct{n}"][lb].append(100 * d["throttled_s"] / d["wall_s"])
        elif test in ("ka", "nc", "sni"):
            if test == "sni" and "check_ok" in d:
                m["check_ok_sni"][lb].append(d["check_ok"])
            req = d.get("requests")
            if not req:
                continue
            if "lb_cpu_s" in d:
                m[f"cpu_{test}"][lb].append(d["lb_cpu_s"] * 1e6 / req)
                m[f"cpus_{test}"][lb].append(d["lb_cpu_sched_s"] * 1e6 / req)
            m[f"core_{test}"][lb].append(d["core_s"] * 1e6 / req)
            for k in ("p99_ms", "p50_ms", "rps", "errors", "p90_ms", "max_ms"):
                if k in d:
                    m[f"{k}_{test}"][lb].append(d[k])
        elif test == "round":
            if "bg_pct" in d:
                m["bg_pct"][lb].append(d["bg_pct"])
        elif test == "idle":
            for k in ("rss_kib_per_conn", "fds_per_conn", "slab_kib_per_conn", "tcpmem_kib_per_conn",
                      "conns", "connect_s"):
                if k in d:
                    m[k][lb].append(d[k])
            if "slab_kib_per_conn" in d:
                m["kmem_per_conn"][lb].append(d["slab_kib_per_conn"] + d.get("tcpmem_kib_per_conn", 0))
    # CPU time on the balancer's core not used by the balancer (other tenants, softirq), % of wall time
    for (lb, test, rep), d in sorted(raw.items()):
        if "core_s" in d and d.get("wall_s"):
            m["foreign_pct"][lb].append(100 * (d["core_s"] - d.get("lb_cpu_s", 0)) / d["wall_s"])
    # kernel memory attributable to the balancer = (with LB) - (direct): median of direct as baseline
    base = m["kmem_per_conn"].get("direct")
    if base:
        b = statistics.median(base)
        for lb, vals in list(m["kmem_per_conn"].items()):
            if lb != "direct":
                m["kmem_lb_per_conn"][lb] = [v - b for v in vals]
    return m


def med(vals):
    return statistics.median(vals) if vals else None


def fmt(v, digits):
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def cell(vals, digits, spread=True):
    if not vals:
        return "—"
    s = fmt(med(vals), digits)
    if spread and len(vals) > 1:
        s += f" ({fmt(min(vals), digits)}–{fmt(max(vals), digits)})"
    return s


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.{digits}f}×"


ROWS = [
    # (label, metric, digits, lower_is_better)
    ("bulk iperf3, 1 stream, Gbit/s", "gbps1", 2, False),
    ("bulk iperf3, 8 streams, Gbit/s", "gbps8", 2, False),
    ("bulk iperf3, 1 stream, balancer capped to {cap} of a core, Gbit/s", "gbps1cap", 2, False),
    ("bulk iperf3, 8 streams, balancer capped to {cap} of a core, Gbit/s", "gbps8cap", 2, False),
    ("LB CPU s per GB, 1 stream", "cpu_gb1", 3, True),
    ("LB CPU s per GB, 8 streams", "cpu_gb8", 3, True),
    ("keep-alive HTTP (wrk -c64): LB CPU µs per request", "cpu_ka", 2, True),
    ("keep-alive HTTP: p99 latency, ms", "p99_ms_ka", 2, True),
    ("new connection per request: LB CPU µs per connection", "cpu_nc", 1, True),
    ("new connection per request: p99 latency, ms", "p99_ms_nc", 2, True),
    ("new connection with a ClientHello (SNI routing): LB CPU µs per connection", "cpu_sni", 1, True),
    ("new connection with a ClientHello (SNI routing): p99 connection time, ms", "p99_ms_sni", 2, True),
    ("idle connections: LB RSS KiB per connection", "rss_kib_per_conn", 2, True),
    ("idle connections: LB fds per connection", "fds_per_conn", 2, True),
    ("idle connections: kernel KiB per connection, LB's share (slab+TCP mem, minus direct)", "kmem_lb_per_conn", 1, True),
]

DETAIL_ROWS = [
    ("keep-alive HTTP: requests/s (generator-bound)", "rps_ka", 0),
    ("keep-alive HTTP: p50, ms", "p50_ms_ka", 3),
    ("new connection: connections/s (generator-bound)", "rps_nc", 0),
    ("new connection: p50, ms", "p50_ms_nc", 3),
    ("wrk errors, keep-alive / new connection", None, 0),
    ("SNI routing: connections/s (the balancer's core may be the limit: see LB core busy)", "rps_sni", 0),
    ("SNI routing: connection time p50 / p90 / max, ms", ("p50_ms_sni", "p90_ms_sni", "max_ms_sni"), 3),
    ("SNI routing: connections with a wrong or no reply", "errors_sni", 0),
    ("SNI routing: routing check passed (repeats)", "check_sni", 0),
    ("SNI routing: LB CPU µs per connection from schedstat (ns) / LB core busy µs per connection", ("cpus_sni", "core_sni"), 1),
    ("LB CPU s per GB, 1 / 8 streams — from schedstat (ns)", ("cpus_gb1", "cpus_gb8"), 3),
    ("LB CPU µs per request / per connection — from schedstat (ns)", ("cpus_ka", "cpus_nc"), 2),
    ("LB core busy (incl. softirq) s per GB, 1 / 8 streams", ("core_gb1", "core_gb8"), 3),
    ("LB core busy (incl. softirq) µs per request / per connection", ("core_ka", "core_nc"), 2),
    ("capped to {cap}: LB CPU s per GB, 1 / 8 streams (≈ quota ÷ throughput when the quota is used up)",
     ("cpu_gb1cap", "cpu_gb8cap"), 3),
    ("capped to {cap}: LB CPU, % of one core over the run, 1 / 8 streams", ("use_pct1cap", "use_pct8cap"), 1),
    ("capped to {cap}: time held back by the quota (throttled), % of the run, 1 / 8 streams",
     ("throttled_pct1cap", "throttled_pct8cap"), 0),
    ("idle: kernel KiB per connection, whole system (slab+TCP mem)", "kmem_per_conn", 1),
    ("idle: connections held at the backend", "conns", 0),
    ("other load on the machine at the start of each round, % of both CPUs", "bg_pct", 0),
    ("LB core busy but not the balancer, % of run time (interference + softirq), all runs", "foreign_pct", 0),
    ("idle: seconds to open them all", "connect_s", 1),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True, action="append",
                    help="raw TSV of a run; repeat to pool the repeats of several runs")
    ap.add_argument("--meta", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default="", help="a sentence added under the title (e.g. what pooled runs share)")
    a = ap.parse_args()
    meta = {}
    for line in open(a.meta):
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v
    raw, reps = load(a.raw)
    m = derive(raw)
    cap = f"{meta['cap_pct']}%" if meta.get("cap_pct") else "a share"  # older results: no capped runs
    lbs = [lb for lb in LBS if any(lb in m[k] for k in m)]

    o = []
    w = o.append
    w("# l4lb side-by-side benchmark")
    w("")
    w(f"Generated by `{meta.get('cmdline', 'bench/run.sh')}` on {meta.get('date')} "
      f"({meta.get('elapsed')} s). Do not edit by hand: rerun the script.")
    if len(a.raw) > 1:
        w("")
        w(f"Repeats of {len(a.raw)} runs are pooled ({reps} in all; same settings): "
          + ", ".join(f"`{os.path.basename(p)}`" for p in a.raw) + ". Machine and settings below are "
          "those of the last run; `bench/report.py --raw A.tsv --raw B.tsv ...` regenerates this file.")
    if a.note:
        w("")
        w(a.note)
    w("")
    w("## Machine")
    w("")
    for k, label in (("cpu", "CPU"), ("kernel", "kernel"), ("os", "OS"), ("haproxy", "HAProxy"),
                     ("nginx", "nginx"), ("iperf3", "iperf3"), ("wrk", "wrk"), ("l4lb", "l4lb")):
        w(f"- {label}: {meta.get(k, '?')}")
    w(f"- load: {meta.get('load', '?')}; benchmark processes run at nice {meta.get('nice', '?')}")
    w("")
    w("## Results")
    w("")
    w(f"Loopback; balancer alone on CPU {meta.get('lb_cpu')} (`taskset`), load generators and backends on "
      f"CPU {meta.get('gen_cpu')}; one worker/thread per balancer. "
      f"Median of {reps} repeat(s)" + (", min–max in parentheses" if reps > 1 else " (no spread: single run)") +
      f". Bulk runs {meta.get('bulk_t')} s, wrk runs {meta.get('wrk_t')} s with -c{meta.get('wrk_c')} -t1, "
      f"{meta.get('idle_n')} idle connections. LB CPU = utime+stime of the balancer's processes "
      "(/proc/PID/stat) over the run, divided by the work done. On 2 cores the generator core saturates "
      "first, so throughput and requests/s mostly measure the generator; compare CPU per unit of work, "
      "latency and memory.")
    if any(m[k] for k in ("gbps1cap", "gbps8cap")):
        w("")
        w(f"*Capped rows* (balancer capped to {cap} of a core): the same iperf3 runs, with every process and "
          f"thread of the balancer moved, for those runs only, into a cgroup ({meta.get('cap_cgroup', '?')}: "
          f"{meta.get('cap_how', '?')}) whose CPU quota is {cap} of one CPU per 100 ms period. They measure "
          "throughput per balancer core: the balancer is the bottleneck, as on a busy node where it gets only "
          "a share of a core; the uncapped rows are bound by the load generator's core on this 2-CPU machine. "
          "LB CPU per GB is left out of the main table for the capped runs: a balancer that uses up its quota "
          "spends the quota's share of the run whatever it does, so its CPU per GB is the quota divided by "
          "the throughput, the Gbit/s row again (it is in the detail table, with the share of a core each "
          "balancer used and how long the quota held it back).")
    if any(m[k] for k in ("check_ok_sni", "cpu_sni", "p99_ms_sni")):
        w("")
        w(f"*SNI routing*: bench/sni_client.c, {meta.get('sni_c', '?')} connections in parallel for "
          f"{meta.get('wrk_t')} s, each a new connection that sends one captured TLS ClientHello "
          f"({meta.get('sni_hello_bytes', '?')} bytes, from Python's ssl, {meta.get('python_ssl', '?')}; no TLS "
          "work on either side), reads the backend's reply (5 bytes) until the backend closes, and closes. "
          "The names a.bench.test, b.bench.test, c.bench.test and x.w.bench.test in turn, on one listen address "
          "shared by four routes (three exact names, one wildcard `*.w.bench.test`), each to its own port "
          "of one backend (bench/sni_backend.c, which reads the hello and answers with its port's name). "
          "The balancer runs in a process of its own for this test, with only that listener. Before the "
          "load, a routing check: each name reaches its own backend (the wildcard also two labels deep, "
          "a name in upper case too), and a name that matches nothing — and the wildcard's bare suffix — is "
          "closed without a reply (no default route is configured). Connection time = connect() to the "
          "backend's close, as the client sees it (wrk's new-connection latency starts after connect). "
          "`direct`: the client against the backend's first port, no routing. Unlike the wrk loads, this "
          "one can saturate the balancer's core (LB CPU near the run time): the connection time is then "
          "mostly queueing behind the other connections, so compare CPU per connection first.")
    w("")
    bg = [v for vals in m["bg_pct"].values() for v in vals]
    busy = {lb: statistics.median(v) for lb, v in m["bg_pct"].items() if v}
    if bg and (statistics.median(bg) > 25 or any(v > 25 for v in busy.values())):
        w(f"**Caution: the machine was not quiet.** Other processes used "
          + ", ".join(f"{busy[lb]:.0f}%" + f" ({TITLES[lb]})" for lb in lbs if lb in busy)
          + " of both CPUs (medians over the rounds) just before each balancer's rounds started "
          f"(load averages: {meta.get('load', '?')}). The benchmark ran at nice -20 (process and session autogroup), which "
          "keeps the generators and balancers runnable, but other work still runs on the balancer's core "
          "whenever the balancer sleeps, so CPU per unit of work is inflated by cache pollution and the "
          "spreads are wide. Rounds alternate between balancers, which spreads the disturbance but does not even it out (see the figures above); rerun on a "
          "quiet machine (or with `--wait-quiet 300`) for tighter figures.")
        w("")
    w("| per core | " + " | ".join(TITLES[lb] for lb in lbs) + " |")
    w("|---|" + "---|" * len(lbs))
    for label, key, digits, _ in ROWS:
        if key.endswith("_sni") and not any(m[key].values()):
            continue
        w(f"| {label.format(cap=cap)} | " + " | ".join(cell(m[key].get(lb), digits) for lb in lbs) + " |")
    w("")
    w("### Ratios (medians)")
    w("")
    w("Each cell: value ÷ direct, value ÷ HAProxy (splice-auto). For CPU and memory, lower is better; "
      "for Gbit/s, higher is better.")
    w("")
    w("| metric | " + " | ".join(TITLES[lb] for lb in lbs if lb != "direct") + " |")
    w("|---|" + "---|" * len([lb for lb in lbs if lb != "direct"]))
    for label, key, digits, _ in ROWS:
        if key.endswith("_sni") and not any(m[key].values()):
            continue
        d = med(m[key].get("direct", []))
        h = med(m[key].get("haproxy", []))
        cells = []
        for lb in lbs:
            if lb == "direct":
                continue
            v = med(m[key].get(lb, []))
            cells.append(f"{ratio(v, d)} direct, {ratio(v, h)} HAProxy" if d else f"{ratio(v, h)} HAProxy")
        w(f"| {label.format(cap=cap)} | " + " | ".join(cells) + " |")
    w("")

    # Targets for l4lb
    if "l4lb" in lbs:
        w("### l4lb against its targets")
        w("")
        w("Medians decide *met?*. The last column divides the smallest of l4lb's repeats by the smallest "
          "of the best peer's: interference from other processes only adds CPU time, so under background "
          "load the minimum is the least-disturbed estimate of each balancer's own cost.")
        w("")
        w("| target | l4lb | best peer | l4lb ÷ best peer | met? | min ÷ min |")
        w("|---|---|---|---|---|---|")

        def best(key):
            vals = [(med(m[key].get(p, [])), p) for p in PEERS if m[key].get(p)]
            return min(vals) if vals else (None, None)

        def target_row(label, key, limit, digits, extra_ok=True, extra_note=""):
            v = med(m[key].get("l4lb", []))
            b, p = best(key)
            if v is None or b is None:
                w(f"| {label} | — | — | — | — |")
                return
            r = v / b if b else float("inf")
            ok = r <= limit and extra_ok
            lm, bm = min(m[key]["l4lb"]), min(m[key][p])
            mm = f"{lm / bm:.2f}×" if bm else "—"
            w(f"| {label} | {fmt(v, digits)} | {fmt(b, digits)} ({TITLES[p]}) | {r:.2f}× | "
              f"{'yes' if ok else 'no'}{extra_note} | {mm} |")

        target_row("CPU/GB, 1 stream ≤ 0.8× best peer", "cpu_gb1", 0.8, 3)
        target_row("CPU/GB, 8 streams ≤ 0.8× best peer", "cpu_gb8", 0.8, 3)
        for n in ("1", "8"):  # higher is better: l4lb must reach the fastest peer
            v = med(m["gbps" + n].get("l4lb", []))
            vals = [(med(m["gbps" + n].get(p, [])), p) for p in PEERS if m["gbps" + n].get(p)]
            if v is not None and vals:
                b, p = max(vals)
                lm, bm = min(m["gbps" + n]["l4lb"]), min(m["gbps" + n][p])
                w(f"| bulk Gbit/s, {n} stream{'s' if n != '1' else ''} ≥ every peer's | {fmt(v, 2)} | "
                  f"{fmt(b, 2)} ({TITLES[p]}) | {v / b:.2f}× | {'yes' if v >= b else 'no'} | "
                  f"{lm / bm:.2f}× |")
        for n in ("1", "8"):  # capped: throughput per balancer core, 1.2× the fastest peer's
            key = f"gbps{n}cap"
            v = med(m[key].get("l4lb", []))
            vals = [(med(m[key].get(p, [])), p) for p in PEERS if m[key].get(p)]
            if v is not None and vals:
                b, p = max(vals)
                lm, bm = min(m[key]["l4lb"]), min(m[key][p])
                w(f"| capped to {cap} of a core: bulk Gbit/s, {n} stream{'s' if n != '1' else ''} ≥ 1.2× best peer | "
                  f"{fmt(v, 2)} | {fmt(b, 2)} ({TITLES[p]}) | {v / b:.2f}× | {'yes' if v >= 1.2 * b else 'no'} | "
                  f"{lm / bm:.2f}× |")
        target_row("CPU/request ≤ 0.85× best peer", "cpu_ka", 0.85, 2)
        target_row("… and keep-alive p99 ≤ best peer (ms)", "p99_ms_ka", 1.0, 2)
        target_row("CPU/new connection ≤ 0.8× best peer", "cpu_nc", 0.8, 1)
        target_row("… and new-connection p99 ≤ best peer (ms)", "p99_ms_nc", 1.0, 2)
        rss = med(m["rss_kib_per_conn"].get("l4lb", []))
        fds = med(m["fds_per_conn"].get("l4lb", []))
        w(f"| idle RSS ≤ 2 KiB per connection | {fmt(rss, 2)} | — | — | "
          f"{'yes' if rss is not None and rss <= 2 else 'no'} | |")
        w(f"| idle fds = 2 per connection | {fmt(fds, 2)} | — | — | "
          f"{'yes' if fds is not None and fds <= 2.01 else 'no'} | |")
        w("")

    floor_keys = [k for k in ("cpu_ka", "cpu_nc") if m[k].get("floor")]
    if floor_keys:
        w("### Against the floor")
        w("")
        w("`floor` is bench/floor_proxy.c: a proxy that makes only the syscalls no read/write proxy can "
          "avoid (one recv and one send per message, one edge-triggered epoll_ctl per socket, no "
          "half-close, no keepalive, no timers, no counters). It is not a product; it shows what the "
          "kernel charges a user-space proxy here for one recv and one send per message. A target below "
          "the floor (last column < 1.00×) cannot be met by any proxy that moves bytes with those calls; "
          "only fewer kernel crossings per message (batched submission such as io_uring) or forwarding "
          "inside the kernel (BPF sockmap) could go lower.")
        w("")
        w("| LB CPU per unit | floor | best peer ÷ floor | l4lb ÷ floor | target (× best peer) ÷ floor |")
        w("|---|---|---|---|---|")
        for key, label, limit, digits in (("cpu_ka", "µs per keep-alive request", 0.85, 2),
                                          ("cpu_nc", "µs per new connection", 0.8, 1)):
            if key not in floor_keys:
                continue
            f = med(m[key]["floor"])
            vals = [(med(m[key].get(p, [])), p) for p in PEERS if m[key].get(p)]
            b, p = min(vals) if vals else (None, None)
            v = med(m[key].get("l4lb", []))
            w(f"| {label} | {fmt(f, digits)} | {ratio(b, f)} ({TITLES[p] if p else '—'}) | {ratio(v, f)} | "
              f"{ratio(limit * b if b else None, f)} ({limit}×) |")
        w("")

    w("### More detail (medians, min–max)")
    w("")
    w("| | " + " | ".join(TITLES[lb] for lb in lbs) + " |")
    w("|---|" + "---|" * len(lbs))
    for label, key, digits in DETAIL_ROWS:
        keys = key if isinstance(key, tuple) else ("check_ok_sni" if key == "check_sni" else key,)
        if all(k and k.endswith("_sni") for k in keys) and not any(m[k] for k in keys):
            continue  # no sni test in this run
        cells = []
        for lb in lbs:
            if key == "check_sni":
                v = m["check_ok_sni"].get(lb)
                cells.append(f"{int(sum(v))} of {len(v)}" if v else "—")
            elif key is None:
                cells.append(f"{fmt(med(m['errors_ka'].get(lb, [])), 0)} / {fmt(med(m['errors_nc'].get(lb, [])), 0)}")
            elif isinstance(key, tuple):
                cells.append(" / ".join(cell(m[k].get(lb), digits, spread=False) for k in key))
            else:
                cells.append(cell(m[key].get(lb), digits))
        w(f"| {label.format(cap=cap)} | " + " | ".join(cells) + " |")
    w("")
    w("Notes: *LB core busy* is every non-idle jiffy of the balancer's core (/proc/stat), so it also "
      "counts softirq work (loopback receive processing of what the balancer sends) that may not be "
      "charged to the process; only the balancer runs there. Kernel memory is the change of "
      "`Slab` (/proc/meminfo) plus TCP `mem` pages (/proc/net/sockstat) while the idle connections are "
      "open; the balancer's share subtracts the `direct` run (client + backend sockets only). It is "
      "system-wide and therefore noisy (anything else running on the machine shows up in it).")
    w("")

    w("## Method and exact commands")
    w("")
    w(f"Ports: {meta.get('ports')}. Every process is started by the script, pinned with `taskset`, and "
      "stopped by PID at the end (trap).")
    w("")
    w("```sh")
    g, l = meta.get("gen_cpu"), meta.get("lb_cpu")
    bt, wt, wc, n = meta.get("bulk_t"), meta.get("wrk_t"), meta.get("wrk_c"), meta.get("idle_n")
    w("# backends (CPU %s)" % g)
    w(f"taskset -c {g} iperf3 -s -B 127.0.0.1 -p $P_IPERF")
    w(f"taskset -c {g} nginx -c $WORK/backend-nginx/nginx.conf        # HTTP backend, 65-byte body, keep-alive")
    w("# balancer (CPU %s), one of:" % l)
    w(f"taskset -c {l} haproxy -db -f $WORK/haproxy/haproxy.cfg          # splice-auto")
    w(f"taskset -c {l} haproxy -db -f $WORK/haproxy-splice/haproxy.cfg   # forced splice")
    w(f"taskset -c {l} nginx -c $WORK/nginx/nginx.conf                  # stream, 1 worker")
    w(f"taskset -c {l} $L4LB_BIN -c $WORK/l4lb/l4lb.yaml")
    if "l4lb-splice" in lbs or "l4lb-copy" in lbs:
        w(f"taskset -c {l} $L4LB_BIN -c $WORK/l4lb-splice/l4lb.yaml     # global: splice: always (l4lb-copy: never); not idle, sni")
    w(f"taskset -c {l} $WORK/floor/floor_proxy $P_LB_HTTP $P_HTTP        # yardstick: cc -O2 bench/floor_proxy.c; ka and nc only")
    w("# load (CPU %s); PORT = balancer port, or the backend port for 'direct'" % g)
    w(f"taskset -c {g} iperf3 -c 127.0.0.1 -p $PORT -t {bt} -P 1 -J")
    w(f"taskset -c {g} iperf3 -c 127.0.0.1 -p $PORT -t {bt} -P 8 -J")
    if meta.get("cap_pct"):
        w(f"# capped (bulk1cap, bulk8cap; not direct): the same two iperf3 runs, with the balancer's processes "
          f"(pgrep -P for children) moved for them only into a cgroup ({meta.get('cap_cgroup')}: {meta.get('cap_how')})")
        w("echo $PID > $CGROUP/cgroup.procs   # every thread of the process; back to the parent cgroup after the runs")
    w(f"taskset -c {g} wrk -c{wc} -t1 -d{wt}s --latency --timeout 5s http://127.0.0.1:$PORT/")
    w(f"taskset -c {g} wrk -c{wc} -t1 -d{wt}s --latency --timeout 5s -H 'Connection: close' http://127.0.0.1:$PORT/")
    w(f"taskset -c {g} python3 bench/idle_client.py 127.0.0.1 $PORT {n} READY_FILE   "
      "# sources 127.0.0.2-5, then LB VmRSS and /proc/PID/fd are read")
    if meta.get("sni_c"):
        w("# sni (bench/sni_lib.sh): backend, balancer in its own process, check, load")
        w(f"taskset -c {g} $WORK/sni/sni_backend $P_SNI_A=sni-a $P_SNI_B=sni-b $P_SNI_C=sni-c $P_SNI_W=sni-w")
        w(f"taskset -c {l} haproxy -db -f $WORK/haproxy-sni/haproxy.cfg   # or nginx -c $WORK/nginx-sni/nginx.conf, "
          "$L4LB_BIN -c $WORK/l4lb-sni/l4lb.yaml")
        w(f"taskset -c {g} $WORK/sni/sni_client check 127.0.0.1 $P_LB_SNI $WORK/sni/hello-a.bench.test.bin=sni-a ... "
          "$WORK/sni/hello-nomatch.other.test.bin=-")
        w(f"taskset -c {g} $WORK/sni/sni_client run 127.0.0.1 $P_LB_SNI {meta.get('sni_c')} {wt} "
          "$WORK/sni/hello-a.bench.test.bin=sni-a $WORK/sni/hello-b.bench.test.bin=sni-b "
          "$WORK/sni/hello-c.bench.test.bin=sni-c $WORK/sni/hello-x.w.bench.test.bin=sni-w")
    w("```")
    w("")
    w("### Generated configurations")
    w("")
    for name, fname in (("haproxy", "haproxy.cfg"), ("haproxy-splice", "haproxy.cfg"), ("nginx", "nginx.conf"),
                        ("l4lb", "l4lb.yaml"), ("l4lb-splice", "l4lb.yaml"), ("l4lb-copy", "l4lb.yaml"),
                        ("backend-nginx", "nginx.conf"), ("haproxy-sni", "haproxy.cfg"),
                        ("nginx-sni", "nginx.conf"), ("l4lb-sni", "l4lb.yaml")):
        path = os.path.join(a.configs, name, fname)
        if not os.path.exists(path):
            continue
        text = open(path).read().replace(a.configs, "$WORK")
        w(f"<details><summary>{name}: {fname}</summary>")
        w("")
        w("```")
        w(text.rstrip())
        w("```")
        w("</details>")
        w("")
    if len(a.raw) > 1:
        w("Raw per-repeat values (lb, repeat, test, key, value): "
          + ", ".join(f"`bench/raw/{os.path.basename(p)}`" for p in a.raw) + ".")
    else:
        w("Raw per-repeat values: `" + os.path.basename(a.out).rsplit(".md", 1)[0] + ".raw.tsv` next to this file "
          "(lb, repeat, test, key, value).")
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(o))


if __name__ == "__main__":
    main()
