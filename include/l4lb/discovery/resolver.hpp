// Resolver: asynchronous DNS queries (c-ares) driven by an event loop: c-ares' sockets
// are libev IO watchers (ARES_OPT_SOCK_STATE_CB) and its next timeout a libev timer, so
// a query never blocks the loop however slow or silent the server is. Servers are
// dns.servers (else /etc/resolv.conf's), each tried once per query, in order, for
// dns.timeout; an answer truncated over UDP is asked again over TCP (c-ares' default).
// Names are queried as written (no search domains).
#pragma once
#include <ev.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "l4lb/base/address.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/config/config.hpp"

struct ares_channeldata;

namespace l4lb::dns {

class Resolver {
 public:
  enum class Type { A, AAAA, SRV };
  struct Srv {
    std::string target;
    uint16_t port = 0;
    unsigned weight = 0;
  };
  // One answer to one query.
  struct Answer {
    bool ok = false;        // a server answered (with records, or none: NODATA / NXDOMAIN)
    std::string error;      // why not (or, with ok, "no such name")
    std::vector<Address> addresses;  // A/AAAA, port 0
    std::vector<Srv> srv;
    uint32_t ttl = UINT32_MAX;  // the smallest TTL of the records (UINT32_MAX: none)
    size_t refused = 0;         // A/AAAA records beyond kMaxAddresses
  };
  using Callback = std::function<void(Answer&&)>;

  Resolver(struct ev_loop* loop, const DnsConfig& cfg);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  // Pending queries are dropped: their callbacks are not called.
  ~Resolver();

  // Empty when the channel is ready; else why not (every query then fails with it).
  const std::string& init_error() const { return init_error_; }
  // Starts a query; CB is called later from the loop (never from within query()).
  void query(const std::string& name, Type type, Callback cb);

 private:
  struct Pending;
  struct Socket {
    Resolver* owner = nullptr;
    int fd = -1;
    IoWatcher watch;
    void on_io(int revents);
  };
  static void sock_state(void* data, int fd, int readable, int writable);
  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void arm_timer();
  void on_timer();

  struct ev_loop* loop_;
  ares_channeldata* channel_ = nullptr;
  std::string init_error_;
  bool destroying_ = false;
  std::map<int, std::unique_ptr<Socket>> sockets_;
  TimerWatcher timer_;
  TimerWatcher failer_;  // init failed: fails queued queries from the loop
  std::vector<std::unique_ptr<Pending>> failed_;
};

}  // namespace l4lb::dns
