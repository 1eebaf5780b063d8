#include "l4lb/dataplane/listener.hpp"

#include <cstring>

#include "l4lb/base/net.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/worker.hpp"

namespace l4lb {

namespace {
constexpr int kAcceptBatch = 64;        // accepts per readable event: fair to other work
constexpr double kEmfilePause = 0.1;    // seconds without accepting when out of fds
}  // namespace

Listener::Listener(Worker& worker, std::shared_ptr<Service> service, UniqueFd fd)
    : worker_(worker), service_(std::move(service)) {
  acceptor_.start<&Listener::on_client, &Listener::on_shortage>(worker_.loop(), this, std::move(fd),
                                                                kAcceptBatch, kEmfilePause);
}

void Listener::accept_pending() {
  while (acceptor_.accept_batch()) {
  }
}

bool Listener::on_client(UniqueFd client, const Address& peer) {
  Service& svc = *service_;
  ServiceSlot& counts = svc.slot(worker_.index());
  counts.accepted.add(1);
  // The limits are reserved in the step that checks them (no number of workers overshoots).
  Admission admission = Admission::take(*worker_.open_sessions, worker_.max_sessions,
                                        svc.active_count(), svc.config.max_connections);
  if (!admission || !svc.pool.any_available()) {
    counts.refused.add(1);
    return true;  // the client socket closes here (and the places are given back)
  }
  worker_.start_session(service_, std::move(client), peer, std::move(admission));
  return true;
}

// Out of fds or memory: turn one client away with the spare fd (the acceptor then pauses).
void Listener::on_shortage(int err) {
  if (worker_.shed_one(acceptor_.fd())) {
    ServiceSlot& counts = service_->slot(worker_.index());
    counts.accepted.add(1);
    counts.refused.add(1);
  }
  if (worker_.warn_resources_now())
    worker_.log().warn("accept paused", {{"service", service_->config.name},
                                         {"reason", error_text(err)}});
}

}  // namespace l4lb
