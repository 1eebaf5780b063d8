#!/usr/bin/env bash
# The README demo: three test backends, l4lb in front of them (conf/demo.yaml), and
# curl showing requests spread across them. Interactive: keeps running until Ctrl-C.
# Not a terminal (or --once): stops everything after the requests.
set -euo pipefail
cd "$(dirname "$0")/.."
once=0
[ -t 0 ] || once=1
[ "${1:-}" = "--once" ] && once=1

scripts/install-deps.sh     # installs only what is missing (sudo when not root)
make -s all

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for i in 1 2 3; do
  build/l4lb-testd --mode http --name "backend-$i" --listen "127.0.0.1:1808$i" >/dev/null &
  pids+=($!)
done
build/l4lb -c conf/demo.yaml 2> >(sed 's/^/  [l4lb] /' >&2) &
pids+=($!)

for _ in $(seq 50); do   # wait until l4lb accepts
  if (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; then break; fi
  sleep 0.1
done

curls() {
  for i in $(seq "$1"); do
    printf '  curl http://127.0.0.1:18080/  ->  %s\n' "$(curl -sS --max-time 2 http://127.0.0.1:18080/)"
  done
}
ctl() { echo "\$ l4lb ctl -c conf/demo.yaml $*"; build/l4lb ctl -c conf/demo.yaml "$@" | sed 's/^/  /'; }

echo
echo "l4lb listens on 127.0.0.1:18080 in front of backend-1..3 (round_robin):"
curls 6
echo
ctl status
echo
echo "Take backend-2 out (open connections would run to completion; new ones go elsewhere):"
ctl drain demo 127.0.0.1:18082
curls 4
ctl status
echo
echo "Put it back (slow_start: it ramps up over 2 s), then kill backend-3: its health check takes it out:"
ctl ready demo 127.0.0.1:18082
kill "${pids[2]}"
for _ in $(seq 50); do   # until the checks mark it down (2 failures, 500 ms apart)
  build/l4lb ctl -c conf/demo.yaml status | grep -q '18083 *down' && break
  sleep 0.1
done
ctl status
curls 4
echo
if [ "$once" -eq 1 ]; then
  echo "demo done; stopping."
else
  echo "Try: curl http://127.0.0.1:18080/   (Ctrl-C stops the demo)"
  wait "${pids[-1]}"
fi
