#include "l4lb/dataplane/listener.hpp"

#include <cstring>

#include "l4lb/base/net.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/inspect.hpp"
#include "l4lb/dataplane/worker.hpp"

namespace l4lb {

namespace {
constexpr int kAcceptBatch = 64;        // accepts per readable event: fair to other work
constexpr double kEmfilePause = 0.1;    // seconds without accepting when out of fds
}  // namespace

Listener::Listener(Worker& worker, std::shared_ptr<const Route> route, UniqueFd fd)
    : worker_(worker), route_(std::move(route)) {
  acceptor_.start<&Listener::on_client, &Listener::on_shortage>(worker_.loop(), this, std::move(fd),
                                                                kAcceptBatch, kEmfilePause);
}

void Listener::accept_pending() {
  while (acceptor_.accept_batch()) {
  }
}

bool Listener::on_client(UniqueFd client, const Address& peer) {
  const Route& r = *route_;
  // Limits are reserved in the step that checks them (no number of workers overshoots):
  // the global one here, the service's once the service is known.
  Seat global = Seat::take(*worker_.open_sessions, worker_.max_sessions);
  const ClientOrigin origin{worker_.accept_clock(), r.listen_text, {}};
  if (!r.inspects() || !global) {
    // Connect at accept; a refusal at a shared address is counted on its plain service.
    if (r.fallback)
      worker_.admit(r.fallback, std::move(client), peer, std::move(global), std::nullopt, origin);
    return true;
  }
  if (r.proxy_from && !r.proxy_from->contains(peer)) {
    r.unrouted->slots[worker_.index()].by_reason[static_cast<size_t>(Unrouted::UntrustedProxy)].add(1);
    if (r.access_log)
      worker_.log_client(origin, {}, peer, AccessEnd::Unrouted, to_string(Unrouted::UntrustedProxy));
    return true;  // closed at accept
  }
  worker_.inspect(route_, std::move(client), peer, std::move(global), origin.accept_us);
  return true;
}

// Out of fds or memory: turn one client away with the spare fd (the acceptor then pauses).
void Listener::on_shortage(int err) {
  const std::shared_ptr<Service>& svc = route_->fallback ? route_->fallback : route_->services.front();
  if (worker_.shed_one(acceptor_.fd())) {
    ServiceSlot& counts = svc->slot(worker_.index());
    counts.accepted.add(1);
    counts.refused.add(1);
  }
  if (worker_.warn_resources_now())
    worker_.log().warn("accept paused", {{"service", svc->config.name},
                                         {"listen", route_->listen_text},
                                         {"reason", error_text(err)}});
}

}  // namespace l4lb
