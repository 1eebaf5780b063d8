// The pure parts of backends from DNS: TTL clamping, SRV weights, the TTLs of a DNS
// answer, the address sets a lookup yields and how they differ, and a service's backend
// list with the DNS entries' current addresses in it. No I/O here (resolver.hpp does it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "l4lb/base/address.hpp"
#include "l4lb/base/duration.hpp"
#include "l4lb/config/config.hpp"

namespace l4lb::dns {

// At most this many addresses per entry (A and AAAA together, or over every SRV target);
// the rest are refused and counted.
constexpr size_t kMaxAddresses = 1000;

// One backend address a lookup yielded: the address with its port, and for SRV the
// record's weight (clamped); 0 for resolve: true.
struct Resolved {
  Address address;
  int weight = 0;
  friend bool operator==(const Resolved& a, const Resolved& b) {
    return a.address == b.address && a.weight == b.weight;
  }
};

// The order sets are kept in (by family, then bytes, then port): two lookups of the same
// records compare equal whatever order the server sent them in.
bool address_less(const Address& a, const Address& b);
// Sorts and drops repeated addresses (the first weight seen is kept for SRV duplicates);
// keeps at most MAX, returning how many were dropped beyond it.
size_t normalize(std::vector<Resolved>& set, size_t max = kMaxAddresses);

// The re-resolution period for a record TTL (seconds): clamped to [min_ttl, max_ttl].
Millis clamp_ttl(uint32_t ttl_seconds, Millis min_ttl, Millis max_ttl);
// An SRV record's weight as a backend weight: 0 counts as 1, at most 1000.
int srv_weight(unsigned record_weight);

// What differs between two normalized sets, each address as /stats shows it.
struct Diff {
  std::vector<std::string> added, removed;
  bool empty() const { return added.empty() && removed.empty(); }
};
Diff diff(const std::vector<Resolved>& before, const std::vector<Resolved>& after);
// "a,b,c"
std::string join(const std::vector<std::string>& items);

// The answer section of a DNS message: the smallest TTL among records of TYPE (and
// CNAMEs, which the answer went through), and how many records of TYPE there are.
// False if the message is malformed.
struct AnswerInfo {
  uint32_t min_ttl = UINT32_MAX;  // UINT32_MAX: no such record
  size_t count = 0;
};
bool answer_info(const unsigned char* msg, size_t len, int type, AnswerInfo& out);

// SC's backends as they are now: the fixed ones written in the file, then each DNS
// entry's current addresses (CURRENT gives them, or null before the first good lookup),
// each one backend with the entry's properties (an SRV entry's record weight unless the
// entry gives a weight). An address already in the list (fixed, or from an entry before)
// is not added twice. Backends from an earlier expansion are replaced.
using CurrentFn = std::function<const std::vector<Resolved>*(const DnsBackendConfig&)>;
void expand(ServiceConfig& sc, const CurrentFn& current);

// Lookups of one entry name in one service, for l4lb_dns_lookups_total.
struct LookupCounts {
  uint64_t success = 0;
  uint64_t failure = 0;
  uint64_t refused = 0;  // addresses beyond kMaxAddresses, over every lookup
};

}  // namespace l4lb::dns
