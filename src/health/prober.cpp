#include "l4lb/health/prober.hpp"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "l4lb/health/check_schedule.hpp"
#include "l4lb/health/http_probe.hpp"
#include "l4lb/base/clock.hpp"
#include "l4lb/base/duration.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/dataplane/proxy_header.hpp"
#include "l4lb/balance/service.hpp"

namespace l4lb {


// One backend's checks: a period timer, and while a check runs, its socket,
// watcher and deadline.
class Prober::Check {
 public:
  Check(struct ev_loop* loop, Log& log, std::shared_ptr<Service> service,
        std::shared_ptr<Backend> backend, CheckSchedule schedule, double first_delay, uint32_t seed)
      : loop_(loop), log_(log), service_(std::move(service)), backend_(std::move(backend)),
        schedule_(schedule), rng_(seed) {
    next_.bind<&Check::on_next>(loop_, this);
    deadline_.bind<&Check::on_deadline>(loop_, this);
    next_.start(first_delay);
  }
  ~Check() {
    io_.stop();
    if (fd_) set_reset_on_close(fd_.get());
  }

 private:
  const HealthCheckConfig& cfg() const { return service_->config.health_check; }

  void on_next() {
    std::uniform_real_distribution<double> jitter(-1.0, 1.0);
    next_.start(schedule_.next_delay(monotonic_seconds(), jitter(rng_)));
    // maint: no checks (the slot is kept); a check still running (timeout > interval) is
    // not doubled.
    if (!fd_ && backend_->admin_state() != AdminState::Maint) begin();
  }

  void begin() {
    const Address& addr = backend_->config.address;
    fd_.reset(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_) return finish(false, fmt::format("socket: {}", error_text(errno)));
    int off = 0;  // no quick ACK: the handshake's last ACK waits, so the reset comes first
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_QUICKACK, &off, sizeof off);
    received_.clear();
    sent_ = 0;
    connected_ = false;
    request_.clear();
    if (::connect(fd_.get(), addr.sa(), addr.length) != 0 && errno != EINPROGRESS)
      return finish(false, fmt::format("connect: {}", error_text(errno)));
    io_.bind<&Check::on_io>(loop_, this, fd_.get());
    io_.set(EV_WRITE);
    deadline_.start(to_seconds(cfg().timeout));
  }

  void on_io(int revents) {
    if (!connected_) {
      int err = socket_error(fd_.get());
      if (err != 0) return finish(false, fmt::format("connect: {}", error_text(err)));
      connected_ = true;
      if (cfg().type != HealthType::Http) return finish(true, {});
      // A backend that expects the PROXY header expects it on checks too, with the
      // check socket's own addresses.
      build_proxy_header(service_->config.proxy_protocol, local_address(fd_.get()),
                         backend_->config.address, request_);
      request_ += build_http_check(cfg().path,
                                   cfg().host.empty() ? backend_->config.address_text : cfg().host);
    }
    if (sent_ < request_.size()) {
      ssize_t n = ::send(fd_.get(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return finish(false, fmt::format("send: {}", error_text(errno)));
      if (n > 0) sent_ += static_cast<size_t>(n);
      io_.set(sent_ < request_.size() ? EV_WRITE : EV_READ);
      return;
    }
    char buf[2048];
    size_t room = std::min(sizeof buf, kMaxStatusLine - received_.size());
    ssize_t n = ::recv(fd_.get(), buf, room, 0);
    if (n < 0) {
      if (errno == EAGAIN) return;
      return finish(false, fmt::format("recv: {}", error_text(errno)));
    }
    if (n == 0) return finish(false, "closed before a status line");
    received_.append(buf, static_cast<size_t>(n));
    StatusVerdict v = check_status_line(received_, cfg().expect_status_min, cfg().expect_status_max);
    if (v.kind != StatusVerdict::NeedMore) finish(v.kind == StatusVerdict::Pass, v.reason);
  }

  void on_deadline() {
    finish(false, fmt::format("timeout after {} ({})", format_duration(cfg().timeout),
                              !connected_ ? "connecting" : "waiting for the status line"));
  }

  void finish(bool ok, const std::string& reason) {
    io_.stop();
    deadline_.stop();
    if (fd_) set_reset_on_close(fd_.get());  // no TIME_WAIT, no half-open connection left
    fd_.reset();
    service_->report_health(*backend_, ok, reason, log_);
  }

  struct ev_loop* loop_;
  Log& log_;
  std::shared_ptr<Service> service_;
  std::shared_ptr<Backend> backend_;
  CheckSchedule schedule_;
  std::minstd_rand rng_;
  UniqueFd fd_;
  std::string request_;
  size_t sent_ = 0;
  std::string received_;
  bool connected_ = false;
  IoWatcher io_;
  TimerWatcher next_;
  TimerWatcher deadline_;
};

Prober::Prober(struct ev_loop* loop, Log& log, std::shared_ptr<Service> service, bool resume)
    : service_(service.get()) {
  if (service->config.health_check.type == HealthType::None) return;
  const auto& backends = service->pool.backends();
  double interval = to_seconds(service->config.health_check.interval);
  double now = monotonic_seconds();
  size_t n = backends.size();
  for (size_t i = 0; i < n; ++i) {
    const auto& b = backends[i];
    // Backends not checked yet are checked at once; known ones (kept by a reload) wait
    // for their slot. Either way each then keeps its slot of the interval.
    bool at_once = b->health == HealthState::Unknown;
    CheckSchedule schedule(now, interval, i, n);
    double first = schedule.first_delay(at_once);
    // Handed over by an upgrade: the next check comes when the old process would have run
    // it (an interval after its last one), not at once.
    if (resume && !at_once && b->health_record.last_check > 0)
      first = std::clamp(b->health_record.last_check + interval - unix_now(), 0.0, interval);
    checks_.push_back(std::make_unique<Check>(loop, log, service, b, schedule, first,
                                              static_cast<uint32_t>(i * 2654435761u + 1)));
  }
}

Prober::~Prober() = default;

}  // namespace l4lb
