#include "l4lb/dataplane/worker.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "l4lb/dataplane/listener.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/dataplane/inspect.hpp"
#include "l4lb/dataplane/session.hpp"

namespace l4lb {

namespace {
UniqueFd open_spare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }
}  // namespace

Worker::Worker(struct ev_loop* loop, Log& log, size_t index, Mailbox* control)
    : loop_(loop), log_(log), index_(index), spare_fd_(open_spare()), control_(control), inbox_(loop) {
  trim_timer_.bind<&Worker::on_trim>(loop_, this);
  trim_timer_.start(1.0);
  window_start_ = ev_time();
  ev_set_userdata(loop_, this);
  ev_set_loop_release_cb(loop_, &Worker::poll_starts, &Worker::poll_ends);
}

// libev calls these right before and right after it waits for events.
void Worker::poll_starts(struct ev_loop* loop) noexcept {
  static_cast<Worker*>(ev_userdata(loop))->poll_start_ = ev_time();
}

void Worker::poll_ends(struct ev_loop* loop) noexcept {
  auto* w = static_cast<Worker*>(ev_userdata(loop));
  const double now = ev_time();
  w->window_idle_ += now - w->poll_start_;
  if (now - w->window_start_ >= 0.1) w->end_window(now);
}

// Time waiting in the poll alone would call a worker starved by a cgroup quota idle: it
// sleeps in its poll while throttled. The thread's run-queue wait (schedstat) shows that.
void Worker::end_window(double now) {
  const double window = now - window_start_;
  const double loop_busy = 1.0 - window_idle_ / window;
  double waited = 0;  // share of the window this thread was runnable but not running
  // Read only where it matters (splice: auto); opened each time, so no fd is held (and
  // out of fds, the window goes by the loop's share alone).
  if (UniqueFd stat = splice == SpliceMode::Auto
                          ? UniqueFd(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC))
                          : UniqueFd()) {
    char text[96];
    ssize_t n = ::read(stat.get(), text, sizeof text - 1);
    unsigned long long on_cpu = 0, delay = 0;
    if (n > 0) {
      text[n] = '\0';
      if (std::sscanf(text, "%llu %llu", &on_cpu, &delay) == 2) {
        if (run_delay_ns_ != 0 && delay >= run_delay_ns_)
          waited = static_cast<double>(delay - run_delay_ns_) / 1e9 / window;
        run_delay_ns_ = delay;
      }
    }
  }
  if (loop_busy > 0.7 || waited > 0.1)
    busy_ = true;
  else if (loop_busy < 0.5 && waited < 0.05)
    busy_ = false;
  window_start_ = now;
  window_idle_ = 0;
}

void Worker::on_control(std::function<void()> fn) {
  if (control_)
    control_->post(std::move(fn));
  else
    fn();
}

void Worker::on_trim() {
  pipes_.trim();
  buffers_.trim();
  trim_timer_.start(1.0);
}

Worker::~Worker() {
  ev_set_loop_release_cb(loop_, nullptr, nullptr);
  ev_set_userdata(loop_, nullptr);
  listeners.clear();
  on_empty = nullptr;
  close_all();
}

void Worker::admit(const std::shared_ptr<Service>& service, UniqueFd client, const Address& peer,
                   Seat global, std::optional<Address> local, const ClientOrigin& origin) {
  Service& svc = *service;
  ServiceSlot& counts = svc.slot(index_);
  counts.accepted.add(1);
  // Admission: allow/deny, then the client address's limits (reserved in the same step).
  auto reject = [&](Rejected why) {
    counts.rejected[static_cast<size_t>(why)].add(1);
    set_reset_on_close(client.get());
    if (access_log && svc.config.access_log)
      log_client(origin, svc.config.name, peer, AccessEnd::Rejected, to_string(why));
  };
  if (svc.access.check(peer) == AccessVerdict::Denied) return reject(Rejected::Denied);
  const PerSourceConfig& ps = svc.config.per_source;
  SourceVerdict source = ps.max_connections == 0 && ps.rate == 0
                             ? SourceVerdict{}
                             : svc.sources.admit(peer, static_cast<double>(monotonic_usec()) / 1e6);
  if (!source)
    return reject(source.reject == SourceReject::Limit ? Rejected::SourceLimit : Rejected::SourceRate);
  Seat seat = global ? Seat::take(svc.active_count(), svc.config.max_connections) : Seat{};
  // No backend: closed at once, unless the service queues (the session waits in its queue).
  if (!seat || (svc.config.queue.size == 0 && !svc.pool.any_available())) {
    counts.refused.add(1);
    if (access_log && svc.config.access_log)
      log_client(origin, svc.config.name, peer, AccessEnd::NoBackend);
    return;  // the client closes here, its places given back
  }
  start_session(service, std::move(client), peer,
                Admission{std::move(global), std::move(seat), std::move(source.seat)}, local, origin);
}

void Worker::log_client(const ClientOrigin& origin, const std::string& service,
                        const Address& client, AccessEnd end, std::string_view reason) {
  if (!access_log) return;
  AccessRecord r;
  r.end_time = unix_now();
  r.service = service;
  r.client = client.to_string();
  r.listen = origin.listen;
  r.sni = origin.sni;
  r.duration_us = origin.accept_us ? monotonic_usec() - origin.accept_us : 0;
  r.end = end;
  r.reason = reason;
  access_log->append(index_, r);
}

void Worker::start_session(std::shared_ptr<Service> service, UniqueFd client, const Address& peer,
                           Admission admission, std::optional<Address> local,
                           const ClientOrigin& origin) {
  std::unique_ptr<AccessInfo> access;
  if (access_log && service->config.access_log) {
    access = std::make_unique<AccessInfo>();
    access->accept_us = origin.accept_us ? origin.accept_us : monotonic_usec();
    access->listen = origin.listen;
    access->sni = origin.sni;
  }
  auto* s = new Session(*this, std::move(service), std::move(client), peer, std::move(admission),
                        local, std::move(access), origin.bytes_waiting);
  sessions_.push_front(s);
  s->start();
  if (s->done()) reap(s);
}

void Worker::inspect(std::shared_ptr<const Route> route, UniqueFd client, const Address& peer,
                     Seat global, uint64_t accept_us) {
  auto* i = new Inspector(*this, std::move(route), std::move(client), peer, std::move(global),
                          accept_us);
  inspectors_.push_front(i);
  i->start();
  if (i->done()) reap(i);
}

void Worker::reap(Session* s) {
  sessions_.erase(s);
  delete s;  // gives its places under the connection limits back
  check_empty();
}

void Worker::reap(Inspector* i) {
  inspectors_.erase(i);
  delete i;
  check_empty();
}

void Worker::check_empty() {
  if (sessions_.empty() && inspectors_.empty() && on_empty) on_empty();
}

void Worker::close_all(AccessEnd why) {
  while (Inspector* i = inspectors_.front()) {
    i->abort(why);
    reap(i);
  }
  while (Session* s = sessions_.front()) {
    s->abort(why);
    reap(s);
  }
}

size_t Worker::close_backend(const Backend* backend) {
  std::vector<Session*> doomed;
  for (Session* s = sessions_.front(); s; s = sessions_.next(s))
    if (s->backend() == backend && !s->done()) doomed.push_back(s);
  for (Session* s : doomed) {
    s->abort(AccessEnd::AdminClosed);
    reap(s);
  }
  return doomed.size();
}

bool Worker::warn_resources_now() {
  double now = ev_now(loop_);
  if (now - last_resource_warning_ < 1.0) return false;
  last_resource_warning_ = now;
  return true;
}

bool Worker::shed_one(int listen_fd) {
  if (!spare_fd_) return false;
  spare_fd_.reset();
  Address peer;
  UniqueFd client = accept_tcp(listen_fd, peer);
  bool shed = static_cast<bool>(client);
  client.reset();
  spare_fd_ = open_spare();
  return shed;
}

}  // namespace l4lb
