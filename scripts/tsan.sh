#!/usr/bin/env bash
# Builds l4lb, the unit tests and the test backend under ThreadSanitizer (build/tsan), runs
# the unit tests and an integration subset (about 3 min: workers, limits, reloads under
# load, admin, streams) with every l4lb at 2 workers, and fails on any ThreadSanitizer
# report: l4lb stops at its first one (halt_on_error) and the harness fails the test whose
# l4lb printed it (L4LB_FAIL_ON_TSAN=1), showing the report. Logs: build/tsan/logs/.
#   scripts/tsan.sh [TEST_FILTER...]
set -uo pipefail
cd "$(dirname "$0")/.."
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(
    # test_workers, test_limits (several workers on shared pools and counts)
    test_two_workers_serve_count_and_drain test_two_workers_reload_under_load_refuses_nobody
    test_backend_max_connections_exact_with_4_workers test_service_max_connections_exact_with_4_workers
    test_global_max_connections_exact_with_4_workers
    test_service_active_connections_never_negative_or_huge_while_churning
    test_connect_failure_just_before_reload_to_checks_none_never_leaves_backend_down
    # reloads and health changes while workers move bytes
    test_reload_under_load_no_failures_same_socket test_50_sighups_alternating
    test_kept_backend_keeps_health_state test_turning_checks_on_by_reload_checks_at_once
    # admin port (reads counters and live counts that workers write)
    test_admin_reports_exact_traffic_counts test_admin_health_503_when_every_backend_down_and_back
    test_admin_garbage_does_not_affect_data_transfer
    # streams and endings
    test_bulk_integrity_32_clients test_half_close_passes_through test_backend_reset_mid_stream_ends_client
    test_idle_timeout_closes_idle_and_spares_active test_live_counts_back_to_zero_after_every_ending
    test_sigterm_lets_inflight_transfer_finish
    # runtime control (WorldStop for close), the access log's writer thread, the queue's
    # cross-worker wake-ups and the shared per-source table
    test_close_resets_exactly_that_backends_connections test_slow_start_under_least_connections
    test_access_log_every_end_value_is_reached test_access_log_reopen_after_rename_loses_and_duplicates_nothing
    test_queue_serves_in_arrival_order_when_a_backend_frees test_an_attacker_address_cannot_take_the_service_from_others
    test_a_queued_client_is_served_when_a_backend_comes_up
  )
fi

make SANITIZE=thread build/tsan/l4lb build/tsan/unit-tests build/tsan/l4lb-testd || exit 1

dir=$PWD/build/tsan/logs
rm -rf "$dir"; mkdir -p "$dir"
# No suppressions: every report so far is in l4lb's own code.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"

echo "== unit tests under ThreadSanitizer"
build/tsan/unit-tests --no-version 2>&1 | tee "$dir/unit.log"
unit_ok=${PIPESTATUS[0]}

echo "== integration subset under ThreadSanitizer, L4LB_WORKERS=2"
L4LB_WORKERS=2 L4LB_FAIL_ON_TSAN=1 L4LB_BIN=build/tsan/l4lb L4LB_TESTD=build/tsan/l4lb-testd \
  python3 test/integration/run.py "${tests[@]}" 2>&1 | tee "$dir/integration.log"
tests_ok=${PIPESTATUS[0]}

# One line per distinct report (its SUMMARY line: kind, first frame of our code).
reports=$(grep -h 'SUMMARY: ThreadSanitizer' "$dir"/*.log | sed -E 's/^ +//' | sort | uniq -c | sort -rn)
[ -n "$reports" ] && echo "$reports"
echo "tsan: unit tests exit $unit_ok, integration exit $tests_ok," \
  "$(grep -c . <<<"$reports" | sed 's/^0$/no/') distinct ThreadSanitizer reports (logs: $dir)"
[ "$unit_ok" -eq 0 ] && [ "$tests_ok" -eq 0 ] && [ -z "$reports" ]
