// random: uniform over the available members. A draw that lands on an unavailable or
// tried member is redrawn (which keeps the choice uniform over the rest); after a few
// misses one pass picks uniformly among the members that remain (reservoir sampling).
#include "l4lb/selectors.hpp"

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
  members_.update(members);
  return 0;
}

Backend* Random::pick(const PickContext&, const PickFilter& filter) {
  const auto& list = members_.list();
  if (list.empty()) return nullptr;
  for (int i = 0; i < kDraws; ++i) {
    Backend* b = list[below(list.size())];
    if (filter.ok(b)) return b;
  }
  Backend* chosen = nullptr;
  size_t seen = 0;
  for (Backend* b : list)
    if (filter.ok(b) && below(++seen) == 0) chosen = b;
  return chosen;
}

}  // namespace l4lb
