#!/usr/bin/env bash
# Runs a subset of the integration tests with l4lb under valgrind memcheck and fails
# on any memcheck error or definite leak.
#   scripts/valgrind.sh [BUILD_DIR] [TEST_FILTER...]    default BUILD_DIR: build
# The default subset (about 2.5 min) leaves out the load and stress tests and those
# that bound RSS or time a slow client (bulk/reload under load, slowloris, 65th
# admin connection, fd exhaustion, test_load, test_ha, test_mariadb, test_systemd).
# Leak checks run only for l4lb processes that exit by themselves (SIGTERM/SIGINT
# drains, -t, refused starts): the harness SIGKILLs whatever is still running at the
# end of a test. Memory errors are logged whenever they happen. Logs: build/valgrind/.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(
    # test_streams
    test_half_close_passes_through test_server_speaks_first
    test_backend_reset_mid_stream_ends_client test_ipv6_listen_and_backend
    test_idle_timeout_closes_idle_and_spares_active
    # test_balancing
    test_round_robin_spreads_evenly test_dead_backend_retried_transparently
    test_no_backend_closes_client_quickly test_max_connections_enforced
    # test_cli
    test_check_good_and_bad_configs
    # test_reload
    test_invalid_config_keeps_old_and_counts_failure test_reload_with_unbindable_listen_changes_nothing
    test_algorithm_change_applies_to_new_connections test_quick_sighups_coalesced_last_file_wins
    test_reload_adds_and_removes_services test_kept_backend_keeps_health_state
    test_removed_backend_open_transfer_finishes
    # test_signals
    test_sigterm_lets_inflight_transfer_finish test_second_sigterm_exits_at_once
    # test_admin
    test_admin_http_errors_and_routing test_admin_health_ok_then_stopping_during_drain
    test_admin_reports_exact_traffic_counts test_admin_health_503_when_every_backend_down
    # test_proxy_protocol (the HAProxy/nginx ones skip when those are not installed)
    test_proxy_v1_ipv4_real_source test_proxy_v2_ipv4_real_source test_proxy_v1_ipv6_real_source
    test_proxy_v2_ipv6_real_source test_proxy_v2_ipv6_client_to_ipv4_backend
    test_proxy_off_sends_no_header test_proxy_header_once_per_connection
    test_proxy_header_not_in_byte_counters
    # test_health
    test_killed_backend_removed_then_back test_http_500_gets_no_traffic
    test_backend_that_accepts_and_never_answers test_refused_real_connect_counts
    # test_selection
    test_least_connections_avoids test_ip_hash_sticky test_consistent_hash_remove_readd
    test_weighted_round_robin_smooth test_backup_only_when test_drain_by_reload
    test_backend_max_connections_full test_live_counts_back_to_zero
    # test_resources, test_faults, test_workers (threads under memcheck)
    test_live_count_and_fds_back_to_baseline test_50_sighups_alternating
    test_two_workers_serve_count_and_drain
    # test_dns (c-ares on the control loop; dnsmasq, skipped when not installed)
    test_dns_addresses_added_and_removed_while_traffic_runs test_dns_srv_weights_and_ports
    test_dns_server_down_keeps_last_good_set test_dns_entry_kept_over_reload_without_waiting
  )
fi

command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 1; }
[ -x "$build/l4lb" ] && [ -x "$build/l4lb-testd" ] || { echo "build $build/l4lb first (make)"; exit 1; }
case $build in */san|*/tsan|san|tsan) echo "valgrind needs a build without sanitizers"; exit 1 ;; esac

dir=$PWD/build/valgrind
rm -rf "$dir"; mkdir -p "$dir/logs"
cat >"$dir/l4lb" <<WRAP
#!/bin/sh
exec valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
  --show-leak-kinds=definite --track-fds=no -q --log-file="$dir/logs/vg.%p" \\
  "$PWD/$build/l4lb" "\$@"
WRAP
chmod +x "$dir/l4lb"

L4LB_BIN="$dir/l4lb" L4LB_TESTD="$build/l4lb-testd" \
  python3 test/integration/run.py "${tests[@]}" 2>&1 | tee "$dir/integration.log"
tests_ok=${PIPESTATUS[0]}

# With -q a log holds only errors, definite leaks and warnings; errors start with these.
errors_rx='Invalid (read|write|free)|uninitialised|Conditional jump|Syscall param|Mismatched free|overlap|definitely lost|Process terminating|Jump to the invalid'
bad=$(grep -lE "$errors_rx" "$dir"/logs/vg.* 2>/dev/null)
runs=$(ls "$dir"/logs | wc -l)
for f in $bad; do echo "--- $f"; head -60 "$f"; done
echo "valgrind: $runs l4lb runs, $(wc -w <<<"$bad") with memcheck errors or definite leaks (logs: $dir/logs)"
[ -z "$bad" ] && [ "$tests_ok" -eq 0 ]
