#include "l4lb/session.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "l4lb/net.hpp"
#include "l4lb/service.hpp"
#include "l4lb/splice.hpp"
#include "l4lb/worker.hpp"

namespace l4lb {

namespace {
double seconds(Millis d) { return static_cast<double>(d.count()) / 1000.0; }

// Errors that say this host is out of something, not that the backend failed.
bool local_resource_error(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
}  // namespace

Session::Session(Worker& worker, std::shared_ptr<Service> service, UniqueFd client,
                 const Address& peer)
    : worker_(worker), service_(std::move(service)), peer_(peer), client_(std::move(client)) {
  ++service_->counters.active;
  set_proxy_options(client_.get());
  client_io_.bind<&Session::on_client_io>(worker_.loop(), this, client_.get());
  timer_.bind<&Session::on_timer>(worker_.loop(), this);
}

Session::~Session() {
  client_io_.stop();
  backend_io_.stop();
  timer_.stop();
  // A pipe still holding bytes is closed, never lent again.
  for (Flow* f : {&up_, &down_})
    if (f->pipe && f->queued == 0) worker_.pipes().release(std::move(f->pipe));
  --service_->counters.active;
  // client_ and backend_ (the Lease: socket close, then live count -1) close here.
}

void Session::start() { connect_next(); }

void Session::abort() {
  if (phase_ != Phase::Done) finish(Ending::Aborted);
}

void Session::connect_next() {
  const ServiceConfig& cfg = service_->config;
  for (;;) {
    PickContext ctx{&peer_};
    Lease lease = service_->pool.acquire(ctx, tried_);
    if (!lease) return finish(Ending::NoBackend);
    bool in_progress = false;
    UniqueFd fd = connect_tcp(lease.backend().config.address, in_progress);
    if (!fd) {
      int err = errno;
      backend_ = std::move(lease);
      if (connect_failed(err)) continue;
      return;
    }
    lease.attach(std::move(fd));
    backend_ = std::move(lease);
    backend_io_.bind<&Session::on_backend_io>(worker_.loop(), this, backend_.fd());
    if (!in_progress) return established();
    backend_io_.set(EV_WRITE);
    timer_.start(seconds(cfg.connect_timeout));
    return;
  }
}

bool Session::connect_failed(int error) {
  Backend& b = backend_.backend();
  timer_.stop();
  backend_io_.stop();
  if (local_resource_error(error)) {
    worker_.log().warn("connect failed", {{"service", service_->config.name},
                                          {"backend", b.config.address_text},
                                          {"reason", std::strerror(error)}});
    backend_.end();
    finish(Ending::NoBackend);
    return false;
  }
  ++b.counters.failures;
  std::string reason = fmt::format("connect: {}", std::strerror(error));
  if (worker_.log().enabled(LogLevel::Debug))
    worker_.log().debug("connect failed", {{"service", service_->config.name},
                                           {"backend", b.config.address_text},
                                           {"reason", reason}});
  // Passive health: where active checks are on, a failed real connect counts as a failed check.
  if (service_->config.health_check.type != HealthType::None)
    service_->report_health(b, false, reason, worker_.log());
  tried_.push_back(&b);
  backend_.end();
  if (tried_.size() > static_cast<size_t>(service_->config.retries)) {
    finish(Ending::NoBackend);
    return false;
  }
  return true;
}

void Session::established() {
  phase_ = Phase::Established;
  timer_.stop();
  ++backend_.backend().counters.connections;
  last_active_ = ev_now(worker_.loop());
  if (service_->config.idle_timeout.count() > 0) timer_.start(seconds(service_->config.idle_timeout));
  watch();
}

void Session::on_client_io(int) {
  pump_both();
  reap_if_done();
}

void Session::on_backend_io(int revents) {
  if (phase_ == Phase::Connecting) {
    int err = socket_error(backend_.fd());
    if (err == 0) {
      established();
    } else if (connect_failed(err)) {
      connect_next();
    }
  } else {
    pump_both();
  }
  reap_if_done();
}

void Session::on_timer() {
  if (phase_ == Phase::Connecting) {
    if (connect_failed(ETIMEDOUT)) connect_next();
  } else {
    double idle = seconds(service_->config.idle_timeout);
    double quiet = ev_now(worker_.loop()) - last_active_;
    if (quiet >= idle)
      finish(Ending::Idle);
    else
      timer_.start(idle - quiet);
  }
  reap_if_done();
}

void Session::pump_both() {
  if (!pump(up_, client_.get(), backend_.fd(), true)) return;
  if (!pump(down_, backend_.fd(), client_.get(), false)) return;
  if (up_.shut && down_.shut) return finish(Ending::Closed);
  watch();
}

// Moves what FROM has into TO until FROM is empty or TO is full. False on an error
// (the session is then finished with a reset).
bool Session::pump(Flow& f, int from, int to, bool upstream) {
  size_t moved = 0;
  for (;;) {
    bool source_empty = f.eof;
    if (!f.eof && (!f.pipe || f.queued < f.pipe.capacity)) {
      if (!f.pipe) {
        f.pipe = worker_.pipes().acquire();
        if (!f.pipe) {
          finish(Ending::Reset, errno);
          return false;
        }
      }
      size_t want = f.pipe.capacity - f.queued;
      IoResult r = splice_in(from, f.pipe.write_end.get(), want);
      switch (r.status) {
        case IoStatus::Progress:
          f.queued += r.bytes;
          source_empty = r.bytes < want;
          break;
        case IoStatus::Eof:
          f.eof = source_empty = true;
          break;
        case IoStatus::WouldBlock:
          source_empty = true;
          break;
        case IoStatus::Error:
          finish(Ending::Reset, r.error);
          return false;
      }
    }
    if (f.queued > 0) {
      IoResult r = splice_out(f.pipe.read_end.get(), to, f.queued);
      if (r.status == IoStatus::Error) {
        finish(Ending::Reset, r.error);
        return false;
      }
      f.queued -= r.bytes;
      moved += r.bytes;
      if (f.queued > 0) break;  // the destination is full: wait until it is writable
    }
    if (source_empty) break;
  }
  if (moved > 0) {
    last_active_ = ev_now(worker_.loop());
    Backend& b = backend_.backend();
    if (upstream) {
      service_->counters.bytes_in += moved;
      b.counters.bytes_in += moved;
    } else {
      service_->counters.bytes_out += moved;
      b.counters.bytes_out += moved;
    }
  }
  if (f.queued == 0 && f.pipe) worker_.pipes().release(std::move(f.pipe));
  if (f.eof && f.queued == 0 && !f.shut) {
    ::shutdown(to, SHUT_WR);
    f.shut = true;
  }
  return true;
}

// What to wait for follows from the flows: read a source only while its pipe is
// empty, write a destination only while bytes wait for it.
void Session::watch() {
  client_io_.set((!up_.eof && up_.queued == 0 ? EV_READ : 0) | (down_.queued > 0 ? EV_WRITE : 0));
  backend_io_.set((!down_.eof && down_.queued == 0 ? EV_READ : 0) | (up_.queued > 0 ? EV_WRITE : 0));
}

void Session::finish(Ending ending, int error) {
  phase_ = Phase::Done;
  client_io_.stop();
  backend_io_.stop();
  timer_.stop();
  if (ending == Ending::NoBackend) ++service_->counters.refused;
  if (ending == Ending::Reset || ending == Ending::Aborted) {
    // A reset on one side resets the other.
    set_reset_on_close(client_.get());
    if (backend_) set_reset_on_close(backend_.fd());
  }
  if (worker_.log().enabled(LogLevel::Debug)) {
    static constexpr const char* names[] = {"closed", "reset", "idle", "no backend", "aborted"};
    worker_.log().debug("connection end",
                        {{"service", service_->config.name},
                         {"client", peer_.to_string()},
                         {"backend", backend_ ? backend_.backend().config.address_text : "-"},
                         {"ending", names[static_cast<int>(ending)]},
                         {"reason", error ? std::strerror(error) : "-"}});
  }
}

void Session::reap_if_done() {
  if (phase_ == Phase::Done) worker_.reap(this);  // deletes this: nothing may follow
}

}  // namespace l4lb
