#include "l4lb/dataplane/session.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "l4lb/base/clock.hpp"
#include "l4lb/base/duration.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/dataplane/proxy_header.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/splice.hpp"
#include "l4lb/dataplane/worker.hpp"

namespace l4lb {

Session::Session(Worker& worker, std::shared_ptr<Service> service, UniqueFd client,
                 const Address& peer, Admission admission, std::optional<Address> local,
                 std::unique_ptr<AccessInfo> access, bool client_bytes_waiting)
    : worker_(worker),
      service_(std::move(service)),
      admission_(std::move(admission)),
      peer_(peer),
      local_(local),
      client_(std::move(client)),
      client_bytes_waiting_(client_bytes_waiting),
      access_(std::move(access)) {
  // TCP_NODELAY and SO_KEEPALIVE came with accept() from the listening socket.
  client_io_.bind<&Session::on_client_io>(worker_.loop(), this, client_.get());
  timer_.bind<&Session::on_timer>(worker_.loop(), this);
}

Session::~Session() {
  client_io_.stop();
  backend_io_.stop();
  timer_.stop();
  if (ticket_) {
    service_->queue.remove(ticket_);
    ticket_->owner = nullptr;  // a wake already posted finds nobody
  }
  // A backend slot frees: the client that waits longest may take it.
  if (lease_ && service_->queue.size() > 0) {
    lease_.end();
    service_->queue.kick();
  }
  // A pipe or buffer still holding bytes is freed, never lent again.
  for (Flow* f : {&up_, &down_}) {
    if (f->pipe && f->queued == 0) worker_.pipes().release(std::move(f->pipe));
    if (f->held && f->held.waiting() == 0) worker_.buffers().release(std::move(f->held));
  }
  // client_ and lease_ (the Lease: socket close, then live count -1) close here, then
  // admission_ gives this client's places under the connection limits back.
}

void Session::start() { connect_next(); }

void Session::abort(AccessEnd why) {
  abort_end_ = why;
  if (phase_ != Phase::Done) finish(Ending::Aborted);
}

void Session::on_callback_error() {
  service_->slot(worker_.index()).errors.add(1);
  if (worker_.warn_resources_now())
    worker_.log().warn("connection error", {{"service", service_->config.name},
                                            {"client", peer_.to_string()},
                                            {"reason", "internal error (exception), connection reset"}});
  if (phase_ != Phase::Done) finish(Ending::Error, ENOMEM);
  reap_if_done();
}

void Session::connect_next() {
  const ServiceConfig& cfg = service_->config;
  const bool queues = cfg.queue.size > 0 && tried_.empty();
  // First come, first served: while others wait, a new client waits behind them.
  if (queues && !dequeued_ && service_->queue.size() > 0) return enqueue(false);
  for (;;) {
    PickContext ctx{&peer_};
    Lease lease = service_->pool.acquire(ctx, tried_);
    if (!lease) {
      if (queues) return enqueue(dequeued_);  // woken for nothing: back to the head
      return finish(Ending::NoBackend);
    }
    if (dequeued_) {  // served from the queue: if there is more room, the next one too
      dequeued_ = false;
      if (service_->queue.size() > 0 && service_->pool.any_available()) service_->queue.kick();
    }
    bool in_progress = false;
    connect_start_ = ev_time();
    if (access_) {
      access_->backend = lease.backend().config.address_text;
      access_->attempt_us = monotonic_usec();
      access_->connect_us = 0;
      ++access_->attempts;
    }
    UniqueFd fd = connect_tcp(lease.backend().config.address, in_progress);
    if (!fd) {
      int err = errno;
      lease_ = std::move(lease);
      if (connect_failed(err)) continue;
      return;
    }
    lease.attach(std::move(fd));
    lease_ = std::move(lease);
    backend_io_.bind<&Session::on_backend_io>(worker_.loop(), this, lease_.fd());
    if (!in_progress) return established();
    backend_io_.set(EV_WRITE);
    timer_.start(to_seconds(cfg.connect_timeout));
    return;
  }
}

bool Session::connect_failed(int error) {
  Backend& b = lease_.backend();
  timer_.stop();
  backend_io_.stop();
  if (access_) access_->connect_us = monotonic_usec() - access_->attempt_us;
  if (resource_shortage(error)) {  // this host is out of something, not the backend failing
    if (worker_.warn_resources_now())
      worker_.log().warn("connect failed", {{"service", service_->config.name},
                                          {"backend", b.config.address_text},
                                          {"reason", error_text(error)}});
    lease_.end();
    finish(Ending::NoBackend);
    return false;
  }
  b.slot(worker_.index()).failures.add(1);
  std::string reason = fmt::format("connect: {}", error_text(error));
  if (worker_.log().enabled(LogLevel::Debug))
    worker_.log().debug("connect failed", {{"service", service_->config.name},
                                           {"backend", b.config.address_text},
                                           {"reason", reason}});
  // Passive health: where active checks are on, a failed real connect counts as a failed check.
  // Health lives on the control thread.
  if (service_->config.health_check.type != HealthType::None) {
    Log& log = worker_.log();
    worker_.on_control([svc = service_, backend = b.shared_from_this(), reason, &log] {
      svc->report_health(*backend, false, reason, log);
    });
  }
  tried_.push_back(&b);
  lease_.end();
  if (tried_.size() > static_cast<size_t>(service_->config.retries)) {
    finish(Ending::NoBackend);
    return false;
  }
  return true;
}

void Session::established() {
  phase_ = Phase::Established;
  timer_.stop();
  Backend& b = lease_.backend();
  BackendSlot& counts = b.slot(worker_.index());
  counts.connections.add(1);
  counts.observe_connect(ev_time() - connect_start_);
  if (access_) access_->connect_us = monotonic_usec() - access_->attempt_us;
  last_active_ = ev_now(worker_.loop());
  if (service_->config.idle_timeout.count() > 0)
    timer_.start(to_seconds(service_->config.idle_timeout));
  if (service_->config.proxy_protocol != ProxyProtocol::Off && !send_proxy_header()) return;
  watch();
  // Bytes known to wait (the hello the route came from) go at once, not a loop turn later.
  if (client_bytes_waiting_) pump_flows(true, false);
}

// ------------------------------------------------------------------ the queue

void Session::enqueue(bool front) {
  const QueueConfig& q = service_->config.queue;
  if (!ticket_) {
    ticket_ = std::make_shared<Ticket>();
    ticket_->owner = this;
    Worker* worker = &worker_;
    // Runs on whichever thread frees room: it only posts to this session's worker.
    ticket_->wake = [worker, weak = std::weak_ptr<Ticket>(ticket_)] {
      if (std::shared_ptr<Ticket> t = weak.lock())
        worker->post([t] {
          if (t->owner) t->owner->on_dequeued();
        });
    };
  }
  if (!service_->queue.push(ticket_, q.size, front)) return reject(Rejected::QueueFull);
  phase_ = Phase::Queued;
  const double now = ev_now(worker_.loop());
  if (queue_deadline_ == 0) queue_deadline_ = now + to_seconds(q.timeout);
  timer_.start(std::max(0.0, queue_deadline_ - now));
  client_io_.set(client_spoke_ ? 0 : EV_READ);  // a hang-up leaves the queue at once
  // Room may have freed between the pick that failed and the push: look again.
  if (service_->pool.any_available()) service_->queue.kick();
}

void Session::on_dequeued() {
  if (phase_ != Phase::Queued) return;
  phase_ = Phase::Connecting;
  dequeued_ = true;
  client_io_.set(0);
  timer_.stop();
  connect_next();
  reap_if_done();
}

// The client of a queued session is readable: a hang-up (leave the queue), or bytes it
// sends ahead (kept in the socket for the backend; no longer watched).
void Session::queued_client_event() {
  char byte;
  ssize_t n = ::recv(client_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) {
    client_spoke_ = true;
    client_io_.set(0);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n == 0) {
    first_fin_ = 0;
    finish(Ending::Closed);
  } else {
    reset_by_ = 0;
    finish(Ending::Reset, errno);
  }
}

void Session::reject(Rejected why) {
  service_->slot(worker_.index()).rejected[static_cast<size_t>(why)].add(1);
  reject_reason_ = to_string(why);
  finish(Ending::Rejected);
}

// The PROXY header goes first on every backend connection, before any client byte,
// even if the client never sends one. A fresh socket takes it whole; if not, the
// rest waits in an upstream copy buffer and is not counted as payload.
bool Session::send_proxy_header() {
  std::string header;
  if (!build_proxy_header(service_->config.proxy_protocol, peer_,
                          local_ ? *local_ : local_address(client_.get()), header)) {
    reset_by_ = 2;
    finish(Ending::Reset, EAFNOSUPPORT);
    return false;
  }
  ssize_t n = ::send(lease_.fd(), header.data(), header.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && errno != EAGAIN) {
    reset_by_ = 1;
    finish(Ending::Reset, errno);
    return false;
  }
  size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
  if (sent == header.size()) return true;
  up_.held = worker_.buffers().acquire();  // a header is far smaller than a buffer
  std::memcpy(up_.held.data.get(), header.data() + sent, header.size() - sent);
  up_.held.begin = 0;
  up_.held.end = up_.uncounted = header.size() - sent;
  return true;
}

// Only the flows an event concerns are pumped: a readable client feeds upstream, a
// writable client drains downstream (no read that can only say EAGAIN).
void Session::on_client_io(int revents) {
  if (phase_ == Phase::Queued)
    queued_client_event();
  else
    pump_flows(revents & EV_READ, revents & EV_WRITE);
  reap_if_done();
}

void Session::on_backend_io(int revents) {
  if (phase_ == Phase::Connecting) {
    int err = socket_error(lease_.fd());
    if (err == 0) {
      established();
    } else if (connect_failed(err)) {
      connect_next();
    }
  } else {
    pump_flows(revents & EV_WRITE, revents & EV_READ);
  }
  reap_if_done();
}

void Session::on_timer() {
  if (phase_ == Phase::Queued) {
    service_->queue.remove(ticket_);
    reject(Rejected::QueueTimeout);
  } else if (phase_ == Phase::Connecting) {
    if (connect_failed(ETIMEDOUT)) connect_next();
  } else {
    double idle = to_seconds(service_->config.idle_timeout);
    double quiet = ev_now(worker_.loop()) - last_active_;
    if (quiet >= idle)
      finish(Ending::Idle);
    else
      timer_.start(idle - quiet);
  }
  reap_if_done();
}

void Session::pump_flows(bool upstream, bool downstream) {
  if (upstream && !pump(up_, client_.get(), lease_.fd(), true)) return;
  if (downstream && !pump(down_, lease_.fd(), client_.get(), false)) return;
  pass_fin(up_, lease_.fd(), down_);
  pass_fin(down_, client_.get(), up_);
  if (up_.shut && down_.shut) return finish(Ending::Closed);
  watch();
}

// Moves what FROM has into TO until FROM is empty or TO is full. False on an error
// (the session is then finished with a reset).
bool Session::pump(Flow& f, int from, int to, bool upstream) {
  size_t moved = 0;
  bool drained = false;
  Step step = Step::Again;
  for (;;) {
    if (f.held.waiting() > 0 && (step = send_held(f, to, moved)) != Step::Again) break;
    if (f.queued > 0) {  // bytes already waiting go first
      IoResult r = splice_out(f.pipe.read_end.get(), to, f.queued);
      if (r.status == IoStatus::Error) {
        error_ = r.error;
        fault_ = Fault::Destination;
        step = Step::Failed;
        break;
      }
      f.queued -= r.bytes;
      moved += r.bytes;
      if (f.queued > 0) break;  // the destination is full: wait until it is writable
    }
    if (f.eof || drained) break;
    step = f.bulk ? splice_step(f, from, to) : copy_step(f, from, to, moved);
    if (step == Step::Failed || step == Step::Blocked) break;
    drained = step == Step::Drained;
  }
  size_t own = std::min(moved, f.uncounted);  // a PROXY header is not payload
  f.uncounted -= own;
  moved -= own;
  if (moved > 0) {
    last_active_ = ev_now(worker_.loop());
    Backend& b = lease_.backend();
    (upstream ? bytes_in_ : bytes_out_) += moved;
    if (upstream) {
      service_->slot(worker_.index()).bytes_in.add(moved);
      b.slot(worker_.index()).bytes_in.add(moved);
    } else {
      service_->slot(worker_.index()).bytes_out.add(moved);
      b.slot(worker_.index()).bytes_out.add(moved);
    }
  }
  if (step == Step::Failed) {
    // The source of an upstream flow is the client; of a downstream one, the backend.
    if (fault_ == Fault::Local)
      reset_by_ = 2;
    else
      reset_by_ = (fault_ == Fault::Source) == upstream ? 0 : 1;
    finish(Ending::Reset, error_);
    return false;
  }
  if (f.queued == 0 && f.pipe) worker_.pipes().release(std::move(f.pipe));
  return true;
}

// A FIN read from one side goes on to the other once the bytes before it did, as a
// half-close; the last one of the pair goes with close() instead (both sockets are
// read to EOF by then, so close sends a FIN, not a reset).
void Session::pass_fin(Flow& f, int to, const Flow& other) {
  if (!f.eof || f.waiting() > 0 || f.shut) return;
  if (!other.shut) ::shutdown(to, SHUT_WR);
  f.shut = true;
}

// recv + send through the worker's scratch buffer; what TO does not take stays in that
// buffer, which the flow keeps until TO is writable. A big read marks a bulk flow.
Session::Step Session::copy_step(Flow& f, int from, int to, size_t& moved) {
  Buffer& buf = worker_.scratch();
  ssize_t n = ::recv(from, buf.data.get(), Buffer::kSize, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::Drained;
    if (errno == EINTR) return Step::Again;
    error_ = errno;
    fault_ = Fault::Source;
    return Step::Failed;
  }
  if (n == 0) {
    f.eof = true;
    saw_eof(f);
    return Step::Drained;
  }
  size_t got = static_cast<size_t>(n);
  ssize_t m = ::send(to, buf.data.get(), got, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (m < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      error_ = errno;
      fault_ = Fault::Destination;
      return Step::Failed;
    }
    m = 0;
  }
  size_t sent = static_cast<size_t>(m);
  moved += sent;
  if (sent < got) {  // the rest waits where it is, until TO is writable
    f.held = worker_.take_scratch();
    f.held.begin = sent;
    f.held.end = got;
    return Step::Blocked;
  }
  if (got >= kBulkRead && splice_pays(f, to)) f.bulk = true;
  // A read that did not fill the buffer took all the socket had: no read that can
  // only say EAGAIN.
  return got == Buffer::kSize ? Step::Again : Step::Drained;
}

// Sends what waits in the flow's copy buffer; Again once it is all sent (the buffer
// goes back to the pool), Blocked while TO is full.
Session::Step Session::send_held(Flow& f, int to, size_t& moved) {
  ssize_t m = ::send(to, f.held.data.get() + f.held.begin, f.held.waiting(),
                     MSG_NOSIGNAL | MSG_DONTWAIT);
  if (m < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Step::Blocked;
    error_ = errno;
    fault_ = Fault::Destination;
    return Step::Failed;
  }
  f.held.begin += static_cast<size_t>(m);
  moved += static_cast<size_t>(m);
  if (f.held.waiting() > 0) return Step::Blocked;
  f.held.begin = f.held.end = 0;
  worker_.buffers().release(std::move(f.held));
  return Step::Again;
}

// Whether this bulk flow should splice (global.splice): splice saves the balancer
// copying each byte, but on this host the receiving end pays more for spliced page
// fragments than for copied data (bench/analysis.md). So with `auto`, a destination on
// this host gets copies while the worker has CPU to spare, and splice once it is busy.
bool Session::splice_pays(Flow& f, int to) {
  switch (worker_.splice) {
    case SpliceMode::Always: return true;
    case SpliceMode::Never: return false;
    case SpliceMode::Auto: break;
  }
  if (f.local < 0) f.local = peer_on_this_host(to) ? 1 : 0;  // once per flow, when it turns bulk
  return f.local == 0 || worker_.busy();
}

// socket -> pipe; the caller flushes the pipe. A short splice ends bulk mode, and so
// does a worker that has CPU to spare again, for a destination on this host.
Session::Step Session::splice_step(Flow& f, int from, int to) {
  if (!splice_pays(f, to)) {
    f.bulk = false;
    return Step::Again;
  }
  if (!f.pipe && !(f.pipe = worker_.pipes().acquire())) {
    error_ = errno;
    fault_ = Fault::Local;
    return Step::Failed;
  }
  size_t want = f.pipe.capacity;  // the pipe is empty here
  IoResult r = splice_in(from, f.pipe.write_end.get(), want);
  switch (r.status) {
    case IoStatus::Progress:
      f.queued = r.bytes;
      if (r.bytes < kBulkRead) f.bulk = false;
      return r.bytes < want ? Step::Drained : Step::Again;
    case IoStatus::Eof:
      f.eof = true;
      saw_eof(f);
      return Step::Drained;
    case IoStatus::WouldBlock:
      return Step::Drained;
    case IoStatus::Error:
      break;
  }
  error_ = r.error;
  fault_ = Fault::Source;
  return Step::Failed;
}

// What to wait for follows from the flows: read a source only while nothing of it
// waits, write a destination only while bytes wait for it.
void Session::watch() {
  client_io_.set((!up_.eof && up_.waiting() == 0 ? EV_READ : 0) | (down_.waiting() > 0 ? EV_WRITE : 0));
  backend_io_.set((!down_.eof && down_.waiting() == 0 ? EV_READ : 0) | (up_.waiting() > 0 ? EV_WRITE : 0));
}

void Session::finish(Ending ending, int error) {
  phase_ = Phase::Done;
  client_io_.stop();
  backend_io_.stop();
  timer_.stop();
  if (ending == Ending::NoBackend) service_->slot(worker_.index()).refused.add(1);
  if (ticket_) service_->queue.remove(ticket_);  // no longer waiting, whatever ended it
  if (ending == Ending::Reset || ending == Ending::Aborted || ending == Ending::Error ||
      ending == Ending::Rejected) {
    // A reset on one side resets the other.
    set_reset_on_close(client_.get());
    if (lease_) set_reset_on_close(lease_.fd());
  } else if (ending == Ending::Idle) {
    // An idle close is orderly (FIN) on both sides, even when a peer stopped reading and
    // bytes it will never take still wait in l4lb's sockets.
    fin_and_drop_input(client_.get());
    if (lease_) fin_and_drop_input(lease_.fd());
  }
  if (access_) log_access(ending);
  if (worker_.log().enabled(LogLevel::Debug)) {
    static constexpr const char* names[] = {"closed", "reset",   "idle",    "no backend",
                                            "aborted", "error", "rejected"};
    worker_.log().debug("connection end",
                        {{"service", service_->config.name},
                         {"client", peer_.to_string()},
                         {"backend", lease_ ? lease_.backend().config.address_text : "-"},
                         {"ending", names[static_cast<int>(ending)]},
                         {"reason", error ? error_text(error) : "-"}});
  }
}

AccessEnd Session::access_end(Ending ending) const {
  switch (ending) {
    case Ending::Closed: return first_fin_ == 1 ? AccessEnd::BackendClosed : AccessEnd::ClientClosed;
    case Ending::Reset:
      return reset_by_ == 0 ? AccessEnd::ClientReset
             : reset_by_ == 1 ? AccessEnd::BackendReset
                              : AccessEnd::InternalError;
    case Ending::Idle: return AccessEnd::IdleTimeout;
    case Ending::NoBackend:
      return access_ && access_->attempts > 0 ? AccessEnd::ConnectFailed : AccessEnd::NoBackend;
    case Ending::Aborted: return abort_end_;
    case Ending::Error: return AccessEnd::InternalError;
    case Ending::Rejected: return AccessEnd::Rejected;
  }
  return AccessEnd::InternalError;
}

// The record of this session, made from what it knows (no syscall but the clock).
void Session::log_access(Ending ending) {
  AccessLog* log = worker_.access_log;
  if (!log) return;
  AccessRecord r;
  r.end_time = unix_now();
  r.service = service_->config.name;
  r.client = peer_.to_string();
  r.listen = std::move(access_->listen);
  r.sni = std::move(access_->sni);
  r.backend = std::move(access_->backend);
  r.connect_us = access_->connect_us;
  r.duration_us = monotonic_usec() - access_->accept_us;
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.retries = access_->attempts > 1 ? access_->attempts - 1 : 0;
  r.end = access_end(ending);
  r.reason = reject_reason_;
  log->append(worker_.index(), r);
}

void Session::reap_if_done() {
  if (phase_ == Phase::Done) worker_.reap(this);  // deletes this: nothing may follow
}

}  // namespace l4lb
