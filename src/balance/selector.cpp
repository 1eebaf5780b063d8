#include "l4lb/balance/selector.hpp"

#include <netinet/in.h>

#include <cstring>
#include <random>

#include <algorithm>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

std::unique_ptr<Selector> make_selector(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::RoundRobin:
      return std::make_unique<RoundRobin>();
    case Algorithm::WeightedRoundRobin:
      return std::make_unique<WeightedRoundRobin>();
    case Algorithm::LeastConnections:
      return std::make_unique<LeastConnections>();
    case Algorithm::WeightedLeastConnections:
      return std::make_unique<WeightedLeastConnections>();
    case Algorithm::Random: {
      std::random_device rd;
      return std::make_unique<Random>((uint64_t{rd()} << 32) ^ rd());
    }
    case Algorithm::IpHash:
      return std::make_unique<IpHash>();
    case Algorithm::ConsistentHash:
      return std::make_unique<ConsistentHash>();
  }
  return std::make_unique<RoundRobin>();
}

int Members::weight_of(const Backend* b) const {
  switch (of_) {
    case WeightOf::Share: return static_cast<int>(b->share());
    case WeightOf::Ramp: return static_cast<int>(b->ramp());
    case WeightOf::Base: return b->base_weight();
  }
  return 1;
}

bool Members::update(std::span<Backend* const> members) {
  bool same = members.size() == list_.size();
  for (size_t i = 0; same && i < members.size(); ++i)
    same = members[i] == list_[i] && weight_of(members[i]) == weights_[i];
  if (same) return false;
  list_.assign(members.begin(), members.end());
  weights_.resize(list_.size());
  for (size_t i = 0; i < list_.size(); ++i) weights_[i] = std::max(1, weight_of(list_[i]));
  return true;
}

namespace {
// Family tag + address bytes (+ port), network byte order: the same everywhere.
size_t address_bytes(const Address& a, bool with_port, unsigned char out[19]) {
  size_t n = 0;
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    out[n++] = 4;
    std::memcpy(out + n, &in->sin_addr, 4);
    n += 4;
    if (with_port) {
      std::memcpy(out + n, &in->sin_port, 2);
      n += 2;
    }
  } else if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      out[n++] = 4;
      std::memcpy(out + n, in6->sin6_addr.s6_addr + 12, 4);
      n += 4;
    } else {
      out[n++] = 6;
      std::memcpy(out + n, in6->sin6_addr.s6_addr, 16);
      n += 16;
    }
    if (with_port) {
      std::memcpy(out + n, &in6->sin6_port, 2);
      n += 2;
    }
  }
  return n;
}
}  // namespace

uint64_t hash_bytes(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ULL ^ fmix64(seed);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return fmix64(h);
}

uint64_t hash_client(const Address* client) {
  unsigned char bytes[19];
  size_t n = client ? address_bytes(*client, false, bytes) : 0;
  return hash_bytes(bytes, n);
}

uint64_t hash_backend(const Address& address, uint64_t seed) {
  unsigned char bytes[19];
  return hash_bytes(bytes, address_bytes(address, true, bytes), seed);
}

}  // namespace l4lb
