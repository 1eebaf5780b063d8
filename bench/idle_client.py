#!/usr/bin/env python3
"""Open N idle TCP connections to HOST:PORT and hold them until killed.

usage: idle_client.py HOST PORT N READY_FILE [SRC_ADDRS]

Connections are spread over source addresses (default 127.0.0.2-127.0.0.5,
IP_BIND_ADDRESS_NO_PORT so the port is chosen at connect time) so the client
side never runs out of ephemeral ports. No byte is sent. Once every connect()
has completed, "N elapsed_s" is written to READY_FILE; then the process sleeps
until SIGTERM/SIGINT, when it closes everything and exits 0.
"""
import resource
import signal
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24


def main():
    host, port, n, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    srcs = (sys.argv[5] if len(sys.argv) > 5 else "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5").split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 64 > hard:
        sys.exit(f"idle_client: fd hard limit {hard} too low for {n} connections")

    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    socks = []
    t0 = time.monotonic()
    failures = 0
    for i in range(n):
        if stop:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((srcs[i % len(srcs)], 0))
        s.settimeout(10)
        try:
            s.connect((host, port))
        except OSError as e:
            failures += 1
            s.close()
            if failures > 50:
                sys.exit(f"idle_client: too many connect failures, last: {e}")
            continue
        socks.append(s)
        # Pace a little so a balancer's accept queue never overflows (an overflow
        # costs a 1 s SYN retransmit, which only slows the test down).
        if i % 512 == 511:
            time.sleep(0.02)
    elapsed = time.monotonic() - t0
    with open(ready + ".tmp", "w") as f:
        f.write(f"{len(socks)} {elapsed:.3f} {failures}\n")
    import os
    os.replace(ready + ".tmp", ready)
    while not stop:
        signal.pause()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
