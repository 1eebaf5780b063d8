// CIDR parsing and the set of CIDRs: one hash probe per distinct prefix length.
#include "l4lb/base/cidr.hpp"

#include "l4lb/base/hash.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "l4lb/base/text.hpp"

namespace l4lb {
namespace {

constexpr std::string_view kExpected =
    "(expected ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\")";

// Zeroes the bits of BYTES past PREFIX.
void mask(std::array<uint8_t, 16>& bytes, int prefix) {
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(prefix - 8 * i, 0, 8);
    bytes[i] &= static_cast<uint8_t>(0xFF00 >> keep);
  }
}

bool is_v4_mapped(const std::array<uint8_t, 16>& b) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(b.data(), kPrefix, sizeof kPrefix) == 0;
}

// Masks in memory order: the first HI/LO bits of an address's bytes, as two words.
struct WordMask {
  uint64_t hi, lo;
};
const std::array<WordMask, 129>& word_masks() {
  static const std::array<WordMask, 129> table = [] {
    std::array<WordMask, 129> t{};
    for (int prefix = 0; prefix <= 128; ++prefix) {
      std::array<uint8_t, 16> bytes;
      bytes.fill(0xFF);
      mask(bytes, prefix);
      std::memcpy(&t[prefix].hi, bytes.data(), 8);
      std::memcpy(&t[prefix].lo, bytes.data() + 8, 8);
    }
    return t;
  }();
  return table;
}


std::string format(int family, const std::array<uint8_t, 16>& bytes) {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

}  // namespace

Cidr normalized(const Cidr& cidr) {
  Cidr c = cidr;
  if (c.family != AF_INET && c.family != AF_INET6) return c;
  c.prefix = std::clamp(c.prefix, 0, c.family == AF_INET ? 32 : 128);
  if (c.family == AF_INET6 && c.prefix >= 96 && is_v4_mapped(c.bytes)) {
    std::array<uint8_t, 16> v4{};
    std::memcpy(v4.data(), c.bytes.data() + 12, 4);
    c.family = AF_INET;
    c.bytes = v4;
    c.prefix -= 96;
  }
  mask(c.bytes, c.prefix);
  return c;
}

bool parse_cidr(std::string_view text, Cidr& out, std::string& error) {
  if (text.empty()) return error = "empty CIDR " + std::string(kExpected), false;
  if (text.find_first_of("[]") != std::string_view::npos)
    return error = "write an IPv6 CIDR without brackets, e.g. \"::1/128\", got " + quoted(text),
           false;
  const size_t slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  const bool v6 = host.find(':') != std::string_view::npos;
  if (host.empty())
    return error = "missing address in " + quoted(text) + " " + std::string(kExpected), false;

  Cidr c;
  const std::string h(host);
  if (v6) {
    in6_addr ip6{};
    if (inet_pton(AF_INET6, h.c_str(), &ip6) != 1) {
      // "10.0.0.1:80": one colon after an IPv4 address is a port.
      size_t colon = host.find(':');
      in_addr ip4{};
      if (host.find(':', colon + 1) == std::string_view::npos &&
          inet_pton(AF_INET, std::string(host.substr(0, colon)).c_str(), &ip4) == 1)
        return error = "a CIDR has no port, got " + quoted(text), false;
      return error = "invalid IPv6 address " + quoted(host) + " in " + quoted(text), false;
    }
    c.family = AF_INET6;
    std::memcpy(c.bytes.data(), &ip6, 16);
  } else {
    in_addr ip4{};
    if (inet_pton(AF_INET, h.c_str(), &ip4) != 1) {
      bool numeric = host.find_first_not_of("0123456789.") == std::string_view::npos;
      if (!numeric)
        return error = quoted(host) + " is not an IP address (a CIDR takes no host names), in " +
                       quoted(text),
               false;
      return error = "invalid IPv4 address " + quoted(host) + " in " + quoted(text), false;
    }
    c.family = AF_INET;
    std::memcpy(c.bytes.data(), &ip4, 4);
  }

  const int max = c.family == AF_INET ? 32 : 128;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    bool ok = !p.empty() && p.size() <= 3 &&
              std::all_of(p.begin(), p.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    int value = 0;
    if (ok)
      for (char ch : p) value = value * 10 + (ch - '0');
    if (!ok || value > max)
      return error = "prefix length must be 0.." + std::to_string(max) + ", got " + quoted(p) +
                     " in " + quoted(text),
             false;
    c.prefix = value;
  }
  std::array<uint8_t, 16> network = c.bytes;
  mask(network, c.prefix);
  if (network != c.bytes) {
    std::string net = format(c.family, network) + "/" + std::to_string(c.prefix);
    std::string one = format(c.family, c.bytes) + "/" + std::to_string(max);
    return error = "host bits set past the /" + std::to_string(c.prefix) + " prefix in " +
                   quoted(text) + " (the network is " + quoted(net) + ", one address is " +
                   quoted(one) + ")",
           false;
  }
  out = c;
  return true;
}

void CidrSet::add(const Cidr& cidr) {
  if (cidr.family != AF_INET && cidr.family != AF_INET6) return;
  const Cidr c = normalized(cidr);
  Key key;
  std::memcpy(&key.hi, c.bytes.data(), 8);
  std::memcpy(&key.lo, c.bytes.data() + 8, 8);
  key.family = static_cast<uint8_t>(c.family);
  key.prefix = static_cast<uint8_t>(c.prefix);
  if (find(key)) return;
  if (2 * (count_ + 1) > slots_.size()) {  // grow: at most half full
    std::vector<Key> old = std::move(slots_);
    slots_.assign(std::max<size_t>(16, 2 * old.size()), Key{});
    for (const Key& k : old)
      if (k.family) insert(k);
  }
  insert(key);
  ++count_;
  std::vector<int>& lengths = c.family == AF_INET ? v4_prefixes_ : v6_prefixes_;
  auto at = std::lower_bound(lengths.begin(), lengths.end(), c.prefix, std::greater<int>());
  if (at == lengths.end() || *at != c.prefix) lengths.insert(at, c.prefix);
}

namespace {
size_t slot_of(uint64_t hi, uint64_t lo, uint8_t family, uint8_t prefix, size_t size) {
  uint64_t h =
      hi * 0x9e3779b97f4a7c15ull ^ (lo + (uint64_t{family} << 8 | prefix)) * 0xc2b2ae3d27d4eb4full;
  return static_cast<size_t>(fmix64(h)) & (size - 1);
}
}  // namespace

bool CidrSet::find(const Key& key) const {
  if (slots_.empty()) return false;
  const size_t mask_bits = slots_.size() - 1;
  for (size_t i = slot_of(key.hi, key.lo, key.family, key.prefix, slots_.size());;
       i = (i + 1) & mask_bits) {
    const Key& slot = slots_[i];
    if (slot.family == 0) return false;
    if (slot == key) return true;
  }
}

void CidrSet::insert(const Key& key) {
  const size_t mask_bits = slots_.size() - 1;
  size_t i = slot_of(key.hi, key.lo, key.family, key.prefix, slots_.size());
  while (slots_[i].family != 0) i = (i + 1) & mask_bits;
  slots_[i] = key;
}

bool CidrSet::contains(const Address& addr) const {
  if (count_ == 0) return false;  // the common case per connection: no allow/deny list
  std::array<uint8_t, 16> bytes{};
  Key key;
  const std::vector<int>* lengths;
  if (addr.family() == AF_INET) {
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(&addr.storage)->sin_addr, 4);
    key.family = AF_INET;
    lengths = &v4_prefixes_;
  } else if (addr.family() == AF_INET6) {
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&addr.storage)->sin6_addr, 16);
    if (is_v4_mapped(bytes)) {  // ::ffff:a.b.c.d is a.b.c.d
      std::memmove(bytes.data(), bytes.data() + 12, 4);
      std::memset(bytes.data() + 4, 0, 12);
      key.family = AF_INET;
      lengths = &v4_prefixes_;
    } else {
      key.family = AF_INET6;
      lengths = &v6_prefixes_;
    }
  } else {
    return false;
  }
  uint64_t hi, lo;
  std::memcpy(&hi, bytes.data(), 8);
  std::memcpy(&lo, bytes.data() + 8, 8);
  const auto& masks = word_masks();
  for (int prefix : *lengths) {
    key.hi = hi & masks[prefix].hi;
    key.lo = lo & masks[prefix].lo;
    key.prefix = static_cast<uint8_t>(prefix);
    if (find(key)) return true;
  }
  return false;
}

bool operator==(const CidrSet& a, const CidrSet& b) {
  if (a.count_ != b.count_) return false;
  for (const CidrSet::Key& k : a.slots_)
    if (k.family && !b.find(k)) return false;
  return true;
}

}  // namespace l4lb
