// Backend: one backend of one service — its settings, health state, live count and
// counters. Plain data; only a Lease changes the live count.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

#include "l4lb/config.hpp"

namespace l4lb {

enum class HealthState { Unknown, Up, Down };

struct BackendCounters {
  uint64_t connections = 0;   // established
  uint64_t failures = 0;      // connect attempts that failed (refused, timed out, ...)
  uint64_t bytes_in = 0;      // client -> backend
  uint64_t bytes_out = 0;     // backend -> client
};

class Backend : public std::enable_shared_from_this<Backend> {
 public:
  explicit Backend(BackendConfig cfg) : config(std::move(cfg)) {}
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  BackendConfig config;  // weight, max_connections, backup, drain: replaced by a reload
  HealthState health = HealthState::Unknown;
  BackendCounters counters;

  uint32_t live() const { return live_.load(std::memory_order_relaxed); }
  // Up (or not yet checked), not draining, below max_connections.
  bool available() const {
    return health != HealthState::Down && !config.drain &&
           (config.max_connections == 0 || live() < config.max_connections);
  }

 private:
  friend class Lease;
  std::atomic<uint32_t> live_{0};  // shared by all workers
};

}  // namespace l4lb
