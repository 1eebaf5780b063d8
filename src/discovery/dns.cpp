#include "l4lb/discovery/dns.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace l4lb::dns {

namespace {
constexpr int kTypeCname = 5;

// The bytes of A's IP, for ordering.
std::string_view ip_bytes(const Address& a) {
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return {reinterpret_cast<const char*>(&sin->sin_addr), 4};
  }
  if (a.family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    return {reinterpret_cast<const char*>(&sin6->sin6_addr), 16};
  }
  return {};
}

// Skips a (possibly compressed) name at POS; false if it runs past the end.
bool skip_name(const unsigned char* msg, size_t len, size_t& pos) {
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= len) return false;
    const unsigned char c = msg[pos];
    if (c == 0) return ++pos, true;
    if ((c & 0xC0) == 0xC0) return pos + 2 <= len ? (pos += 2, true) : false;
    if ((c & 0xC0) != 0) return false;
    pos += 1 + c;
  }
  return false;
}

uint16_t u16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t u32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
}  // namespace

bool address_less(const Address& a, const Address& b) {
  if (a.family() != b.family()) return a.family() < b.family();
  const std::string_view x = ip_bytes(a), y = ip_bytes(b);
  if (x != y) return x < y;
  return a.port() < b.port();
}

size_t normalize(std::vector<Resolved>& set, size_t max) {
  std::stable_sort(set.begin(), set.end(),
                   [](const Resolved& a, const Resolved& b) { return address_less(a.address, b.address); });
  set.erase(std::unique(set.begin(), set.end(),
                        [](const Resolved& a, const Resolved& b) { return a.address == b.address; }),
            set.end());
  if (set.size() <= max) return 0;
  const size_t refused = set.size() - max;
  set.resize(max);
  return refused;
}

Millis clamp_ttl(uint32_t ttl_seconds, Millis min_ttl, Millis max_ttl) {
  const Millis ttl{static_cast<int64_t>(ttl_seconds) * 1000};
  return std::clamp(ttl, min_ttl, std::max(min_ttl, max_ttl));
}

int srv_weight(unsigned record_weight) {
  return static_cast<int>(std::clamp(record_weight, 1u, 1000u));
}

Diff diff(const std::vector<Resolved>& before, const std::vector<Resolved>& after) {
  Diff d;
  auto contains = [](const std::vector<Resolved>& set, const Address& a) {
    return std::binary_search(set.begin(), set.end(), Resolved{a, 0},
                              [](const Resolved& x, const Resolved& y) {
                                return address_less(x.address, y.address);
                              });
  };
  for (const Resolved& r : after)
    if (!contains(before, r.address)) d.added.push_back(r.address.to_string());
  for (const Resolved& r : before)
    if (!contains(after, r.address)) d.removed.push_back(r.address.to_string());
  return d;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

bool answer_info(const unsigned char* msg, size_t len, int type, AnswerInfo& out) {
  out = AnswerInfo{};
  if (!msg || len < 12) return false;
  const unsigned qd = u16(msg + 4), an = u16(msg + 6);
  size_t pos = 12;
  for (unsigned i = 0; i < qd; ++i) {
    if (!skip_name(msg, len, pos) || pos + 4 > len) return false;
    pos += 4;
  }
  for (unsigned i = 0; i < an; ++i) {
    if (!skip_name(msg, len, pos) || pos + 10 > len) return false;
    const int rtype = u16(msg + pos);
    const uint32_t ttl = u32(msg + pos + 4) & 0x7FFFFFFFu;  // RFC 2181: top bit set = 0
    const size_t rdlen = u16(msg + pos + 8);
    pos += 10;
    if (pos + rdlen > len) return false;
    pos += rdlen;
    if (rtype == type) ++out.count;
    if (rtype == type || rtype == kTypeCname) out.min_ttl = std::min(out.min_ttl, ttl);
  }
  return true;
}

void expand(ServiceConfig& sc, const CurrentFn& current) {
  std::erase_if(sc.backends, [](const BackendConfig& b) { return !b.resolved_from.empty(); });
  auto less = [](const Address& a, const Address& b) { return address_less(a, b); };
  std::set<Address, decltype(less)> present(less);
  for (const BackendConfig& b : sc.backends) present.insert(b.address);
  for (const DnsBackendConfig& d : sc.dns_backends) {
    const std::vector<Resolved>* set = current(d);
    if (!set) continue;
    for (const Resolved& r : *set) {
      if (!present.insert(r.address).second) continue;
      BackendConfig b;
      b.address = r.address;
      b.address_text = r.address.to_string();
      b.weight = d.srv && !d.weight_given ? srv_weight(static_cast<unsigned>(r.weight)) : d.weight;
      b.max_connections = d.max_connections;
      b.backup = d.backup;
      b.drain = d.drain;
      b.resolved_from = d.name;
      sc.backends.push_back(std::move(b));
    }
  }
}

}  // namespace l4lb::dns
