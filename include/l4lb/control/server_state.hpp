// ServerState: what the admin port reads about the running process. Owned and kept
// current by the Server (services swapped on reload, counts bumped as they happen).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/route.hpp"
#include "l4lb/log/access_log.hpp"
#include "l4lb/discovery/discovery.hpp"

namespace l4lb {

struct ServerState {
  double start_time = 0;        // unix seconds
  uint64_t reloads_ok = 0;      // successful SIGHUP reloads
  uint64_t reloads_failed = 0;  // rejected ones (running config kept)
  bool last_reload_ok = true;
  bool draining = false;        // after SIGTERM
  uint64_t generation = 0;      // 1 at start, +1 per successful reload
  std::vector<std::shared_ptr<Service>> services;  // in config order
  std::vector<std::shared_ptr<const Route>> routes;  // one per listen address, in config order
  std::shared_ptr<AccessLog> access_log;     // the access log in use (null: off)
  uint64_t access_log_dropped_before = 0;   // records dropped by access logs replaced since start
  uint64_t access_log_dropped() const {
    return access_log_dropped_before + (access_log ? access_log->dropped() : 0);
  }
  dns::LookupTable dns_lookups;  // l4lb_dns_lookups_total, kept by discovery
};

}  // namespace l4lb
