// Prober: the active health checks of one service. One timer per backend: a new
// backend is checked at once, then every `interval` on its own slot, the slots spread
// evenly over the interval (CheckSchedule). A check is a
// non-blocking TCP connect (reset as soon as it completes) or an HTTP GET whose
// status line is judged. Results go to Service::report_health; nothing else.
#pragma once
#include <ev.h>

#include <memory>
#include <string>
#include <vector>

#include "l4lb/base/fd.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/base/watch.hpp"

namespace l4lb {

struct Service;
class Backend;

class Prober {
 public:
  // RESUME (after an upgrade): a backend with a known health and a last check is next
  // checked an interval after that check, not at its slot.
  Prober(struct ev_loop* loop, Log& log, std::shared_ptr<Service> service, bool resume = false);
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;
  ~Prober();
  const Service* service() const { return service_; }

 private:
  const Service* service_;
  class Check;
  std::vector<std::unique_ptr<Check>> checks_;
};

}  // namespace l4lb
