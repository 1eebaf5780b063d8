// Service: one configured service at run time — its settings, its pool of backends
// and its counters. Shared by its listener and its sessions, so that a service
// removed by a reload lives on until its last session ends.
#pragma once
#include <cstdint>
#include <string_view>

#include "l4lb/config.hpp"
#include "l4lb/log.hpp"
#include "l4lb/pool.hpp"

namespace l4lb {

struct ServiceCounters {
  uint64_t accepted = 0;  // every accepted client, refused ones included
  uint64_t refused = 0;   // closed without a backend
  uint64_t active = 0;    // clients accepted and not yet closed
  uint64_t bytes_in = 0;  // client -> backend
  uint64_t bytes_out = 0; // backend -> client
};

struct Service {
  Service(ServiceConfig cfg, Pool p) : config(std::move(cfg)), pool(std::move(p)) {}
  ServiceConfig config;
  Pool pool;
  ServiceCounters counters;

  // One health check result for B (active, or a failed real connect): runs the
  // rise/fall machine, records it, and on a state change logs it and refreshes
  // the pool. The only code that changes a backend's health.
  void report_health(Backend& b, bool ok, std::string_view reason, Log& log);
};

}  // namespace l4lb
