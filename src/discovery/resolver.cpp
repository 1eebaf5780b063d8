#include "l4lb/discovery/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>

#include <cstring>

#include "l4lb/discovery/dns.hpp"

namespace l4lb::dns {

namespace {
constexpr int kClassIn = 1;
constexpr int kTypeA = 1, kTypeAaaa = 28, kTypeSrv = 33;

int code(Resolver::Type t) {
  return t == Resolver::Type::A ? kTypeA : t == Resolver::Type::AAAA ? kTypeAaaa : kTypeSrv;
}

Address from_v4(const in_addr& ip) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr = ip;
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
}
Address from_v6(const ares_in6_addr& ip) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  std::memcpy(&sin6.sin6_addr, &ip, sizeof sin6.sin6_addr);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
}

// The records of a successful answer.
void parse(Resolver::Type type, const unsigned char* abuf, int alen, Resolver::Answer& a) {
  AnswerInfo info;
  if (!answer_info(abuf, static_cast<size_t>(alen), code(type), info)) {
    a.ok = false;
    a.error = "malformed answer";
    return;
  }
  a.ttl = info.min_ttl;
  if (type == Resolver::Type::SRV) {
    ares_srv_reply* list = nullptr;
    int rc = ares_parse_srv_reply(abuf, alen, &list);
    if (rc != ARES_SUCCESS && rc != ARES_ENODATA) {
      a.ok = false;
      a.error = ares_strerror(rc);
      return;
    }
    size_t n = 0;
    for (ares_srv_reply* r = list; r; r = r->next) {
      if (++n > kMaxAddresses) {
        ++a.refused;
        continue;
      }
      if (std::strcmp(r->host, "") == 0 || std::strcmp(r->host, ".") == 0) continue;  // "no service"
      a.srv.push_back({r->host, r->port, r->weight});
    }
    if (list) ares_free_data(list);
    return;
  }
  static thread_local std::vector<ares_addrttl> v4(kMaxAddresses);
  static thread_local std::vector<ares_addr6ttl> v6(kMaxAddresses);
  int n = static_cast<int>(kMaxAddresses);
  int rc = type == Resolver::Type::A ? ares_parse_a_reply(abuf, alen, nullptr, v4.data(), &n)
                                     : ares_parse_aaaa_reply(abuf, alen, nullptr, v6.data(), &n);
  if (rc == ARES_ENODATA) return;
  if (rc != ARES_SUCCESS) {
    a.ok = false;
    a.error = ares_strerror(rc);
    return;
  }
  for (int i = 0; i < n; ++i)
    a.addresses.push_back(type == Resolver::Type::A ? from_v4(v4[i].ipaddr) : from_v6(v6[i].ip6addr));
  if (info.count > static_cast<size_t>(n)) a.refused = info.count - static_cast<size_t>(n);
}
}  // namespace

struct Resolver::Pending {
  Resolver* owner;
  Type type;
  Callback cb;
  std::string name;
};

Resolver::Resolver(struct ev_loop* loop, const DnsConfig& cfg) : loop_(loop) {
  timer_.bind<&Resolver::on_timer>(loop_, this);
  failer_.bind<&Resolver::on_timer>(loop_, this);
  ares_library_init(ARES_LIB_INIT_ALL);
  ares_options opts{};
  int mask = 0;
  opts.sock_state_cb = [](void* data, ares_socket_t fd, int r, int w) { sock_state(data, fd, r, w); };
  opts.sock_state_cb_data = this;
  mask |= ARES_OPT_SOCK_STATE_CB;
  opts.timeout = static_cast<int>(std::max<int64_t>(1, cfg.timeout.count()));
  mask |= ARES_OPT_TIMEOUTMS;
  opts.tries = 1;  // each server once per query, in order
  mask |= ARES_OPT_TRIES;
  mask |= ARES_OPT_NOROTATE;
  ares_channel ch = nullptr;
  int rc = ares_init_options(&ch, &opts, mask);
  if (rc != ARES_SUCCESS) {
    init_error_ = std::string("resolver: ") + ares_strerror(rc);
    return;
  }
  channel_ = ch;
  if (!cfg.servers.empty()) {
    std::string csv;
    for (const Address& a : cfg.server_addresses) csv += (csv.empty() ? "" : ",") + a.to_string();
    rc = ares_set_servers_ports_csv(channel_, csv.c_str());
    if (rc != ARES_SUCCESS) init_error_ = std::string("dns.servers: ") + ares_strerror(rc);
  }
}

Resolver::~Resolver() {
  destroying_ = true;
  timer_.stop();
  failer_.stop();
  if (channel_) ares_destroy(channel_);  // pending callbacks see ARES_EDESTRUCTION
  sockets_.clear();
  ares_library_cleanup();  // reference counted, as ares_library_init
}

void Resolver::query(const std::string& name, Type type, Callback cb) {
  auto p = std::make_unique<Pending>(Pending{this, type, std::move(cb), name});
  if (!channel_ || !init_error_.empty()) {
    failed_.push_back(std::move(p));
    failer_.start(0);
    return;
  }
  ares_query(channel_, name.c_str(), kClassIn, code(type), &Resolver::on_answer, p.release());
  arm_timer();
}

void Resolver::on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
  if (status == ARES_EDESTRUCTION || p->owner->destroying_) return;
  Answer a;
  if (status == ARES_SUCCESS) {
    a.ok = true;
    parse(p->type, abuf, alen, a);
  } else if (status == ARES_ENODATA) {
    a.ok = true;
  } else if (status == ARES_ENOTFOUND) {
    a.ok = true;
    a.error = "no such name";
  } else {
    a.error = ares_strerror(status);
  }
  try {
    p->cb(std::move(a));
  } catch (...) {
  }
}

void Resolver::sock_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<Resolver*>(data);
  if (self->destroying_) return;
  auto it = self->sockets_.find(fd);
  if (!readable && !writable) {
    if (it != self->sockets_.end()) {
      it->second->watch.stop();
      self->sockets_.erase(it);
    }
    return;
  }
  if (it == self->sockets_.end()) {
    auto s = std::make_unique<Socket>();
    s->owner = self;
    s->fd = fd;
    s->watch.bind<&Socket::on_io>(self->loop_, s.get(), fd);
    it = self->sockets_.emplace(fd, std::move(s)).first;
  }
  it->second->watch.set((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
}

void Resolver::Socket::on_io(int revents) {
  // This object may be gone once ares_process_fd returns (the socket closed): locals only.
  Resolver* r = owner;
  const int sock = fd;
  ares_process_fd(r->channel_, (revents & EV_READ) ? sock : ARES_SOCKET_BAD,
                  (revents & EV_WRITE) ? sock : ARES_SOCKET_BAD);
  r->arm_timer();
}

void Resolver::arm_timer() {
  if (!channel_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv))
    timer_.start(static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6);
  else
    timer_.stop();
}

void Resolver::on_timer() {
  if (!failed_.empty()) {
    std::vector<std::unique_ptr<Pending>> failed = std::move(failed_);
    failed_.clear();
    for (auto& p : failed) {
      Answer a;
      a.error = init_error_;
      try {
        p->cb(std::move(a));
      } catch (...) {
      }
    }
  }
  if (!channel_) return;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  arm_timer();
}

}  // namespace l4lb::dns
