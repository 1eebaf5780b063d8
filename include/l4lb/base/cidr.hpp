// CIDR lists (accept_proxy.from, and allow/deny to come): parsed once per config into a set
// whose lookup cost does not grow with the number of entries.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "l4lb/base/address.hpp"

namespace l4lb {

struct Cidr {
  int family = 0;                  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; bits past prefix are zero
  int prefix = 0;                  // 0..32 or 0..128
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128). False with ERROR otherwise
// (host bits set are an error: "10.0.0.1/8" is probably a typo).
bool parse_cidr(std::string_view text, Cidr& out, std::string& error);

// C as a CidrSet holds it: bits past the prefix cleared, and an IPv4-mapped IPv6 network
// (inside ::ffff:0:0/96) as the IPv4 network it stands for. Two CIDRs cover the same
// addresses when their normalized forms are equal.
Cidr normalized(const Cidr& c);

class CidrSet {
 public:
  // Adds normalized(C): an IPv4-mapped entry matches as the IPv4 network it stands for.
  void add(const Cidr& c);
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  // Whether ADDR (its IP; an IPv4-mapped IPv6 address counts as its IPv4 address) is in
  // any entry. One hash probe per distinct prefix length in the set (at most 33 + 129).
  bool contains(const Address& addr) const;
  // The same entries (as normalized by add(): masked, IPv4-mapped IPv6 as IPv4), whatever
  // their order or repetition: "10.0.0.0/8, ::1" equals "::1/128, 10.0.0.0/8".
  friend bool operator==(const CidrSet& a, const CidrSet& b);

 private:
  // An entry: the network's 16 bytes as two words in memory order (an IPv4 network in the
  // first 4 bytes), masked to its prefix, with its family and prefix length.
  struct Key {
    uint64_t hi = 0, lo = 0;
    uint8_t family = 0;  // 0: an empty slot
    uint8_t prefix = 0;
    bool operator==(const Key&) const = default;
  };
  bool find(const Key& key) const;
  void insert(const Key& key);

  // Open addressing, linear probing, a power-of-two size, at most half full: a probe is a
  // hash of two words, a mask, and one or two compares (no division, no list to follow).
  std::vector<Key> slots_;
  std::vector<int> v4_prefixes_, v6_prefixes_;  // distinct lengths present, longest first
  size_t count_ = 0;
};

}  // namespace l4lb
