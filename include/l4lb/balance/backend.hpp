// Backend: one backend of one service — its settings, health state, live count and
// counters, shared by the main (control) thread and the workers:
//  - health is an atomic the main thread sets (health check results, reloads); workers
//    read it;
//  - the live count is an atomic only a Lease changes, from any worker;
//  - each worker writes only its own counter slot; readers sum the slots;
//  - load_observer is set by the pool's load-ordered selector and read by a Lease;
//  - config, health_streak and health_record change on the main thread only (config in a
//    reload's swap, while the workers are stopped);
//  - the admin overrides and the slow start clock change on the main thread only; what is
//    in force (admin state, weight, ramp) is derived from them and the file by
//    Service::derive() alone, into atomics any thread reads.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <memory>
#include <optional>

#include "l4lb/balance/admin_state.hpp"
#include "l4lb/config/config.hpp"
#include "l4lb/base/counters.hpp"

namespace l4lb {

enum class HealthState { Unknown, Up, Down };

// What the health checks last found about a backend (for logs, /stats and /metrics).
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
};

// What one worker counts for one backend.
struct alignas(64) BackendSlot {
  Counter connections;  // established
  Counter failures;     // connect attempts that failed (refused, timed out, ...)
  Counter bytes_in;     // client -> backend
  Counter bytes_out;    // backend -> client
  Counter connect_buckets[ConnectHistogram::kBuckets + 1];
  Counter connect_nanos;
  void observe_connect(double seconds) {
    size_t i = 0;
    while (i < ConnectHistogram::kBuckets && seconds > ConnectHistogram::kBounds[i]) ++i;
    connect_buckets[i].add(1);
    connect_nanos.add(static_cast<uint64_t>(seconds * 1e9));
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

// The sum of every worker's BackendSlot.
struct BackendCounters {
  uint64_t connections = 0;
  uint64_t failures = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

class Backend : public std::enable_shared_from_this<Backend> {
 public:
  explicit Backend(BackendConfig cfg, size_t workers = 1)
      : config(std::move(cfg)), slots_(workers) {}
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  BackendConfig config;  // weight, max_connections, backup, drain: replaced by a reload
  std::atomic<HealthState> health{HealthState::Unknown};  // set by the main thread, read by workers
  int health_streak = 0;  // consecutive check results of one kind: +successes / -failures
  HealthRecord health_record;

  // Data-path counts: each worker writes its own slot.
  BackendSlot& slot(size_t worker) { return slots_[worker]; }
  BackendCounters totals() const {
    return {slots_.sum(&BackendSlot::connections), slots_.sum(&BackendSlot::failures),
            slots_.sum(&BackendSlot::bytes_in), slots_.sum(&BackendSlot::bytes_out)};
  }
  ConnectHistogram connect_times() const {
    ConnectHistogram h;
    for (size_t w = 0; w < slots_.size(); ++w) {
      const BackendSlot& s = slots_.at(w);
      for (size_t i = 0; i <= ConnectHistogram::kBuckets; ++i) h.counts[i] += s.connect_buckets[i].get();
      h.sum += static_cast<double>(s.connect_nanos.get()) / 1e9;
    }
    for (uint64_t c : h.counts) h.count += c;
    return h;
  }

  uint32_t live() const { return live_.load(std::memory_order_relaxed); }
  // May take new connections at all: up (or not yet checked) and admin state ready.
  bool selectable() const {
    return health != HealthState::Down && admin_state() == AdminState::Ready;
  }
  // Selectable and below max_connections.
  bool available() const {
    return selectable() && (config.max_connections == 0 || live() < config.max_connections);
  }

  // Runtime control, main thread only: the admin port's overrides (also from the state
  // file or an upgrade), and when slow start began (monotonic seconds; < 0: none runs).
  std::optional<AdminState> override_state;
  std::optional<int> override_weight;
  double ramp_start = -1;

  // In force, as Service::derive() last set them (any thread reads):
  //  - admin_state: the override, else drain where the file says drain, else ready;
  //  - base_weight: the override, else the file's weight (what the hash algorithms use);
  //  - weight: base_weight with slow start applied, weight x t / slow_start rounded up,
  //    at least 1 (what /stats and /metrics show);
  //  - ramp: slow start's progress in steps of 1/kRampSteps, 1..kRampSteps (full);
  //  - share: base_weight x ramp, what the weighted algorithms select by (a finer grain
  //    than weight: a weight-1 backend ramps too). round_robin and least_connections
  //    select by ramp alone (equal for all when no slow start runs).
  static constexpr uint32_t kRampSteps = 20;
  AdminState admin_state() const { return admin_.load(std::memory_order_relaxed); }
  int base_weight() const { return base_weight_.load(std::memory_order_relaxed); }
  int weight() const { return weight_.load(std::memory_order_relaxed); }
  uint32_t ramp() const { return ramp_.load(std::memory_order_relaxed); }
  uint32_t share() const { return static_cast<uint32_t>(base_weight()) * ramp(); }
  // Sets what is in force (Service::derive() only).
  void set_in_force(AdminState state, int base_weight, int weight, uint32_t ramp) {
    admin_.store(state, std::memory_order_relaxed);
    base_weight_.store(base_weight, std::memory_order_relaxed);
    weight_.store(weight, std::memory_order_relaxed);
    ramp_.store(ramp, std::memory_order_relaxed);
  }

 private:
  friend class Lease;
  std::atomic<uint32_t> live_{0};  // shared by all workers
  PerWorker<BackendSlot> slots_;
  std::atomic<AdminState> admin_{config.drain ? AdminState::Drain : AdminState::Ready};
  std::atomic<int> base_weight_{config.weight};
  std::atomic<int> weight_{config.weight};
  std::atomic<uint32_t> ramp_{kRampSteps};

 public:
  // Set by the pool's load-ordered algorithm while this backend is one of its members;
  // load_slot is that algorithm's own bookkeeping (the backend's index in its member list).
  std::atomic<LoadObserver*> load_observer{nullptr};  // read by Lease on any worker's thread
  uint32_t load_slot = 0;
};

}  // namespace l4lb
