// consistent_hash: Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4), weight-aware.
//
// Each member has a permutation of the table slots, offset + j * skip (mod the prime
// table size), from two fixed hashes of its address. Members take turns claiming their
// next free preferred slot until the table is full; turns are given in proportion to
// weight (the member whose (claimed + 1) / weight is smallest goes next, ties in key
// order), so a member holds weight / total of the slots, to within one. Members are
// ordered by a fixed hash of their address, never by config order, so the table
// depends only on the set of (address, weight) and is the same on every instance.
//
// A pick is one hash of the client IP and one table read. If that backend is full or
// already tried (or went down since the last refresh), the following slots are walked
// (they belong to other members in a pseudo-random order); past kWalk slots, the
// members are walked.
#include <algorithm>
#include <queue>

#include "l4lb/selectors.hpp"

namespace l4lb {

namespace {
constexpr size_t kWalk = 64;
constexpr uint32_t kEmpty = UINT32_MAX;
constexpr uint64_t kOffsetSeed = 1, kSkipSeed = 2, kTieSeed = 3;
}  // namespace

ConsistentHash::ConsistentHash(uint32_t table_size) : size_(table_size) {}

double ConsistentHash::rebuild(std::span<Backend* const> members) {
  bool first = !built_;
  built_ = true;
  if (!members_.update(members)) return 0;

  // Members in a fixed order: by address hash (ties: a second hash, then weight).
  struct Member {
    uint64_t key, tie;
    uint32_t weight;
    Backend* backend;
  };
  std::vector<Member> ms;
  ms.reserve(members.size());
  for (Backend* b : members)
    ms.push_back({hash_backend(b->config.address), hash_backend(b->config.address, kTieSeed),
                  static_cast<uint32_t>(std::max(b->config.weight, 1)), b});
  std::sort(ms.begin(), ms.end(), [](const Member& x, const Member& y) {
    if (x.key != y.key) return x.key < y.key;
    if (x.tie != y.tie) return x.tie < y.tie;
    return x.weight < y.weight;
  });

  std::vector<uint32_t> table;
  if (!ms.empty()) {
    const uint32_t m = size_;
    std::vector<uint32_t> cursor(ms.size()), skip(ms.size()), claimed(ms.size(), 0);
    for (size_t i = 0; i < ms.size(); ++i) {
      cursor[i] = static_cast<uint32_t>(hash_backend(ms[i].backend->config.address, kOffsetSeed) % m);
      skip[i] = static_cast<uint32_t>(hash_backend(ms[i].backend->config.address, kSkipSeed) % (m - 1) + 1);
    }
    // Next turn: smallest (claimed + 1) / weight, ties to the lower index.
    auto later = [&](uint32_t x, uint32_t y) {
      uint64_t tx = uint64_t{claimed[x] + 1} * ms[y].weight, ty = uint64_t{claimed[y] + 1} * ms[x].weight;
      return tx != ty ? tx > ty : x > y;
    };
    std::priority_queue<uint32_t, std::vector<uint32_t>, decltype(later)> turns(later);
    for (uint32_t i = 0; i < ms.size(); ++i) turns.push(i);
    table.assign(m, kEmpty);
    for (uint32_t filled = 0; filled < m; ++filled) {
      uint32_t i = turns.top();
      turns.pop();
      uint32_t c = cursor[i];
      while (table[c] != kEmpty)
        if ((c += skip[i]) >= m) c -= m;
      table[c] = i;
      if ((c += skip[i]) >= m) c -= m;
      cursor[i] = c;
      ++claimed[i];
      turns.push(i);
    }
  }

  std::vector<uint64_t> keys(ms.size());
  std::vector<Backend*> sorted(ms.size());
  for (size_t i = 0; i < ms.size(); ++i) {
    keys[i] = ms[i].key;
    sorted[i] = ms[i].backend;
  }
  double moved = 0;
  if (!first) {
    if (table.empty() != table_.empty()) {
      moved = 1;
    } else if (!table.empty()) {
      size_t changed = 0;
      for (size_t s = 0; s < table.size(); ++s) changed += keys_[table_[s]] != keys[table[s]];
      moved = static_cast<double>(changed) / static_cast<double>(table.size());
    }
  }
  table_ = std::move(table);
  keys_ = std::move(keys);
  sorted_ = std::move(sorted);
  return moved;
}

Backend* ConsistentHash::pick(const PickContext& ctx, const PickFilter& filter) {
  if (table_.empty()) return nullptr;
  uint64_t h = hash_client(ctx.client);
  uint32_t slot = static_cast<uint32_t>(h % size_);
  for (size_t i = 0; i < kWalk; ++i) {
    Backend* b = sorted_[table_[slot]];
    if (filter.ok(b)) return b;
    if (++slot == size_) slot = 0;
  }
  size_t n = sorted_.size();
  for (size_t i = 0, k = h % n; i < n; ++i, k = k + 1 == n ? 0 : k + 1)
    if (filter.ok(sorted_[k])) return sorted_[k];
  return nullptr;
}

size_t ConsistentHash::slots_of(const Backend* b) const {
  size_t count = 0;
  for (uint32_t i : table_) count += sorted_[i] == b;
  return count;
}

}  // namespace l4lb
