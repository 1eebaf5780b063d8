#!/usr/bin/env bash
# Runs every test suite against the binaries in BUILD_DIR (default: build) and ends
# with one line "N passed, N failed" (totals over all suites). Exit 1 on any failure.
#   scripts/run-tests.sh [BUILD_DIR] [INTEGRATION_FILTER]
# Env L4LB_WORKERS=N runs every l4lb of the integration tests with N workers.
set -uo pipefail
build=${1:-build}
filter=${2:-${TEST_FILTER:-}}
cd "$(dirname "$0")/.."

passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

echo "== unit tests ($build/unit-tests)"
"$build/unit-tests" --no-version 2>&1 | tee "$log"
line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -1)
if [ -n "$line" ]; then
  p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
else
  echo "unit tests did not report (crashed?)"; failed=$((failed + 1))
fi

echo "== integration tests${L4LB_WORKERS:+ (L4LB_WORKERS=$L4LB_WORKERS)}"
L4LB_BIN="$build/l4lb" L4LB_TESTD="$build/l4lb-testd" \
  python3 test/integration/run.py $filter 2>&1 | tee "$log"
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
if [ -n "$line" ]; then
  p=$(sed -E 's/^integration: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
else
  echo "integration tests did not report (crashed?)"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
