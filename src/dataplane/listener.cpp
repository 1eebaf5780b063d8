#include "l4lb/dataplane/listener.hpp"

#include <cerrno>
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
    : worker_(worker), service_(std::move(service)), fd_(std::move(fd)) {
  io_.bind<&Listener::on_readable>(worker_.loop(), this, fd_.get());
  pause_.bind<&Listener::on_resume>(worker_.loop(), this);
  io_.set(EV_READ);
}

void Listener::on_readable(int) { accept_batch(kAcceptBatch); }

void Listener::accept_pending() {
  while (accept_batch(kAcceptBatch)) {
  }
}

bool Listener::accept_batch(int max) {
  for (int i = 0; i < max; ++i) {
    Address peer;
    UniqueFd client = accept_tcp(fd_.get(), peer);
    if (!client) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return false;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of fds or memory: turn one client away with the spare fd, then pause.
        if (worker_.shed_one(fd_.get())) {
          ServiceSlot& counts = service_->stats(worker_.index());
          counts.accepted.add(1);
          counts.refused.add(1);
        }
        if (worker_.warn_resources_now())
          worker_.log().warn("accept paused", {{"service", service_->config.name},
                                               {"reason", error_text(err)}});
        io_.stop();
        pause_.start(kEmfilePause);
      }
      return false;
    }
    Service& svc = *service_;
    ServiceSlot& counts = svc.stats(worker_.index());
    counts.accepted.add(1);
    bool full = worker_.at_capacity() ||
                (svc.config.max_connections != 0 && svc.active() >= svc.config.max_connections);
    if (full || !svc.pool.any_available()) {
      counts.refused.add(1);
      continue;  // the client socket closes here
    }
    worker_.start_session(service_, std::move(client), peer);
  }
  return true;
}

void Listener::on_resume() { io_.set(EV_READ); }

}  // namespace l4lb
