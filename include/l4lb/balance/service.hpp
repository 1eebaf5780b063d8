// Service: one configured service at run time — its settings, its pool of backends
// and its counters. Shared by its listener and its sessions, so that a service
// removed by a reload lives on until its last session ends.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "l4lb/config/config.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/balance/pool.hpp"

namespace l4lb {

// What one worker counts for one service.
struct alignas(64) ServiceSlot {
  Counter accepted;  // every accepted client, refused ones included
  Counter refused;   // closed without a backend
  Counter opened;    // sessions started (active = opened - closed)
  Counter closed;
  Counter bytes_in;  // client -> backend
  Counter bytes_out; // backend -> client
};

// The sum of every worker's ServiceSlot.
struct ServiceCounters {
  uint64_t accepted = 0;
  uint64_t refused = 0;
  uint64_t active = 0;  // clients accepted and not yet closed
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

struct Service {
  Service(ServiceConfig cfg, Pool p, size_t workers = 1)
      : config(std::move(cfg)), pool(std::move(p)), slots_(workers) {}
  ServiceConfig config;
  Pool pool;
  // Backends a reload removed while connections still held them: one that comes back by a
  // later reload is the same object again, so its live count (those connections) goes on.
  std::vector<std::weak_ptr<Backend>> retired;

  ServiceSlot& stats(size_t worker) { return slots_[worker]; }
  uint64_t active() const {
    uint64_t closed = slots_.sum(&ServiceSlot::closed);  // first: never more than opened after
    return slots_.sum(&ServiceSlot::opened) - closed;
  }
  ServiceCounters totals() const {
    return {slots_.sum(&ServiceSlot::accepted), slots_.sum(&ServiceSlot::refused), active(),
            slots_.sum(&ServiceSlot::bytes_in), slots_.sum(&ServiceSlot::bytes_out)};
  }

  // One health check result for B (active, or a failed real connect): runs the
  // rise/fall machine, records it, and on a state change logs it and refreshes
  // the pool. The only code that changes a backend's health.
  void report_health(Backend& b, bool ok, std::string_view reason, Log& log);

 private:
  PerWorker<ServiceSlot> slots_;
};

}  // namespace l4lb
