// Backend: one backend of one service — its settings, health state, live count and
// counters. Plain data; only a Lease changes the live count.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <memory>

#include "l4lb/config.hpp"

namespace l4lb {

enum class HealthState { Unknown, Up, Down };

// What the prober last learned about a backend (for logs, /stats and /metrics).
struct HealthRecord {
  double last_check = 0;       // unix seconds of the last finished check; 0 = none yet
  std::string last_error;      // reason of the last failed check; empty after a success
  uint64_t checks_ok = 0;
  uint64_t checks_failed = 0;
  struct Transition {
    double at;                 // unix seconds
    HealthState from;
    HealthState to;
    std::string reason;
  };
  std::deque<Transition> history;  // the last 16 state changes, oldest first
};

// The connect durations of one backend, as a Prometheus histogram (seconds).
struct ConnectHistogram {
  static constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5, 5};
  static constexpr size_t kBuckets = sizeof kBounds / sizeof kBounds[0];
  uint64_t counts[kBuckets + 1] = {};  // per bucket (not cumulative); last = +Inf
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds) {
    size_t i = 0;
    while (i < kBuckets && seconds > kBounds[i]) ++i;
    ++counts[i];
    ++count;
    sum += seconds;
  }
};

class Backend;

// Told after every change of a backend's live count, by Lease (still the only writer),
// on the thread that changed it. Lets an algorithm that orders backends by load
// (least_connections) keep its index current without scanning. Reads only.
class LoadObserver {
 public:
  virtual void load_changed(Backend& b) = 0;

 protected:
  ~LoadObserver() = default;
};

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
  int health_streak = 0;  // consecutive check results of one kind: +successes / -failures
  BackendCounters counters;
  HealthRecord health_record;
  ConnectHistogram connect_time;

  uint32_t live() const { return live_.load(std::memory_order_relaxed); }
  // Up (or not yet checked), not draining, below max_connections.
  bool available() const {
    return health != HealthState::Down && !config.drain &&
           (config.max_connections == 0 || live() < config.max_connections);
  }

 private:
  friend class Lease;
  std::atomic<uint32_t> live_{0};  // shared by all workers

 public:
  // Set by the pool's load-ordered algorithm while this backend is one of its members;
  // load_slot is that algorithm's own bookkeeping (its index position).
  LoadObserver* load_observer = nullptr;
  uint32_t load_slot = 0;
};

}  // namespace l4lb
