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

echo
echo "l4lb listens on 127.0.0.1:18080 in front of backend-1..3 (round_robin):"
for i in $(seq 6); do
  printf '  curl http://127.0.0.1:18080/  ->  %s\n' "$(curl -sS --max-time 2 http://127.0.0.1:18080/)"
done
echo
if [ "$once" -eq 1 ]; then
  echo "demo done; stopping."
else
  echo "Try: curl http://127.0.0.1:18080/   (Ctrl-C stops the demo)"
  wait "${pids[-1]}"
fi
