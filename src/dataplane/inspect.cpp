#include "l4lb/dataplane/inspect.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string_view>

#include "l4lb/dataplane/client_hello.hpp"
#include "l4lb/dataplane/proxy_header.hpp"
#include "l4lb/dataplane/worker.hpp"

namespace l4lb {

std::string_view to_string(Unrouted r) {
  static constexpr std::string_view names[kUnroutedReasons] = {
      "no_match", "not_tls", "timeout", "too_large", "bad_proxy", "untrusted_proxy"};
  return names[static_cast<size_t>(r)];
}

Inspector::Inspector(Worker& worker, std::shared_ptr<const Route> route, UniqueFd client,
                     const Address& peer, Seat global, uint64_t accept_us)
    : worker_(worker),
      route_(std::move(route)),
      client_(std::move(client)),
      peer_(peer),
      global_(std::move(global)),
      accept_us_(accept_us),
      phase_(route_->proxy_from ? Phase::Proxy : Phase::Hello) {
  io_.bind<&Inspector::on_io>(worker_.loop(), this, client_.get());
  timer_.bind<&Inspector::on_timer>(worker_.loop(), this);
  rest_.bind<&Inspector::on_rest>(worker_.loop(), this);
}

void Inspector::on_rest() {
  if (!done()) io_.set(EV_READ);
}

namespace {
// The peer sent its FIN (bytes may still wait unread): TCP says so, where a peek cannot.
bool peer_finished(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;
  return info.tcpi_state != TCP_ESTABLISHED && info.tcpi_state != TCP_SYN_RECV;
}
constexpr double kRest = 0.01;  // seconds without reads after a wake-up that brought nothing
}  // namespace

// A client usually sends its hello (or PROXY header) with or right after its handshake's
// last ACK, so it is in the socket by the time l4lb accepts: look at once, and watch
// the socket only when it is not (no epoll change and no loop turn for the common case).
void Inspector::start() {
  step();
  if (done()) return;
  timer_.start(to_seconds(route_->inspect_timeout));
  io_.set(EV_READ);  // a first look never rests (it cannot see the same bytes twice)
}

void Inspector::abort(AccessEnd why) {
  if (phase_ != Phase::Done && route_->access_log) worker_.log_client(origin(), {}, peer_, why);
  phase_ = Phase::Done;
  io_.stop();
  timer_.stop();
  rest_.stop();
  client_.reset();
}

void Inspector::on_callback_error() {
  if (!done()) abort(AccessEnd::InternalError);
  reap_if_done();
}

void Inspector::on_io(int) {
  step();
  reap_if_done();
}

void Inspector::on_timer() {
  if (phase_ == Phase::Proxy)
    unrouted(Unrouted::Timeout);  // no valid PROXY header in time
  else
    fallback(Unrouted::Timeout);  // no complete ClientHello in time: as if it sent nothing
  reap_if_done();
}

void Inspector::wait_for(size_t bytes) {
  int lowat = static_cast<int>(bytes);
  if (::setsockopt(client_.get(), SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0)
    lowat_set_ = true;
}

void Inspector::step() {
  std::span<uint8_t> buf = worker_.peek_buffer();
  while (phase_ != Phase::Done) {
    ssize_t n = ::recv(client_.get(), buf.data(), buf.size(), MSG_PEEK);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      return abort(AccessEnd::ClientReset);  // nothing to route
    }
    size_t got = static_cast<size_t>(n);
    // Woken with nothing new: the client half-closed, or the kernel woke us below the
    // low-water mark (it does when the socket's memory is tight: many tiny segments). Only
    // TCP tells the two apart; in the second case reads rest a moment (no busy loop: the
    // socket stays readable while that lasts) and the hello goes on arriving.
    bool eof = got == 0;
    if (got != 0 && got == peeked_) {
      if (!peer_finished(client_.get())) {
        io_.set(0);
        rest_.start(kRest);
        return;
      }
      eof = true;
    }
    peeked_ = got;
    if (phase_ == Phase::Proxy) {
      ProxyHeader h;
      std::string_view in(reinterpret_cast<const char*>(buf.data()), got);
      ProxyParse p = parse_proxy_header(in, h);
      if (p == ProxyParse::Invalid || (p == ProxyParse::Incomplete && eof))
        return unrouted(Unrouted::BadProxy);
      if (p == ProxyParse::Incomplete) return wait_for(got + 1);
      // The header is not passed on: read it for good (it is in the socket already).
      if (::recv(client_.get(), buf.data(), h.length, 0) != static_cast<ssize_t>(h.length))
        return abort(AccessEnd::ClientReset);
      if (!h.local_command && (h.protocol == "TCP4" || h.protocol == "TCP6")) {
        peer_ = h.source;
        local_ = h.destination;
      }
      peeked_ = 0;
      if (!route_->read_hello) return route_to(route_->fallback);
      phase_ = Phase::Hello;
      continue;
    }
    if (got == 0) return fallback(Unrouted::NotTls);  // closed before sending anything
    HelloResult r = parse_client_hello(std::span<const uint8_t>(buf.data(), got));
    switch (r.status) {
      case HelloStatus::Done: {
        if (route_->access_log) sni_.assign(r.server_name);
        const std::shared_ptr<Service>& svc = route_->for_name(r.server_name);
        return svc ? route_to(svc) : unrouted(Unrouted::NoMatch);
      }
      case HelloStatus::NeedMore:
        if (eof) return fallback(Unrouted::NotTls);
        return wait_for(got + r.need);
      case HelloStatus::TooLarge:
        return fallback(Unrouted::TooLarge);
      case HelloStatus::NotTls:
      case HelloStatus::Malformed:
        return fallback(Unrouted::NotTls);
    }
  }
}

void Inspector::fallback(Unrouted why) {
  if (route_->fallback)
    route_to(route_->fallback);
  else
    unrouted(why);
}

void Inspector::unrouted(Unrouted why) {
  route_->unrouted->slots[worker_.index()].by_reason[static_cast<size_t>(why)].add(1);
  if (route_->access_log) worker_.log_client(origin(), {}, peer_, AccessEnd::Unrouted, to_string(why));
  phase_ = Phase::Done;
  abort();
}

void Inspector::route_to(const std::shared_ptr<Service>& service) {
  io_.stop();
  timer_.stop();
  rest_.stop();
  phase_ = Phase::Done;
  if (lowat_set_) {  // the session reads byte by byte again
    int one = 1;
    ::setsockopt(client_.get(), SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  }
  worker_.admit(service, std::move(client_), peer_, std::move(global_), local_, origin());
}

void Inspector::reap_if_done() {
  if (done()) worker_.reap(this);  // deletes this: nothing may follow
}

}  // namespace l4lb
