"""bench/upgrade_bench.py (run by bench/upgrade.sh): N SIGUSR2 upgrades of a loaded l4lb.

Load: STREAMS paced streams (96 KiB over ~1.5 s each, restarted as they end, digest-checked)
plus a new connection every 20 ms (64 KiB, digest-checked). Counts refused and cut
connections over all upgrades, and times each handover from the log (same clock):
  signal -> new process accepting (its msg=ready) -> old process stopped accepting
  (its msg="drain start", after its listeners closed) and -> old process gone."""

import argparse
import hashlib
import os
import random
import re
import signal
import socket
import statistics
import sys
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "integration"))
os.chdir(os.path.dirname(HERE))
import harness as h  # noqa: E402

TS_RX = re.compile(r"ts=(\S+)")


def ts(line: str) -> float:
    t = TS_RX.search(line).group(1)
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Load:
    def __init__(self, addr: str, streams: int):
        self.addr = addr
        self.ok = self.refused = self.cut = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.stream_loop, daemon=True) for _ in range(streams)]
        self.threads.append(threading.Thread(target=self.connect_loop, daemon=True))
        for t in self.threads:
            t.start()

    def count(self, what: str, err: str = "") -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if err:
                self.errors.append(err)

    def one(self, total: int, chunk: int, pause: float) -> None:
        try:
            s = socket.create_connection(h.split_addr(self.addr), timeout=10.0)
        except OSError as e:
            return self.count("refused", f"connect: {e!r}")
        try:
            hsh = hashlib.sha256()
            block = os.urandom(chunk)
            sent = 0
            while sent < total:
                s.sendall(block)
                hsh.update(block)
                sent += len(block)
                if pause:
                    time.sleep(pause)
            s.shutdown(socket.SHUT_WR)
            answer = h.recv_all(s, timeout=15.0)
            if answer == f"{total} {hsh.hexdigest()}\n".encode():
                self.count("ok")
            else:
                self.count("cut", f"answer {answer[:60]!r}")
        except Exception as e:  # noqa: BLE001
            self.count("cut", f"transfer: {e!r}")
        finally:
            s.close()

    def stream_loop(self) -> None:
        time.sleep(random.uniform(0, 1.5))  # streams out of step: some always mid-way
        while not self.stop.is_set():
            self.one(96 << 10, 4 << 10, 0.06)  # ~1.5 s

    def connect_loop(self) -> None:
        ts_ = []
        while not self.stop.is_set():
            t = threading.Thread(target=self.one, args=(64 << 10, 64 << 10, 0), daemon=True)
            t.start()
            ts_.append(t)
            self.stop.wait(0.02)
        for t in ts_:
            t.join(20)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upgrades", type=int, default=10)
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "upgrade-results.md"))
    ap.add_argument("--append", action="store_true", help="add to --out rather than replace it")
    args = ap.parse_args()
    c = h.Context()
    h.set_context(c)
    pids = []
    try:
        digest = h.start_backend("digest")
        lb = h.start_service([digest], global_opts={"drain_timeout": "30s", "workers": args.workers})
        load = Load(lb.listen, args.streams)
        time.sleep(2.0)
        pid = lb.pid
        rows = []
        for i in range(args.upgrades):
            off = lb.log_offset()
            t_sig = time.time()
            os.kill(pid, signal.SIGUSR2)
            line = lb.wait_for_log(r'msg="upgrade handed over" pid=(\d+)', timeout=15.0, start=off)
            new = int(re.search(r"pid=(\d+)", line).group(1))
            pids.append(new)
            ready = lb.wait_for_log(rf"msg=ready .*pid={new}\b", timeout=5.0, start=off)
            drain = lb.wait_for_log(r'msg="drain start"', timeout=5.0, start=off)
            t0 = time.monotonic()
            while alive(pid) and time.monotonic() - t0 < 30:
                time.sleep(0.01)
            gone = time.time()
            rows.append((i + 1, (ts(ready) - t_sig) * 1000, (ts(drain) - t_sig) * 1000,
                         (ts(drain) - ts(ready)) * 1000, (gone - t_sig) * 1000))
            print(f"upgrade {i + 1}: pid {pid} -> {new}; new accepting {rows[-1][1]:.0f} ms, "
                  f"old stopped accepting {rows[-1][2]:.0f} ms, old gone {rows[-1][4]:.0f} ms "
                  f"after SIGUSR2", flush=True)
            pid = new
            time.sleep(random.uniform(0.5, 1.5))
        load.finish()
        total = load.ok + load.refused + load.cut
        print(f"{total} connections: {load.ok} ok, {load.refused} refused, {load.cut} cut "
              f"{load.errors[:3]}", flush=True)
        with open(args.out, "a" if args.append else "w") as f:
            if not args.append:
                f.write("# Upgrades under load (`bench/upgrade.sh`)\n\n")
            f.write(f"## workers {args.workers}\n\n")
            f.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs (shared), "
                    f"workers {args.workers}, loopback. Load: {args.streams} paced streams "
                    f"(96 KiB over ~1.5 s each, restarted as they end) and a new 64 KiB connection "
                    f"every 20 ms, all checked by sha256 at the digest backend.\n\n")
            f.write(f"**{args.upgrades} upgrades: {total} connections, {load.refused} refused, "
                    f"{load.cut} cut.**\n\n")
            f.write("Times from SIGUSR2 (log timestamps, ms resolution): the new process accepting "
                    "(its `msg=ready`, written once its workers accept), the old one stopped "
                    "accepting (its `drain start`, after its listeners closed), and the old one "
                    "gone (its last stream ended).\n\n")
            f.write("| # | new accepting (ms) | old stopped accepting (ms) | overlap (ms) | old gone (ms) |\n")
            f.write("|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} |\n")
            med = [statistics.median(r[k] for r in rows) for k in (1, 2, 3, 4)]
            mx = [max(r[k] for r in rows) for k in (1, 2, 3, 4)]
            f.write(f"| median | {med[0]:.0f} | {med[1]:.0f} | {med[2]:.0f} | {med[3]:.0f} |\n")
            f.write(f"| max | {mx[0]:.0f} | {mx[1]:.0f} | {mx[2]:.0f} | {mx[3]:.0f} |\n\n")
        print(f"wrote {args.out}")
        return 0 if load.refused == 0 and load.cut == 0 else 1
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        c.cleanup()


if __name__ == "__main__":
    sys.exit(main())
