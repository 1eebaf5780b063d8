// consistent_hash: a lookup table whose slots are given by weighted rendezvous hashing
// (highest random weight, Thaler & Ravishankar 1998; the weighted form -ln(u)/weight as
// in Schindelhauer & Schomaker, "Weighted distributed hash tables", 2005).
//
// For each slot and member, h = fmix64(key ^ salt(slot)), key a fixed hash of the
// member's address, and u = h / 2^64. The slot belongs to the member with the smallest
// -log2(u) / weight (compared exactly, cross-multiplied in integers); ties go to the
// larger h, then to the first in (key, key2, weight) order. -log2(u) is exponentially
// distributed, so a member wins a slot with probability weight / total weight. The
// owner is thus a pure function of the slot and the set of (address, weight):
//   - removing a member changes exactly the slots it owned (each goes to the best of the
//     others); adding it back restores them;
//   - the order of the members (config order) never matters;
//   - every instance computes the same table: -log2 is computed in fixed point with
//     integers only (interpolation tables built at compile time by integer squaring),
//     never with libm or floating point.
//
// The fixed-point -log2 never increases with h, so among members of equal weight the
// best is simply the one with the largest raw h: a slot is one max-scan of raw 64-bit
// hashes per distinct weight (fmix64 is a bijection, so the largest hash tells its
// member), and the groups' winners are compared with -log2, most of them rejected by
// cheap bounds first. Equal weights: no logarithm at all. With many distinct weights
// (small groups), each member's score is bounded from below cheaply instead, and only
// the few whose bound can beat the best so far are scored exactly.
//
// A change of a few members (the common case: one backend down or up, a weight changed)
// is applied in place: the slots of the removed members are recomputed over the new
// set, and every other slot compares its stored best raw hash with each added member's.
// O(size) per changed member; the result is the full build's, bit for bit.
//
// A pick is one hash of the client IP and one table read. If that backend is full or
// already tried (or went down since the last refresh), the following slots are walked
// (their owners are independent draws); past kWalk slots, the members are walked.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

namespace {
constexpr size_t kWalk = 64;
constexpr uint32_t kNone = UINT32_MAX;
constexpr uint64_t kTieSeed = 3;
constexpr uint64_t kOne = uint64_t{1} << ConsistentHash::kLogBits;

__extension__ typedef unsigned __int128 u128;

// fmix64 is a bijection: its inverse tells which key gave a hash (see best_of).
constexpr uint64_t mul_inverse(uint64_t a) {  // a odd: a * x == 1 mod 2^64 (Newton)
  uint64_t x = a;
  for (int i = 0; i < 6; ++i) x *= 2 - a * x;
  return x;
}
constexpr uint64_t unfmix64(uint64_t k) {
  k ^= k >> 33;
  k *= mul_inverse(0xc4ceb9fe1a85ec53ULL);
  k ^= k >> 33;
  k *= mul_inverse(0xff51afd7ed558ccdULL);
  k ^= k >> 33;
  return k;
}
static_assert(unfmix64(fmix64(0x0123456789abcdefULL)) == 0x0123456789abcdefULL);

constexpr uint64_t salt(uint32_t slot) {
  return fmix64(uint64_t{slot} * 0x9e3779b97f4a7c15ULL + 0x2545f4914f6cdd1dULL);
}

// The largest fmix64(key ^ S) over N > 0 keys: four independent chains of max.
inline uint64_t max_hash(const uint64_t* keys, size_t n, uint64_t s) {
  uint64_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
  size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    m0 = std::max(m0, fmix64(keys[k] ^ s));
    m1 = std::max(m1, fmix64(keys[k + 1] ^ s));
    m2 = std::max(m2, fmix64(keys[k + 2] ^ s));
    m3 = std::max(m3, fmix64(keys[k + 3] ^ s));
  }
  for (; k < n; ++k) m0 = std::max(m0, fmix64(keys[k] ^ s));
  return std::max(std::max(m0, m1), std::max(m2, m3));
}

// ---- fixed-point -log2 ------------------------------------------------------------
// Two interpolation tables of 1024 intervals (knots 0..1024), 20 bits of interpolation.
constexpr int kIdxBits = 10, kFracBits = 20;
constexpr uint32_t kKnots = (1u << kIdxBits) + 1;

// log2(n / 1024) * 2^60 for 1024 <= n <= 2048, by repeated squaring (integers only:
// the same on every machine). Accurate to ~2^-58.
constexpr uint64_t log2_q60(uint32_t n) {
  if (n == 2048) return uint64_t{1} << 60;
  uint64_t z = uint64_t{n} << 52;  // Q1.62 in [1, 2)
  uint64_t r = 0;
  for (int bit = 59; bit >= 0; --bit) {
    z = static_cast<uint64_t>((u128{z} * z) >> 62);
    if (z >> 63) {  // >= 2
      z >>= 1;
      r |= uint64_t{1} << bit;
    }
  }
  return r;
}

struct LogTables {
  // L[i] = log2(1 + i/1024) in units of 2^-52 (for u < 1/2: u = m 2^-e).
  std::array<uint64_t, kKnots> l{};
  // F[i] = -log2(1 - t) / t at t = i/2048, in units of 2^-30 (for u >= 1/2: t = 1 - u).
  std::array<uint64_t, kKnots> f{};
};

constexpr LogTables make_tables() {
  LogTables x;
  for (uint32_t i = 0; i < kKnots; ++i) {
    x.l[i] = (log2_q60(1024 + i) + (uint64_t{1} << 7)) >> 8;
    if (i == 0) {
      x.f[i] = 1549082005;  // log2(e) * 2^30, the limit at t = 0
    } else {
      // -log2(1 - i/2048) = 1 - log2((2048 - i) / 1024); divided by t = i/2048.
      u128 num = u128{(uint64_t{1} << 60) - log2_q60(2048 - i)} * 2048;  // Q60
      u128 q = num / i;                                                    // f in Q60
      x.f[i] = static_cast<uint64_t>((q + (u128{1} << 29)) >> 30);
    }
  }
  return x;
}

// Computed at compile time: the same bits on every machine.
constexpr LogTables kTables = make_tables();
static_assert(kTables.l[0] == 0 && kTables.l[kKnots - 1] == uint64_t{1} << 52);
static_assert(kTables.f[kKnots - 1] == uint64_t{2} << 30);
static_assert([] {
  for (uint32_t i = 1; i < kKnots; ++i)
    if (kTables.l[i] <= kTables.l[i - 1] || kTables.f[i] <= kTables.f[i - 1]) return false;
  return true;
}());

// Cheap bounds of neg_log2(h), to skip most exact evaluations: for u >= 1/2 it is
// t * f(t) with f between f(0) and f(1/2) = 2; below 1/2, at least 1.
inline uint64_t neg_log2_low(uint64_t h) {
  if (!(h >> 63)) return kOne;
  return std::min(static_cast<uint64_t>((u128{~h} * kTables.f[0]) >> 42), kOne);
}
inline uint64_t neg_log2_high(uint64_t h) {
  if (!(h >> 63)) return 65 * kOne;
  return std::min((~h >> 11) + 1, kOne);
}

// A, B: sorted_ indexes. Is A (raw score HA, weight WA) a better owner than B? The
// smaller -log2(u) / weight (compared exactly, cross-multiplied); then the larger raw
// score (the same order as -log2(u) for equal weights); then the sorted_ order.
inline bool better(uint64_t ha, uint32_t wa, uint32_t a, uint64_t hb, uint32_t wb, uint32_t b) {
  if (wa != wb) {
    if (u128{neg_log2_low(ha)} * wb > u128{neg_log2_high(hb)} * wa) return false;
    if (u128{neg_log2_high(ha)} * wb < u128{neg_log2_low(hb)} * wa) return true;
    u128 x = u128{ConsistentHash::neg_log2(ha)} * wb, y = u128{ConsistentHash::neg_log2(hb)} * wa;
    if (x != y) return x < y;
  }
  return ha != hb ? ha > hb : a < b;
}
}  // namespace

uint64_t ConsistentHash::neg_log2(uint64_t h) {
  const LogTables& t = kTables;
  constexpr uint64_t kFracMask = (uint64_t{1} << kFracBits) - 1;
  if (h >> 63) {
    // u >= 1/2: t = 1 - u (full precision near u = 1, where the winners are):
    // -log2(1 - t) = t * f(t), f increasing, so the product is non-decreasing in t.
    uint64_t d = ~h;  // t * 2^64, < 2^63
    uint32_t i = static_cast<uint32_t>(d >> 53);
    uint64_t fr = (d >> 33) & kFracMask;
    uint64_t f = t.f[i] + (((t.f[i + 1] - t.f[i]) * fr) >> kFracBits);
    uint64_t g = static_cast<uint64_t>((u128{d} * f) >> (64 + 30 - kLogBits));
    return std::min(g, kOne);
  }
  // u < 1/2: u = m 2^-(e+1), m in [1, 2): -log2(u) = e + 1 - log2(m). (h = 0: 2^-65.)
  if (h == 0) return 65 * kOne;
  int e = std::countl_zero(h);
  uint64_t m = h << e;
  uint32_t i = static_cast<uint32_t>(m >> 53) & ((1u << kIdxBits) - 1);
  uint64_t fr = (m >> 33) & kFracMask;
  uint64_t l = t.l[i] + (((t.l[i + 1] - t.l[i]) * fr) >> kFracBits);
  return std::max(uint64_t(e + 1) * kOne - l, kOne);
}

uint64_t ConsistentHash::slot_hash(uint64_t key, uint32_t slot) { return fmix64(key ^ salt(slot)); }

ConsistentHash::ConsistentHash(uint32_t table_size) : size_(std::max<uint32_t>(table_size, 1)) {}

void ConsistentHash::index_groups() {
  // Groups of equal weight, the heaviest in all first (its best is most often the slot's
  // owner, so the others are mostly rejected by the cheap bounds); within a group, in
  // sorted_ order, so that keys are ascending.
  std::vector<uint32_t> order(sorted_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t x, uint32_t y) { return sorted_[x].weight < sorted_[y].weight; });
  struct Group {
    uint64_t total;
    uint32_t weight, lo, hi;
  };
  std::vector<Group> groups;
  for (uint32_t k = 0; k < order.size(); ++k) {
    uint32_t w = sorted_[order[k]].weight;
    if (groups.empty() || groups.back().weight != w) groups.push_back({0, w, k, k});
    groups.back().total += w;
    groups.back().hi = k + 1;
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& x, const Group& y) {
    return x.total != y.total ? x.total > y.total : x.weight > y.weight;
  });
  group_keys_.clear();
  group_index_.clear();
  group_start_.clear();
  group_weight_.clear();
  for (const Group& g : groups) {
    group_start_.push_back(static_cast<uint32_t>(group_keys_.size()));
    group_weight_.push_back(g.weight);
    for (uint32_t k = g.lo; k < g.hi; ++k) {
      group_keys_.push_back(sorted_[order[k]].key);
      group_index_.push_back(order[k]);
    }
  }
  group_start_.push_back(static_cast<uint32_t>(group_keys_.size()));
  inverse_weight_.resize(sorted_.size());
  for (size_t i = 0; i < sorted_.size(); ++i) inverse_weight_[i] = 1.0 / sorted_[i].weight;
}

uint32_t ConsistentHash::best_by_group(uint32_t slot, uint64_t& best_hash) const {
  const uint64_t s = salt(slot);
  const uint64_t* keys = group_keys_.data();
  const size_t groups = group_weight_.size();
  // The member of group G whose hash is H: fmix64 is a bijection, so H tells the key;
  // the first of the group's (ascending) keys equal to it.
  auto member = [&](size_t g, uint64_t h) {
    uint64_t key = unfmix64(h) ^ s;
    const uint64_t* lo = keys + group_start_[g];
    const uint64_t* hi = keys + group_start_[g + 1];
    return group_index_[static_cast<size_t>(std::lower_bound(lo, hi, key) - keys)];
  };
  // Within a group (one weight) the best is the largest raw hash: neg_log2 never increases.
  uint64_t bh = max_hash(keys, group_start_[1], s);
  size_t bgroup = 0;
  if (groups > 1) {
    uint32_t bw = group_weight_[0];
    uint64_t bg = neg_log2(bh);
    for (size_t g = 1; g < groups; ++g) {
      uint64_t gh = max_hash(keys + group_start_[g], group_start_[g + 1] - group_start_[g], s);
      uint32_t gw = group_weight_[g];
      // Another weight: the smaller -log2(u) / weight wins (exactly), then the larger
      // raw hash, then sorted_ order (equal hashes: the same key with two weights).
      if (u128{neg_log2_low(gh)} * bw > u128{bg} * gw) continue;  // surely worse
      uint64_t gg = neg_log2(gh);
      u128 x = u128{gg} * bw, y = u128{bg} * gw;
      if (x > y || (x == y && (gh < bh || (gh == bh && member(g, gh) > member(bgroup, bh))))) continue;
      bh = gh, bg = gg, bw = gw, bgroup = g;
    }
  }
  best_hash = bh;
  return member(bgroup, bh);
}

uint32_t ConsistentHash::best_filtered(uint32_t slot, uint64_t& best_hash) const {
  // A lower bound of each member's -log2(u) in units of 2^-52, valid for every h:
  // above 1/2, neg_log2 >= d * f(0) / 2^42 - 1 with d = ~h and f(0) / 2^31 > 0.7213;
  // below, it is >= 1 (2^52). In doubles from min(d / 2, cap), less 2 for the roundings.
  // Divided by the weight, it bounds the score from below: a member whose bound exceeds
  // the best score so far (plus a margin for the doubles) cannot beat it.
  constexpr double kScale = 0.7213 / 1024;
  constexpr uint64_t kCap = static_cast<uint64_t>(static_cast<double>(kOne) / kScale);  // -> 2^52
  const uint64_t s = salt(slot);
  const size_t n = sorted_.size();
  const double* inv = inverse_weight_.data();
  uint64_t bh = 0;
  uint32_t bw = 0, bi = kNone;
  double limit = HUGE_VAL;
  for (uint32_t j = 0; j < n; ++j) {
    uint64_t h = fmix64(sorted_[j].key ^ s);
    double bound = (kScale * static_cast<double>(static_cast<int64_t>(std::min(~h >> 1, kCap))) - 2) * inv[j];
    if (bound > limit) continue;  // the common case, once a good member is known
    uint32_t w = sorted_[j].weight;
    if (bi != kNone && !better(h, w, j, bh, bw, bi)) continue;
    bh = h, bw = w, bi = j;
    limit = static_cast<double>(neg_log2(h)) / w * (1 + 1e-9) + 1e-9;
  }
  best_hash = bh;
  return bi;
}

uint32_t ConsistentHash::best_of(uint32_t slot, uint64_t& best_hash) const {
  // Both are exact (the same owner); grouping is faster when the groups are large.
  return group_weight_.size() == 1 || group_weight_.size() * 8 <= sorted_.size() ? best_by_group(slot, best_hash)
                                                                                 : best_filtered(slot, best_hash);
}

void ConsistentHash::build_full() {
  table_.assign(size_, 0);
  best_.assign(size_, 0);
  for (uint32_t s = 0; s < size_; ++s) table_[s] = best_of(s, best_[s]);
}

double ConsistentHash::rebuild(std::span<Backend* const> members) {
  bool first = !built_;
  built_ = true;
  if (!members_.update(members)) return 0;

  // The new members in a fixed order: by address hash (ties: a second hash, then weight).
  std::vector<Member> next;
  next.reserve(members.size());
  for (Backend* b : members)
    next.push_back({hash_backend(b->config.address), hash_backend(b->config.address, kTieSeed),
                    static_cast<uint32_t>(std::max(b->base_weight(), 1)), b});
  auto before = [](const Member& x, const Member& y) {
    if (x.key != y.key) return x.key < y.key;
    if (x.key2 != y.key2) return x.key2 < y.key2;
    return x.weight < y.weight;
  };
  std::sort(next.begin(), next.end(), before);

  // Match the old members: REMAP[old index] = new index, or kNone (removed).
  std::vector<uint32_t> remap(sorted_.size(), kNone);
  std::vector<uint32_t> added;
  size_t kept = 0;
  for (size_t i = 0, j = 0; j < next.size(); ++j) {
    while (i < sorted_.size() && before(sorted_[i], next[j])) ++i;
    if (i < sorted_.size() && !before(next[j], sorted_[i])) {
      remap[i++] = static_cast<uint32_t>(j);
      ++kept;
    } else {
      added.push_back(static_cast<uint32_t>(j));
    }
  }
  size_t removed = sorted_.size() - kept;
  bool incremental = allow_incremental_ && !table_.empty() && !next.empty() &&
                     (removed + added.size()) * 2 <= std::max(next.size(), size_t{2});

  std::vector<Member> old = std::move(sorted_);
  std::vector<uint32_t> old_table = table_;  // for the moved fraction
  sorted_ = std::move(next);
  index_groups();
  incremental_ = incremental;

  if (sorted_.empty()) {
    table_.clear();
    best_.clear();
  } else if (!incremental) {
    build_full();
  } else {
    for (uint32_t s = 0; s < size_; ++s) {
      uint32_t o = remap[table_[s]];
      if (o == kNone) {  // its owner left: the best of the new set (the added included)
        table_[s] = best_of(s, best_[s]);
        continue;
      }
      uint64_t bh = best_[s];
      uint32_t bw = sorted_[o].weight;
      if (!added.empty()) {
        uint64_t sl = salt(s);
        for (uint32_t a : added) {
          uint64_t h = fmix64(sorted_[a].key ^ sl);
          if (better(h, sorted_[a].weight, a, bh, bw, o)) bh = h, bw = sorted_[a].weight, o = a;
        }
      }
      table_[s] = o;
      best_[s] = bh;
    }
  }

  double moved = 0;
  if (!first) {
    if (table_.empty() != old_table.empty()) {
      moved = 1;
    } else if (!table_.empty()) {
      size_t changed = 0;
      for (size_t s = 0; s < table_.size(); ++s) changed += old[old_table[s]].key != sorted_[table_[s]].key;
      moved = static_cast<double>(changed) / static_cast<double>(table_.size());
    }
  }
  return moved;
}

Backend* ConsistentHash::pick(const PickContext& ctx, const PickFilter& filter) {
  if (table_.empty()) return nullptr;
  uint64_t h = hash_client(ctx.client);
  uint32_t slot = static_cast<uint32_t>(h % size_);
  for (size_t i = 0; i < kWalk; ++i) {
    Backend* b = sorted_[table_[slot]].backend;
    if (filter.ok(b)) return b;
    if (++slot == size_) slot = 0;
  }
  size_t n = sorted_.size();
  for (size_t i = 0, k = h % n; i < n; ++i, k = k + 1 == n ? 0 : k + 1)
    if (filter.ok(sorted_[k].backend)) return sorted_[k].backend;
  return nullptr;
}

size_t ConsistentHash::slots_of(const Backend* b) const {
  size_t count = 0;
  for (uint32_t i : table_) count += sorted_[i].backend == b;
  return count;
}

}  // namespace l4lb
