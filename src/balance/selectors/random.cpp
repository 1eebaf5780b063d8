// random: a member with probability weight / total weight. A draw that lands on an
// unavailable or tried member is redrawn (which keeps the choice proportional over the
// rest); after a few misses one pass picks among the members that remain (weighted
// reservoir sampling).
#include <algorithm>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

namespace {
constexpr int kDraws = 8;
}

Random::Random(uint64_t seed) : state_(seed) {}

uint64_t Random::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Lemire's multiply-shift; the bias is below n / 2^64.
size_t Random::below(size_t n) {
  return static_cast<size_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
}

double Random::rebuild(std::span<Backend* const> members) {
  if (!members_.update(members)) return 0;  // same members with the same weights
  cumulative_.clear();
  size_t total = 0;
  for (int w : members_.weights()) {
    total += static_cast<size_t>(std::max(w, 1));
    cumulative_.push_back(total);
  }
  return 0;
}

Backend* Random::pick(const PickContext&, const PickFilter& filter) {
  const auto& list = members_.list();
  if (list.empty()) return nullptr;
  for (int i = 0; i < kDraws; ++i) {
    size_t r = below(cumulative_.back());
    size_t k = static_cast<size_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), r) -
                                   cumulative_.begin());
    if (filter.ok(list[k])) return list[k];
  }
  Backend* chosen = nullptr;
  size_t seen = 0;
  for (Backend* b : list) {
    if (!filter.ok(b)) continue;
    size_t w = std::max<size_t>(b->share(), 1);
    seen += w;
    if (below(seen) < w) chosen = b;  // keeps each so far with probability w / seen
  }
  return chosen;
}

}  // namespace l4lb
