// Shared helpers for the pool and selector unit tests.
#pragma once
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "l4lb/balance/pool.hpp"
#include "l4lb/balance/selectors.hpp"

namespace l4lb::testing {

inline std::shared_ptr<Backend> backend(const std::string& address, int weight = 1, bool backup = false) {
  BackendConfig bc;
  bc.address_text = address;
  std::string err;
  REQUIRE(parse_address(bc.address_text, bc.address, err));
  bc.weight = weight;
  bc.backup = backup;
  return std::make_shared<Backend>(bc);
}

// What a reload does to a backend's file settings, without a Service: the new value, then
// what is in force (no override, no slow start), as Service::derive() would set it.
inline void set_drain(Backend& b, bool drain) {
  b.config.drain = drain;
  b.set_in_force(drain ? AdminState::Drain : AdminState::Ready, b.config.weight, b.config.weight,
                 Backend::kRampSteps);
}
inline void set_weight(Backend& b, int weight) {
  b.config.weight = weight;
  b.set_in_force(b.admin_state(), weight, weight, Backend::kRampSteps);
}

inline std::shared_ptr<Backend> backend(int port, int weight = 1, bool backup = false) {
  return backend("127.0.0.1:" + std::to_string(port), weight, backup);
}

inline Address address(const std::string& text) {
  Address a;
  std::string err;
  REQUIRE(parse_address(text, a, err, true));
  return a;
}

// The I-th of many distinct client addresses: IPv4 10.x.y.z, or IPv6 2001:db8::/32.
inline Address client(uint32_t i, bool v6 = false, uint16_t port = 40000) {
  char text[64];
  if (v6)
    std::snprintf(text, sizeof text, "[2001:db8:%x:%x::%x]:%u", i >> 16, i & 0xffff, i * 7919u & 0xffff, port);
  else
    std::snprintf(text, sizeof text, "10.%u.%u.%u:%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, port);
  return address(text);
}

// Picks and gives the lease back at once; the chosen backend (nullptr: none).
inline Backend* pick(Pool& pool, const Address* c = nullptr, std::vector<Backend*> avoid = {}) {
  Lease l = pool.acquire(PickContext{c}, avoid);
  return l.get();
}

// The names of N picks (each lease given back at once), e.g. "aabacaa".
inline std::string sequence(Pool& pool, const std::map<const Backend*, char>& names, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    Backend* b = pick(pool);
    out += b ? names.at(b) : '-';
  }
  return out;
}

inline const std::vector<Algorithm>& all_algorithms() {
  static const std::vector<Algorithm> all{
      Algorithm::RoundRobin, Algorithm::WeightedRoundRobin, Algorithm::LeastConnections,
      Algorithm::WeightedLeastConnections, Algorithm::Random, Algorithm::IpHash,
      Algorithm::ConsistentHash};
  return all;
}

}  // namespace l4lb::testing
