// ip_hash: hash(client IP) mod the number of members. While the members and their
// availability stay the same, a client always gets the same backend. An unavailable or
// tried choice is rehashed a few times (deterministically), then the members are walked
// from the first choice.
#include "l4lb/balance/selectors.hpp"

namespace l4lb {

namespace {
constexpr int kRehashes = 8;
}

double IpHash::rebuild(std::span<Backend* const> members) {
  members_.update(members);
  return 0;
}

Backend* IpHash::pick(const PickContext& ctx, const PickFilter& filter) {
  const auto& list = members_.list();
  size_t n = list.size();
  if (n == 0) return nullptr;
  uint64_t h = hash_client(ctx.client);
  size_t first = h % n;
  if (filter.ok(list[first])) return list[first];
  for (int i = 1; i <= kRehashes; ++i) {
    Backend* b = list[hash_bytes(&h, sizeof h, i) % n];
    if (filter.ok(b)) return b;
  }
  for (size_t i = 1, k = first; i < n; ++i) {
    if (++k == n) k = 0;
    if (filter.ok(list[k])) return list[k];
  }
  return nullptr;
}

}  // namespace l4lb
