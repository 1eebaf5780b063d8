// The algorithms behind Selector, one class each (src/selectors/<name>.cpp).
// Every pick is O(1) or O(log n) in the common case; each falls back to a bounded
// walk and then one linear pass only when its first choice is unavailable or tried.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "l4lb/balance/selector.hpp"

namespace l4lb {

// The member list a selector was last built from, to tell a real membership or
// weight change from a refresh that changed nothing.
// Which of a backend's weights an algorithm selects by (Backend "In force").
enum class WeightOf {
  Share,  // base weight x slow start ramp: the weighted algorithms
  Ramp,   // slow start ramp alone: round_robin, least_connections (equal when none runs)
  Base,   // override or file weight, never slow start: the hash algorithms
};

class Members {
 public:
  explicit Members(WeightOf of = WeightOf::Share) : of_(of) {}
  // True (and remembers MEMBERS) when they differ from the last call's.
  bool update(std::span<Backend* const> members);
  const std::vector<Backend*>& list() const { return list_; }
  const std::vector<int>& weights() const { return weights_; }
  size_t size() const { return list_.size(); }

 private:
  int weight_of(const Backend* b) const;
  WeightOf of_;
  std::vector<Backend*> list_;
  std::vector<int> weights_;
};

// round_robin: the next member in config order; weights are ignored.
class RoundRobin final : public Selector {
 public:
  Algorithm algorithm() const override { return Algorithm::RoundRobin; }
  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;

 private:
  Members members_{WeightOf::Ramp};
  size_t next_ = 0;  // < members_.size() (or 0)
  // While slow start runs for a member (ramps differ): a smooth weighted schedule of the
  // ramps, as weighted_round_robin's, and the position in it; empty otherwise.
  std::vector<uint32_t> schedule_;
  size_t pos_ = 0;
};

// weighted_round_robin: nginx's smooth weighted round robin, precomputed. rebuild()
// writes one period of the sequence (sum of weights / their gcd picks) into a
// schedule; a pick is the next schedule entry. 5:1:1 gives a a b a c a a.
class WeightedRoundRobin final : public Selector {
 public:
  Algorithm algorithm() const override { return Algorithm::WeightedRoundRobin; }
  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;

  // One period of the smooth sequence for WEIGHTS (indexes into WEIGHTS). Exactly
  // nginx's order when (distinct weights) x (period) <= kExactBudget; beyond that
  // (e.g. 1,000 backends with 600 distinct weights) an earliest-deadline order with
  // midpoint deadlines, which has the same counts and is as smooth, but may order
  // ties differently.
  static std::vector<uint32_t> schedule(const std::vector<int>& weights);
  static constexpr uint64_t kExactBudget = uint64_t{1} << 23;
  static constexpr uint64_t kMaxPeriod = uint64_t{1} << 22;  // longer: weights scaled down

 private:
  Members members_;
  std::vector<uint32_t> schedule_;
  size_t pos_ = 0;
};

// least_connections and weighted_least_connections: an indexed binary min-heap of the
// members keyed on live (or live/weight, compared exactly as live_a*w_b < live_b*w_a),
// ties to the member picked least recently, so equal loads rotate. Lease reports each
// count change (LoadObserver) and the entry moves up or down: O(log n) per change,
// the best member is the root.
class LoadHeap : public Selector, public LoadObserver {
 public:
  explicit LoadHeap(bool weighted)
      : weighted_(weighted), members_(weighted ? WeightOf::Share : WeightOf::Ramp) {}
  ~LoadHeap() override;
  LoadHeap(const LoadHeap&) = delete;
  LoadHeap& operator=(const LoadHeap&) = delete;

  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;
  void load_changed(Backend& b) override;

 private:
  struct Entry {
    uint64_t last_pick;  // ties go to the smallest: the least recently picked
    uint32_t live;       // the count the entry is keyed on (follows Backend::live)
    uint32_t weight;     // 1 when not weighted
    uint32_t member;     // index in members_ (and Backend::load_slot)
    uint32_t ramp;       // Backend::ramp() at the rebuild: slow start's progress
  };
  // Lower load first; on equal load a member in slow start gives way to one further along,
  // then the least recently picked. Unweighted, the load is (live + 1) / ramp: the same
  // order as live while no slow start runs (equal ramps), and while one runs a member at
  // ramp r takes about r / kRampSteps of a full member's share even at a few connections
  // (live / ramp would put every idle member first, whatever its ramp).
  bool before(const Entry& x, const Entry& y) const {
    const uint64_t one = weighted_ ? 0 : 1;
    uint64_t lx = (x.live + one) * y.weight, ly = (y.live + one) * x.weight;
    if (lx != ly) return lx < ly;
    if (x.ramp != y.ramp) return x.ramp > y.ramp;
    return x.last_pick < y.last_pick;
  }
  Backend* backend_at(size_t pos) const { return members_.list()[heap_[pos].member]; }
  void put(size_t pos, const Entry& e) {
    heap_[pos] = e;
    pos_[e.member] = static_cast<uint32_t>(pos);
  }
  void sift_up(size_t pos);
  void sift_down(size_t pos);
  void resync(size_t pos);  // re-read the live count at POS and move the entry
  Backend* choose(size_t pos);

  bool weighted_;
  Members members_;
  std::vector<Entry> heap_;
  std::vector<uint32_t> pos_;       // heap position of each member
  std::vector<uint32_t> frontier_;  // scratch for the bounded best-first search
  uint64_t clock_ = 0;
};

class LeastConnections final : public LoadHeap {
 public:
  LeastConnections() : LoadHeap(false) {}
  Algorithm algorithm() const override { return Algorithm::LeastConnections; }
};

class WeightedLeastConnections final : public LoadHeap {
 public:
  WeightedLeastConnections() : LoadHeap(true) {}
  Algorithm algorithm() const override { return Algorithm::WeightedLeastConnections; }
};

// random: in proportion to weight over the available members, as nginx's random (an
// unavailable draw is redrawn).
class Random final : public Selector {
 public:
  explicit Random(uint64_t seed);
  Algorithm algorithm() const override { return Algorithm::Random; }
  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;

 private:
  uint64_t next();          // splitmix64
  size_t below(size_t n);   // uniform in [0, n)
  Members members_;
  std::vector<size_t> cumulative_;  // running sums of the members' weights
  uint64_t state_;
};

// ip_hash: hash(client IP) mod the number of members; the same client gets the same
// backend while the set of available members is unchanged. An unavailable choice is
// rehashed (same result for every client that hashes alike), then walked.
class IpHash final : public Selector {
 public:
  Algorithm algorithm() const override { return Algorithm::IpHash; }
  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;

 private:
  Members members_{WeightOf::Base};
};

// consistent_hash: a table of prime size whose every slot belongs to the member with
// the best weighted rendezvous (HRW) score for that slot: the smallest -log2(u)/weight,
// u from a fixed hash of (hash of the member's address, slot). So a slot's owner depends
// only on the set of (address, weight): removing a member hands only its own slots to
// others, adding it back restores the table exactly, and the order of the members (in
// the file, or in the table's arrays) does not matter. A member holds weight / total of
// the slots on average (a binomial draw per slot). Full build: O(size x members) hashes;
// a change of a few members (one backend up/down, a weight change) is applied in
// O(size x changed members), with the same result as a full build.
// A pick is table[hash(client) mod size]; an unavailable or tried choice walks the
// following slots (bounded), then the members.
class ConsistentHash final : public Selector {
 public:
  static constexpr uint32_t kDefaultTableSize = 65537;
  // TABLE_SIZE: the number of slots (> 0; a prime larger than the number of members).
  explicit ConsistentHash(uint32_t table_size = kDefaultTableSize);
  Algorithm algorithm() const override { return Algorithm::ConsistentHash; }
  double rebuild(std::span<Backend* const> members) override;
  Backend* pick(const PickContext& ctx, const PickFilter& filter) override;

  // For tests and benchmarks.
  size_t slots_of(const Backend* b) const;  // how many slots map to B
  uint32_t table_size() const { return size_; }
  Backend* owner(uint32_t slot) const {      // nullptr when there is no member
    return table_.empty() ? nullptr : sorted_[table_[slot]].backend;
  }
  // Whether the last rebuild that changed the members applied the change in place.
  bool last_incremental() const { return incremental_; }
  // False: every change is a full build (to compare the two, and to time them).
  void set_incremental(bool on) { allow_incremental_ = on; }
  // The HRW score's -log2(u), u = h / 2^64, in units of 2^-kLogBits: fixed-point,
  // integer-only (the same on every machine), non-increasing in H, to ~1e-7 relative
  // for 2^-32 <= u <= 1 - 2^-32 (u = 0 counts as 2^-65).
  static constexpr int kLogBits = 52;
  static uint64_t neg_log2(uint64_t h);
  // The raw 64-bit score of the member whose address hashes to KEY for SLOT.
  static uint64_t slot_hash(uint64_t key, uint32_t slot);

 private:
  struct Member {
    uint64_t key;     // hash_backend(address): the score's input
    uint64_t key2;    // hash_backend(address, other seed): order among equal keys
    uint32_t weight;  // >= 1
    Backend* backend;
  };
  void build_full();
  void index_groups();
  // The owner of SLOT among all of sorted_, and its raw hash.
  uint32_t best_of(uint32_t slot, uint64_t& best_hash) const;
  uint32_t best_by_group(uint32_t slot, uint64_t& best_hash) const;  // few distinct weights
  uint32_t best_filtered(uint32_t slot, uint64_t& best_hash) const;  // many

  uint32_t size_;
  bool built_ = false;
  bool incremental_ = false;
  bool allow_incremental_ = true;
  Members members_{WeightOf::Base};             // in config order: to detect changes
  std::vector<Member> sorted_;      // by (key, key2, weight): table entries index this
  // sorted_ grouped by weight (equal weights compare by raw hash, no logarithm):
  std::vector<uint64_t> group_keys_;    // keys, group after group
  std::vector<uint32_t> group_index_;   // the sorted_ index of each
  std::vector<uint32_t> group_start_;   // groups + 1 offsets into the two above
  std::vector<uint32_t> group_weight_;
  // Many distinct weights: a cheap lower bound of each member's score, and the exact
  // comparison only where that bound can beat the best so far.
  std::vector<double> inverse_weight_;  // 1 / weight of each sorted_ member
  std::vector<uint32_t> table_;     // size_ entries (owner index), or empty when no member
  std::vector<uint64_t> best_;      // size_ entries: the owner's raw score for the slot
};

}  // namespace l4lb
