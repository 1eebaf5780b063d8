// Discovery: the DNS entries (resolve: true, srv) of every service, each looked up in the
// background and again after its TTL (clamped to [dns.min_ttl, dns.max_ttl]). A lookup
// that yields a different set of addresses logs `dns changed` and tells the server
// (ON_CHANGE, with the service name), which applies that service's new backend list as a
// reload would; one that yields the same set costs nothing more. A failed or empty lookup
// keeps the last good set, logs `dns failed` and is retried after dns.min_ttl. Control
// thread only; nothing here ever blocks.
#pragma once
#include <ev.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "l4lb/base/watch.hpp"
#include "l4lb/config/config.hpp"
#include "l4lb/discovery/dns.hpp"
#include "l4lb/discovery/resolver.hpp"
#include "l4lb/log/log.hpp"

namespace l4lb::dns {

// l4lb_dns_lookups_total: by (service, name as resolved_from).
using LookupTable = std::map<std::pair<std::string, std::string>, LookupCounts>;

class Discovery {
 public:
  using OnChange = std::function<void(const std::string& service)>;
  Discovery(struct ev_loop* loop, Log& log, LookupTable& counts, OnChange on_change);
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;
  ~Discovery();

  // Takes the entries of CFG (after a load or reload): entries that stay (same service,
  // kind, name and port) keep their set and schedule; new ones are looked up at once;
  // gone ones are forgotten (a lookup in flight for them is dropped). A change of
  // dns.servers or dns.timeout makes a new resolver (lookups in flight start again).
  void configure(const Config& cfg);
  // SC's backend list with the current addresses of its DNS entries (dns::expand).
  void expand(ServiceConfig& sc) const;
  size_t entries() const { return entries_.size(); }
  // At most this many lookups in flight; the others wait their turn (in order). A burst of
  // thousands of queries at once would overflow the server's (or our) UDP buffers and
  // turn into timeouts; queued, they spread themselves out.
  static constexpr size_t kMaxInFlight = 32;

 private:
  struct Entry;
  struct Lookup;
  static std::string key_of(const std::string& service, const DnsBackendConfig& d);
  void start(Entry& e);
  void finish(Entry& e);
  void conclude(Entry& e);
  void resolve_host(Entry& e, const std::string& host, uint16_t port, int weight);
  void done_query(Entry& e);
  void launch(Entry& e);
  void pump();

  struct ev_loop* loop_;
  Log& log_;
  LookupTable& counts_;
  OnChange on_change_;
  DnsConfig config_;
  std::unique_ptr<Resolver> resolver_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // by key_of
  uint64_t next_lookup_ = 1;
  size_t in_flight_ = 0;            // Lookups alive (each decrements it when it goes)
  std::deque<std::string> waiting_;  // keys of entries waiting for a slot
};

}  // namespace l4lb::dns
