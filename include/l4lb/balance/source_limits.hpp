// Per-source admission: a service's allow/deny lists (AccessList) and its per_source limits
// (SourceLimits: open connections and a token bucket per client address, IPv6 per prefix).
//
// SourceLimits is shared by every data worker of its service. It follows the rule of
// balance/admission.hpp: the check against a limit and the +1 (or the token taken) are one
// step, under the lock of the address's shard, so no number of workers can take an address
// past max_connections even for an instant; the -1 comes with the SourceSeat's destructor.
// It is the only writer of a client address's count.
//
// Cost and memory: an address is kept in one of up to 64 shards (chosen by a seeded hash of
// its key), each with a mutex, a chained hash table and an LRU list of its idle entries; a
// lock is held for O(1) work (a lookup, perhaps an eviction or an insert; a shard's table
// doubles now and then while it grows, never past its share of CAPACITY, and never shrinks).
// An entry takes 48 bytes, plus 4-8 bytes of hash buckets: at the default capacity of
// 1,000,000 addresses that is at most ~52 MB for a service, allocated as addresses arrive
// (an empty table takes ~20 KB). Measured: ~70-120 ns for an admission and its release with up
// to 50,000 addresses known, most of it two uncontended lock/unlock pairs.
//
// Forgetting: at capacity, a new address takes the place of the least recently seen IDLE
// entry (no open connection), counted in evicted(). An entry that holds open connections is
// never forgotten (its count would break). If a shard holds only busy entries, a new address
// is admitted without tracking (no limit applies to it until room frees up), counted in
// untracked(): tracking is bounded memory, not a connection limit of its own, and the
// connections that can be open at once are bounded already (global and service
// max_connections). With capacity >= global.max_connections it cannot happen, up to the
// unevenness of the hash across shards (capacity/64 per shard against 65,536 connections:
// 15,625 per shard against ~1,024 on average).
//
// With rate 0, an entry whose last connection ends is dropped at once (it holds nothing then),
// so the table holds only addresses with open connections; with a rate, an idle entry keeps its
// bucket until it is evicted. With max_connections and rate both 0, nothing is tracked: admit()
// is a few loads, no lock.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "l4lb/base/address.hpp"
#include "l4lb/base/cidr.hpp"
#include "l4lb/base/counters.hpp"

namespace l4lb {

// ---- allow / deny --------------------------------------------------------------------------

enum class AccessVerdict { Ok, Denied };

// A service's allow and deny lists: deny wins over allow; an empty allow list lets everyone in.
// Pure and immutable once built (shared by workers without a lock); IPv4-mapped IPv6 clients
// match as their IPv4 address (CidrSet).
class AccessList {
 public:
  AccessList() = default;  // lets everyone in
  AccessList(CidrSet allow, CidrSet deny) : allow_(std::move(allow)), deny_(std::move(deny)) {}
  AccessVerdict check(const Address& client) const {
    if (deny_.contains(client)) return AccessVerdict::Denied;
    if (!allow_.empty() && !allow_.contains(client)) return AccessVerdict::Denied;
    return AccessVerdict::Ok;
  }
  bool lets_everyone_in() const { return allow_.empty() && deny_.empty(); }
  const CidrSet& allow() const { return allow_; }
  const CidrSet& deny() const { return deny_; }
  friend bool operator==(const AccessList& a, const AccessList& b) {
    return a.allow_ == b.allow_ && a.deny_ == b.deny_;
  }

 private:
  CidrSet allow_, deny_;
};

// ---- per-source limits ---------------------------------------------------------------------

// What a client is counted as: an IPv4 address as it is; an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) as that IPv4 address; any other IPv6 address truncated to IPV6_PREFIX bits.
// Held as 16 bytes in network order, an IPv4 address in its IPv4-mapped form: a truncated
// non-mapped IPv6 prefix never has the ::ffff:0:0/96 form, so the two cannot meet.
struct SourceKey {
  uint64_t hi = 0, lo = 0;  // bytes 0-7 and 8-15 of the address, in memory order
  friend bool operator==(const SourceKey&, const SourceKey&) = default;
};

// False (KEY untouched) for an address that is neither IPv4 nor IPv6. IPV6_PREFIX is
// clamped to 1..128.
bool source_key(const Address& client, int ipv6_prefix, SourceKey& key);

struct SourceLimitsConfig {
  uint32_t max_connections = 0;  // open connections per source; 0 = unlimited
  double rate = 0;               // new connections per second per source; 0 = unlimited.
                                 // The bucket holds max(rate, 1) tokens (a rate below 1/s
                                 // still lets one connection through every 1/rate s).
  int ipv6_prefix = 64;          // 1..128 (clamped)
};

enum class SourceReject : uint8_t {
  None,
  Limit,  // open connections >= max_connections: "source_limit"
  Rate,   // no token in the bucket: "source_rate"
};
// "source_limit", "source_rate" (the /stats and metrics reason), "" for None.
const char* reason_name(SourceReject r);

class SourceLimits;

// An admitted client's place under its address's max_connections: the address's open count
// is -1 when it is destroyed (or reset()). Movable, not copyable. Empty when the client was
// admitted without being counted (limits off, table full of busy entries, not an IP).
// The SourceLimits it came from must outlive it (keep the SourceLimits in the Service, which
// sessions keep alive, and destroy the seat before the session's reference to the Service).
class SourceSeat {
 public:
  SourceSeat() = default;
  SourceSeat(SourceSeat&& o) noexcept
      : table_(std::exchange(o.table_, nullptr)), shard_(o.shard_), index_(o.index_) {}
  SourceSeat& operator=(SourceSeat&& o) noexcept {
    if (this != &o) {
      reset();
      table_ = std::exchange(o.table_, nullptr);
      shard_ = o.shard_;
      index_ = o.index_;
    }
    return *this;
  }
  SourceSeat(const SourceSeat&) = delete;
  SourceSeat& operator=(const SourceSeat&) = delete;
  ~SourceSeat() { reset(); }
  explicit operator bool() const { return table_ != nullptr; }
  // Gives the place back now (also done by the destructor).
  inline void reset();

 private:
  friend class SourceLimits;
  SourceSeat(SourceLimits* table, uint32_t shard, uint32_t index)
      : table_(table), shard_(shard), index_(index) {}
  SourceLimits* table_ = nullptr;
  uint32_t shard_ = 0, index_ = 0;
};

// The answer of SourceLimits::admit(): admitted (holding SEAT, perhaps empty) or rejected
// with a reason (then nothing was taken: no place, no token).
struct SourceVerdict {
  SourceReject reject = SourceReject::None;
  SourceSeat seat;
  bool ok() const { return reject == SourceReject::None; }
  explicit operator bool() const { return ok(); }
};

class SourceLimits {
 public:
  static constexpr size_t kDefaultCapacity = 1'000'000;
  static constexpr size_t kMaxShards = 64;

  struct Options {
    size_t capacity = kDefaultCapacity;  // addresses tracked at most, over all shards (>= 1)
    size_t shards = 0;  // 0 = by capacity: one per 4,096 addresses, a power of two, 1..64.
                        // Otherwise rounded down to a power of two, 1..64, at most capacity.
    uint64_t seed = 0;  // hash seed; 0 = a random one (so clients cannot aim at one chain)
  };

  explicit SourceLimits(const SourceLimitsConfig& config) : SourceLimits(config, Options{}) {}
  SourceLimits(const SourceLimitsConfig& config, const Options& options);
  ~SourceLimits();
  SourceLimits(const SourceLimits&) = delete;
  SourceLimits& operator=(const SourceLimits&) = delete;

  // Admits CLIENT at NOW (seconds on a clock that does not jump, e.g. monotonic_usec()/1e6;
  // a NOW earlier than one already seen for the address counts as no time passing), or
  // rejects it: Limit when its address holds max_connections open ones, else Rate when its
  // bucket has no token. Admitted: one token is taken and the open count is +1 until the
  // seat is destroyed. Thread-safe; O(1).
  SourceVerdict admit(const Address& client, double now);
  // The same for a key made by source_key() (with this table's ipv6_prefix()).
  SourceVerdict admit(const SourceKey& key, double now);

  // New limits for a reload; entries, their open counts and tokens are kept (a bucket above
  // a lower new rate is cut down at its next use). Thread-safe, O(1), no lock.
  // Caveats: connections admitted while both limits were 0 were not counted, so they do not
  // count after a change to limits either; a new ipv6_prefix groups IPv6 clients afresh
  // (open IPv6 connections stay counted, and released, under their old prefix).
  void reconfigure(const SourceLimitsConfig& config);
  SourceLimitsConfig config() const;
  int ipv6_prefix() const { return ipv6_prefix_.load(std::memory_order_relaxed); }

  // For metrics (relaxed reads, exact once the table is still).
  uint64_t evicted() const;    // idle entries forgotten to make room for a new address
  uint64_t untracked() const;  // admitted without tracking: its shard held only busy entries
  size_t tracked() const;      // entries held now
  size_t capacity() const { return capacity_; }
  size_t shards() const { return nshards_; }

  // The open count of the address of CLIENT (0 when not tracked). For tests and debugging.
  uint32_t open_connections(const Address& client) const;
  // The tokens of CLIENT's bucket as last refilled (a full max(rate, 1) if not tracked). For tests.
  double tokens(const Address& client) const;

 private:
  friend class SourceSeat;
  struct Shard;
  void release(uint32_t shard, uint32_t index);
  uint64_t hash(const SourceKey& key) const;
  Shard& shard_of(uint64_t h) const;

  size_t capacity_;
  size_t nshards_;
  int shard_shift_;  // h >> shard_shift_ picks the shard (64 when there is one)
  uint64_t seed_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint32_t> max_connections_{0};
  std::atomic<double> rate_{0};
  std::atomic<int> ipv6_prefix_{64};
};

inline void SourceSeat::reset() {
  if (table_) std::exchange(table_, nullptr)->release(shard_, index_);
}

}  // namespace l4lb
