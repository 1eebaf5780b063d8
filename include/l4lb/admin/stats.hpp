// What the admin port reports, as pure functions of a ServerState: the /health
// verdict, the /stats JSON and the /metrics text. Counters are per-worker slots of
// relaxed atomics (base/counters.hpp), summed over the workers when read; nothing here
// writes to the state.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "l4lb/balance/backend.hpp"
#include "l4lb/health/health.hpp"
#include "l4lb/control/server_state.hpp"

namespace l4lb {

// /health: 200 {"status":"ok"}; 503 {"status":"unavailable","services":[...]} naming the
// services without an available backend; 503 {"status":"stopping"} while draining.
struct HealthVerdict {
  int status = 200;
  nlohmann::ordered_json body;
};
HealthVerdict health_verdict(const ServerState& state);

// "maint", "draining" (the admin state in force), else "up", "down" or "unknown"; with health checks of type
// none a backend not yet marked is "up".
std::string_view backend_state(const Backend& b, const ServiceConfig& service);
// One backend's /stats object (also the answer to the admin write requests).
nlohmann::ordered_json backend_json(const Backend& b, const ServiceConfig& sc);

// "2026-01-01T00:00:00Z" (UTC, whole seconds).
std::string rfc3339(double unix_seconds);

// The /stats document of INTERFACE.md (every key always present) plus extras.
nlohmann::ordered_json stats_json(const ServerState& state, double now);
// Serialized without throwing: invalid UTF-8 in a string is replaced (U+FFFD).
std::string dump_json(const nlohmann::ordered_json& j);

// What /metrics reports about the process, read from /proc/self and getrlimit/getrusage.
struct ProcessInfo {
  double open_fds = 0;
  double max_fds = 0;
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double cpu_seconds = 0;
  double start_time_seconds = 0;  // unix seconds
};
// FALLBACK_START is used when /proc does not say (unix seconds).
ProcessInfo read_process_info(double fallback_start);

// The /metrics text (Prometheus 0.0.4).
std::string metrics_text(const ServerState& state, const ProcessInfo& process);

}  // namespace l4lb
