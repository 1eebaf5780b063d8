#include "l4lb/admin/admin.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "l4lb/admin/prom.hpp"
#include "l4lb/admin/stats.hpp"
#include "l4lb/base/clock.hpp"
#include "l4lb/base/net.hpp"

namespace l4lb {

namespace {
constexpr int kAcceptBatch = 16;            // accepts per readable event
constexpr double kEmfilePause = 0.1;        // seconds without accepting when out of fds
constexpr size_t kReadChunk = 4096;
constexpr size_t kMaxReadPerEvent = 16384;  // a request head is at most 8 KiB anyway
constexpr size_t kMaxLingerBytes = 256 * 1024;  // discarded after the answer, then reset

bool known_path(std::string_view p) { return p == "/health" || p == "/stats" || p == "/metrics"; }
}  // namespace

http::Response admin_response(const http::Request& req, const ServerState& state, double now) {
  if (!known_path(req.path)) return http::error_response(404, "no such path");
  if (req.method != "GET" && req.method != "HEAD") {
    http::Response r = http::error_response(405, "only GET and HEAD");
    r.allow_get_head = true;
    return r;
  }
  http::Response r;
  if (req.path == "/health") {
    HealthVerdict v = health_verdict(state);
    r.status = v.status;
    r.content_type = "application/json";
    r.body = dump_json(v.body);
  } else if (req.path == "/stats") {
    r.content_type = "application/json";
    r.body = dump_json(stats_json(state, now));
  } else {
    r.content_type = std::string(prom::kContentType);
    r.body = metrics_text(state, read_process_info(state.start_time));
  }
  return r;
}

// ------------------------------------------------------------------ one connection

class AdminServer::Conn : public ListLinks<Conn> {
 public:
  Conn(AdminServer& server, UniqueFd fd, std::string peer)
      : server_(server), fd_(std::move(fd)), peer_(std::move(peer)) {
    io_.bind<&Conn::on_io>(server_.loop_, this, fd_.get());
    timer_.bind<&Conn::on_timer>(server_.loop_, this);
    io_.set(EV_READ);
    timer_.start(server_.limits_.request_timeout);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool done() const { return phase_ == Phase::Done; }
  // Stops everything; the socket closes when the Conn is destroyed (reap).
  void finish() {
    io_.stop();
    timer_.stop();
    phase_ = Phase::Done;
  }

 private:
  enum class Phase { Reading, Writing, Lingering, Done };

  void on_io(int) {
    try {
      switch (phase_) {
        case Phase::Reading: read_request(); break;
        case Phase::Writing: write_out(); break;
        case Phase::Lingering: drain(); break;
        case Phase::Done: break;
      }
    } catch (...) {
      finish();
    }
    if (done()) server_.reap(this);  // deletes this: nothing may follow
  }

  void on_timer() {
    // Request head not complete in time, answer not taken, or no FIN after it: close.
    finish();
    server_.reap(this);  // deletes this: nothing may follow
  }

  void read_request() {
    char buf[kReadChunk];
    for (size_t total = 0; total < kMaxReadPerEvent;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        total += static_cast<size_t>(n);
        http::ParseStatus st = parser_.feed(std::string_view(buf, static_cast<size_t>(n)));
        if (st == http::ParseStatus::NeedMore) continue;
        if (st == http::ParseStatus::Done) {
          const http::Request& req = parser_.request();
          http::Response r;
          try {
            r = server_.answer(req, peer_);
          } catch (...) {
            r = http::error_response(500, "internal error");
          }
          return respond(r, req.method == "HEAD");
        }
        return respond(http::error_response(parser_.error_status(), parser_.error_reason()), false);
      }
      if (n == 0) return finish();  // closed before a whole request: nothing to answer
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return finish();
      return;
    }
  }

  void respond(const http::Response& r, bool head_only) {
    if (server_.log_.enabled(LogLevel::Debug)) {
      server_.log_.debug("admin request",
                         {{"method", parser_.status() == http::ParseStatus::Done
                                         ? parser_.request().method : std::string("-")},
                          {"path", parser_.status() == http::ParseStatus::Done
                                       ? parser_.request().path : std::string("-")},
                          {"status", std::to_string(r.status)}});
    }
    out_ = http::serialize(r, head_only);
    sent_ = 0;
    phase_ = Phase::Writing;
    io_.stop();
    timer_.start(server_.limits_.write_timeout);
    write_out();
  }

  void write_out() {
    while (sent_ < out_.size()) {
      ssize_t n = ::send(fd_.get(), out_.data() + sent_, out_.size() - sent_,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        io_.set(EV_WRITE);
        return;
      }
      return finish();
    }
    // All sent: FIN, then wait (briefly) for the client's, discarding what it still
    // sends, so that unread bytes do not turn our close into a reset that could
    // destroy the answer before the client read it.
    std::string().swap(out_);
    ::shutdown(fd_.get(), SHUT_WR);
    phase_ = Phase::Lingering;
    io_.set(EV_READ);
    timer_.start(server_.limits_.linger_timeout);
  }

  void drain() {
    char buf[kReadChunk];
    for (size_t total = 0; total < kMaxReadPerEvent;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        total += static_cast<size_t>(n);
        lingered_ += static_cast<size_t>(n);
        if (lingered_ > kMaxLingerBytes) return finish();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return finish();  // EOF or error
    }
  }

  AdminServer& server_;
  UniqueFd fd_;
  std::string peer_;  // "127.0.0.1:40312" or "unix:UID"
  IoWatcher io_;
  TimerWatcher timer_;
  Phase phase_ = Phase::Reading;
  http::RequestParser parser_;
  std::string out_;
  size_t sent_ = 0;
  size_t lingered_ = 0;
};

// ------------------------------------------------------------------ the server

AdminServer::AdminServer(struct ev_loop* loop, Log& log, UniqueFd listen_fd,
                         const ServerState& state, AdminControl* control, std::string unix_path,
                         AdminLimits limits)
    : loop_(loop), log_(log), state_(state), control_(control), unix_path_(std::move(unix_path)),
      limits_(limits) {
  struct stat st {};
  if (!unix_path_.empty() && ::stat(unix_path_.c_str(), &st) == 0) {
    unix_dev_ = st.st_dev;
    unix_ino_ = st.st_ino;
  }
  acceptor_.start<&AdminServer::on_client, &AdminServer::on_shortage>(
      loop_, this, std::move(listen_fd), kAcceptBatch, kEmfilePause);
}

AdminServer::~AdminServer() {
  acceptor_.stop();
  while (Conn* c = conns_.front()) {
    c->finish();
    reap(c);
  }
  // The socket file goes with the listener, unless something else is at the path now.
  struct stat st {};
  if (!keep_file_ && !unix_path_.empty() && ::stat(unix_path_.c_str(), &st) == 0 && st.st_dev == unix_dev_ &&
      st.st_ino == unix_ino_)
    ::unlink(unix_path_.c_str());
}

http::Response AdminServer::answer(const http::Request& req, const std::string& peer) {
  const bool is_unix = !unix_path_.empty();
  static const std::string kNone;
  const std::string& token = control_ ? control_->admin_token() : kNone;
  admin::Decision d = admin::decide(req, !token.empty(), token, is_unix);
  if (!d.action) return d.error;
  if (!admin::is_write(d.action->endpoint)) return admin_response(req, state_, unix_now());
  if (!control_) return admin::json_error(403, "write requests are not enabled");
  return control_->admin_write(*d.action, req, peer);
}

bool AdminServer::on_client(UniqueFd client, const Address& address) {
  if (conns_.size() >= limits_.max_connections) {
    // Full (slow or stuck clients, a slowloris): the connection accepted first gives way,
    // so a health check still gets its answer.
    if (Conn* oldest = conns_.back()) {
      ++evicted_;
      oldest->finish();
      reap(oldest);
    }
  }
  std::string peer = unix_path_.empty() ? address.to_string() : unix_peer(client.get());
  Conn* c = new (std::nothrow) Conn(*this, std::move(client), std::move(peer));
  if (!c) return false;  // out of memory: CLIENT closes here, and the batch ends
  conns_.push_front(c);
  return true;
}

void AdminServer::on_shortage(int err) {
  log_.warn("admin accept paused", {{"reason", error_text(err)}});
}

void AdminServer::reap(Conn* c) {
  conns_.erase(c);
  delete c;
}

}  // namespace l4lb
