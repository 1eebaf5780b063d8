// Service: one configured service at run time — its settings, its pool of backends
// and its counters. Shared by its listener and its sessions, so that a service
// removed by a reload lives on until its last session ends.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/config/config.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/balance/pool.hpp"
#include "l4lb/balance/source_limits.hpp"
#include "l4lb/balance/wait_queue.hpp"

namespace l4lb {

// Why a client was rejected at admission (INTERFACE "Admission", "Queue").
enum class Rejected { Denied, SourceLimit, SourceRate, QueueFull, QueueTimeout };
constexpr size_t kRejectedReasons = 5;
std::string_view to_string(Rejected r);  // "denied", "source_limit", ...

// What one worker counts for one service.
struct alignas(64) ServiceSlot {
  Counter accepted;  // every accepted client, refused ones included
  Counter refused;   // closed without a backend
  Counter bytes_in;  // client -> backend
  Counter bytes_out; // backend -> client
  Counter errors;    // sessions ended by an internal error (an exception in a handler)
  Counter rejected[kRejectedReasons];  // by reason; not in refused
};

// The sum of every worker's ServiceSlot.
struct ServiceCounters {
  uint64_t accepted = 0;
  uint64_t refused = 0;
  uint64_t active = 0;  // clients accepted and not yet closed
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t errors = 0;
};

// A reload's plan for one service's backends: each backend of the new file matched by
// address with the object that keeps its state (the service's own, one an earlier reload
// retired, or a new one). Made off the data path; applied in the swap.
struct BackendPlan {
  struct Item {
    std::shared_ptr<Backend> backend;
    BackendConfig config;
    bool measured = false;  // kept, and its health was measured by checks: keep it
    bool added = false;     // not in the running service: slow start may run for it
  };
  std::vector<Item> items;  // in file order
  size_t kept = 0, added = 0, removed = 0;
};

struct Service {
  Service(ServiceConfig cfg, Pool p, size_t workers = 1)
      : config(std::move(cfg)), pool(std::move(p)), slots_(workers) {}
  ServiceConfig config;
  Pool pool;
  // Admission (INTERFACE "Admission"): allow/deny and per-source limits, read by the
  // workers at accept; replaced (access) or reconfigured (sources) in a reload's swap.
  AccessList access;
  SourceLimits sources{SourceLimitsConfig{}};
  WaitQueue queue;  // clients waiting for a backend (queue.size > 0)
  uint64_t rejected(Rejected why) const {
    uint64_t n = 0;
    for (size_t w = 0; w < slots_.size(); ++w) n += slots_.at(w).rejected[static_cast<size_t>(why)].get();
    return n;
  }
  // Applies the file's admission settings (a new service, or a reload's swap).
  void configure_admission();

  // Plan: matches SC's backends with PREVIOUS's (null for a new service). Reads only.
  static BackendPlan plan_backends(const Service* previous, const ServiceConfig& sc, size_t workers);
  // Swap, for a service that stays: takes SC and PLAN in place (rotation positions and the
  // hash table's history are kept). Returns the consistent_hash moved fraction (else 0).
  double reconfigure(ServiceConfig sc, BackendPlan plan);
  // Swap, for a new service.
  static std::shared_ptr<Service> create(ServiceConfig sc, BackendPlan plan, size_t workers);

  ServiceSlot& slot(size_t worker) { return slots_[worker]; }
  // Clients accepted and not yet closed: one shared count, changed only by the Seat each
  // client holds (balance/admission.hpp), so it is exact whenever it is read.
  uint64_t active() const { return active_.load(std::memory_order_relaxed); }
  std::atomic<uint64_t>& active_count() { return active_; }
  ServiceCounters totals() const {
    return {slots_.sum(&ServiceSlot::accepted), slots_.sum(&ServiceSlot::refused), active(),
            slots_.sum(&ServiceSlot::bytes_in), slots_.sum(&ServiceSlot::bytes_out),
            slots_.sum(&ServiceSlot::errors)};
  }

  // An admin override the file took back (a reload changed that same property).
  struct DroppedOverride {
    std::string backend;  // as /stats shows it
    std::string_view what;  // "state" or "weight"
  };
  // The overrides the last reconfigure() dropped (read and cleared by the caller).
  std::vector<DroppedOverride> dropped_overrides;

  // What is in force for B (admin state, weight, ramp) from the file, its overrides and
  // slow start, at monotonic time NOW: the one place it is derived (Backend "In force").
  // A change from drain/maint to ready starts slow start. Call refresh() after.
  void derive(Backend& b, double now);
  // Derives every backend (ramps advanced or ended) and rebuilds the pool where that
  // changed what the algorithms select by. True while slow start runs for any backend.
  bool refresh(double now);
  // Starts slow start for B (available again, or added) where it applies: slow_start set,
  // not a hash algorithm, and another backend of the service can take connections.
  void begin_slow_start(Backend& b, double now);

  // One health check result for B (active, or a failed real connect): runs the
  // rise/fall machine, records it, and on a state change logs it and refreshes
  // the pool. The only code that changes a backend's health.
  void report_health(Backend& b, bool ok, std::string_view reason, Log& log);

 private:
  // Takes each planned backend's config and decides its health; returns the backends.
  // Overrides the file took back are added to DROPPED.
  static std::vector<std::shared_ptr<Backend>> adopt(const ServiceConfig& sc, BackendPlan& plan,
                                                     std::vector<DroppedOverride>& dropped);
  std::shared_ptr<Backend> find_backend(const Address& addr) const;
  std::shared_ptr<Backend> find_retired(const Address& addr) const;
  // After a reload to BACKENDS: remember the removed ones still in use, forget the rest
  // (and the ones that came back).
  void retire_removed(const std::vector<std::shared_ptr<Backend>>& backends);

  // Backends a reload removed while connections still held them: one that comes back by a
  // later reload is the same object again, so its live count (those connections) goes on.
  std::vector<std::weak_ptr<Backend>> retired_;
  PerWorker<ServiceSlot> slots_;
  std::atomic<uint64_t> active_{0};
};

}  // namespace l4lb
