// Per-source limits: sharded tables of client addresses, each entry an open count and a
// token bucket; a shard's lock is held for O(1) work (see the header for the design).
#include "l4lb/balance/source_limits.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <vector>

#include "l4lb/base/hash.hpp"

namespace l4lb {

// ---- keys ----------------------------------------------------------------------------------

bool source_key(const Address& client, int ipv6_prefix, SourceKey& key) {
  std::array<uint8_t, 16> b{};
  if (client.family() == AF_INET) {
    b[10] = b[11] = 0xFF;  // ::ffff:a.b.c.d
    std::memcpy(b.data() + 12, &reinterpret_cast<const sockaddr_in*>(&client.storage)->sin_addr, 4);
  } else if (client.family() == AF_INET6) {
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(&client.storage)->sin6_addr, 16);
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(b.data(), kMapped, sizeof kMapped) != 0) {  // not IPv4-mapped: truncate
      const int prefix = std::clamp(ipv6_prefix, 1, 128);
      for (int i = 0; i < 16; ++i) {
        const int keep = std::clamp(prefix - 8 * i, 0, 8);
        b[i] &= static_cast<uint8_t>(0xFF00 >> keep);
      }
    }
  } else {
    return false;
  }
  std::memcpy(&key.hi, b.data(), 8);
  std::memcpy(&key.lo, b.data() + 8, 8);
  return true;
}

const char* reason_name(SourceReject r) {
  switch (r) {
    case SourceReject::Limit: return "source_limit";
    case SourceReject::Rate: return "source_rate";
    case SourceReject::None: break;
  }
  return "";
}

// ---- a shard -------------------------------------------------------------------------------

namespace {

constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMaxChunk = 1024;       // entries allocated at a time (48 KiB)
constexpr uint32_t kFirstBuckets = 16;
constexpr size_t kAddressesPerAutoShard = 4096;
constexpr size_t kMaxCapacity = size_t{1} << 31;
// A token is there when the bucket holds at least this (refills are sums of products of
// time and rate: 0.1 s at 10/s may come out a hair under 1).
constexpr double kOneToken = 1.0 - 1e-9;

struct Entry {
  uint64_t hi, lo;  // the SourceKey
  double tokens;    // +inf while the rate is 0: full at the first use under a rate
  double stamp;     // NOW when the tokens were last refilled
  uint32_t open;    // open connections; in the LRU list exactly when 0
  uint32_t chain;   // next in its hash bucket, or in the free list
  uint32_t prev, next;  // LRU list of idle entries: prev is newer, next older
};
static_assert(sizeof(Entry) == 48);

double burst_of(double rate) { return std::max(rate, 1.0); }

}  // namespace

struct alignas(64) SourceLimits::Shard {
  std::mutex mu;
  uint32_t capacity = 0;  // entries at most
  uint32_t chunk_shift = 0;
  std::vector<std::unique_ptr<Entry[]>> chunks;  // never moved once allocated
  uint32_t used = 0;                             // slots handed out: entries + free list
  uint32_t free_head = kNil;
  std::atomic<uint32_t> live{0};  // entries in the table (written under mu)
  std::vector<uint32_t> buckets;  // heads of the chains; a power of two
  uint32_t max_buckets = 0;
  uint32_t newest = kNil, oldest = kNil;  // the LRU list of idle entries
  Counter evicted, untracked;             // written under mu only

  Entry& at(uint32_t i) { return chunks[i >> chunk_shift][i & ((1u << chunk_shift) - 1)]; }
  const Entry& at(uint32_t i) const {
    return chunks[i >> chunk_shift][i & ((1u << chunk_shift) - 1)];
  }
  uint32_t& bucket(uint64_t h) { return buckets[h & (buckets.size() - 1)]; }

  uint32_t find(const SourceKey& k, uint64_t h) const {
    for (uint32_t i = buckets[h & (buckets.size() - 1)]; i != kNil; i = at(i).chain)
      if (at(i).hi == k.hi && at(i).lo == k.lo) return i;
    return kNil;
  }
  void chain_in(uint32_t i, uint64_t h) {
    uint32_t& head = bucket(h);
    at(i).chain = head;
    head = i;
  }
  void unchain(uint32_t i, uint64_t h) {
    uint32_t* link = &bucket(h);
    while (*link != i) link = &at(*link).chain;
    *link = at(i).chain;
  }
  void lru_push_newest(uint32_t i) {
    Entry& e = at(i);
    e.prev = kNil;
    e.next = newest;
    if (newest != kNil) at(newest).prev = i;
    else oldest = i;
    newest = i;
  }
  void lru_unlink(uint32_t i) {
    Entry& e = at(i);
    if (e.prev != kNil) at(e.prev).next = e.next;
    else newest = e.next;
    if (e.next != kNil) at(e.next).prev = e.prev;
    else oldest = e.prev;
    e.prev = e.next = kNil;
  }
  void set_live(uint32_t n) { live.store(n, std::memory_order_relaxed); }
};

// ---- the table -----------------------------------------------------------------------------

SourceLimits::SourceLimits(const SourceLimitsConfig& config, const Options& options) {
  capacity_ = std::clamp<size_t>(options.capacity, 1, kMaxCapacity);
  size_t n = 1;
  if (options.shards == 0) {
    while (n * 2 <= kMaxShards && n * 2 * kAddressesPerAutoShard <= capacity_) n *= 2;
  } else {
    n = std::bit_floor(std::min({options.shards, kMaxShards, capacity_}));
  }
  nshards_ = n;
  shard_shift_ = 64 - std::countr_zero(n);
  seed_ = options.seed;
  if (seed_ == 0) {
    std::random_device rd;
    seed_ = (uint64_t{rd()} << 32) ^ rd() ^ 0x9e3779b97f4a7c15ull;
  }
  shards_ = std::make_unique<Shard[]>(n);
  for (size_t i = 0; i < n; ++i) {
    Shard& s = shards_[i];
    s.capacity = static_cast<uint32_t>(capacity_ / n + (i < capacity_ % n ? 1 : 0));
    const uint32_t top = std::bit_ceil(s.capacity);
    s.chunk_shift = static_cast<uint32_t>(std::countr_zero(std::min(top, kMaxChunk)));
    s.max_buckets = top;
    s.buckets.assign(std::min(top, kFirstBuckets), kNil);
  }
  reconfigure(config);
}

SourceLimits::~SourceLimits() = default;

void SourceLimits::reconfigure(const SourceLimitsConfig& config) {
  max_connections_.store(config.max_connections, std::memory_order_relaxed);
  rate_.store(config.rate > 0 ? config.rate : 0, std::memory_order_relaxed);
  ipv6_prefix_.store(std::clamp(config.ipv6_prefix, 1, 128), std::memory_order_relaxed);
}

SourceLimitsConfig SourceLimits::config() const {
  return {max_connections_.load(std::memory_order_relaxed), rate_.load(std::memory_order_relaxed),
          ipv6_prefix_.load(std::memory_order_relaxed)};
}

uint64_t SourceLimits::hash(const SourceKey& key) const {
  return fmix64(fmix64(key.hi ^ seed_) ^ key.lo);
}

SourceLimits::Shard& SourceLimits::shard_of(uint64_t h) const {
  return shards_[nshards_ == 1 ? 0 : static_cast<size_t>(h >> shard_shift_)];
}

SourceVerdict SourceLimits::admit(const Address& client, double now) {
  if (max_connections_.load(std::memory_order_relaxed) == 0 &&
      rate_.load(std::memory_order_relaxed) == 0)
    return {};  // nothing to count: skip the key and the lock
  SourceKey key;
  if (!source_key(client, ipv6_prefix(), key)) return {};
  return admit(key, now);
}

SourceVerdict SourceLimits::admit(const SourceKey& key, double now) {
  const uint32_t max = max_connections_.load(std::memory_order_relaxed);
  const double rate = rate_.load(std::memory_order_relaxed);
  if (max == 0 && rate == 0) return {};
  const uint64_t h = hash(key);
  const uint32_t shard_index = nshards_ == 1 ? 0 : static_cast<uint32_t>(h >> shard_shift_);
  Shard& s = shards_[shard_index];
  std::lock_guard lock(s.mu);

  uint32_t i = s.find(key, h);
  if (i != kNil) {
    Entry& e = s.at(i);
    if (rate > 0) {  // refill; a NOW behind the stamp (another worker's older reading) adds none
      if (now > e.stamp) {
        e.tokens += (now - e.stamp) * rate;
        e.stamp = now;
      }
      e.tokens = std::min(e.tokens, burst_of(rate));
    }
    SourceReject reject = SourceReject::None;
    if (max != 0 && e.open >= max)
      reject = SourceReject::Limit;
    else if (rate > 0 && e.tokens < kOneToken)
      reject = SourceReject::Rate;
    if (reject != SourceReject::None) {
      if (e.open == 0) {  // seen: the newest idle entry now (keeps its empty bucket longest)
        s.lru_unlink(i);
        s.lru_push_newest(i);
      }
      return {reject, {}};
    }
    if (e.open == 0) s.lru_unlink(i);
  } else {
    // A new address: a free slot, a new one, or the least recently seen idle entry's.
    if (s.free_head != kNil) {
      i = s.free_head;
      s.free_head = s.at(i).chain;
    } else if (s.used < s.capacity) {
      i = s.used++;
      const uint32_t chunk = i >> s.chunk_shift;
      if (chunk == s.chunks.size())
        s.chunks.push_back(std::make_unique<Entry[]>(size_t{1} << s.chunk_shift));
    } else if (s.oldest != kNil) {
      i = s.oldest;
      Entry& old = s.at(i);
      s.lru_unlink(i);
      s.unchain(i, hash(SourceKey{old.hi, old.lo}));
      s.set_live(s.live.load(std::memory_order_relaxed) - 1);
      s.evicted.add(1);
    } else {
      s.untracked.add(1);  // every entry holds open connections: admit, uncounted
      return {};
    }
    // At most one entry per bucket on average: double while below the shard's top size.
    const uint32_t live = s.live.load(std::memory_order_relaxed) + 1;
    if (live > s.buckets.size() && s.buckets.size() < s.max_buckets) {
      std::vector<uint32_t> old(s.buckets.size() * 2, kNil);
      old.swap(s.buckets);
      for (uint32_t head : old)
        for (uint32_t j = head; j != kNil;) {
          const uint32_t next = s.at(j).chain;
          s.chain_in(j, hash(SourceKey{s.at(j).hi, s.at(j).lo}));
          j = next;
        }
    }
    Entry& e = s.at(i);
    e = Entry{key.hi, key.lo, rate > 0 ? burst_of(rate) : std::numeric_limits<double>::infinity(),
              now, 0, kNil, kNil, kNil};
    s.chain_in(i, h);
    s.set_live(live);
  }
  Entry& e = s.at(i);
  if (rate > 0) e.tokens -= 1;
  ++e.open;
  return {SourceReject::None, SourceSeat(this, shard_index, i)};
}

void SourceLimits::release(uint32_t shard, uint32_t index) {
  const bool forget = rate_.load(std::memory_order_relaxed) == 0;
  Shard& s = shards_[shard];
  std::lock_guard lock(s.mu);
  Entry& e = s.at(index);
  if (--e.open != 0) return;
  if (forget) {  // no rate: an idle entry holds nothing worth keeping
    s.unchain(index, hash(SourceKey{e.hi, e.lo}));
    e.chain = s.free_head;
    s.free_head = index;
    s.set_live(s.live.load(std::memory_order_relaxed) - 1);
  } else {
    s.lru_push_newest(index);
  }
}

uint64_t SourceLimits::evicted() const {
  uint64_t n = 0;
  for (size_t i = 0; i < nshards_; ++i) n += shards_[i].evicted.get();
  return n;
}

uint64_t SourceLimits::untracked() const {
  uint64_t n = 0;
  for (size_t i = 0; i < nshards_; ++i) n += shards_[i].untracked.get();
  return n;
}

size_t SourceLimits::tracked() const {
  size_t n = 0;
  for (size_t i = 0; i < nshards_; ++i) n += shards_[i].live.load(std::memory_order_relaxed);
  return n;
}

uint32_t SourceLimits::open_connections(const Address& client) const {
  SourceKey key;
  if (!source_key(client, ipv6_prefix(), key)) return 0;
  const uint64_t h = hash(key);
  Shard& s = shard_of(h);
  std::lock_guard lock(s.mu);
  const uint32_t i = s.find(key, h);
  return i == kNil ? 0 : s.at(i).open;
}

double SourceLimits::tokens(const Address& client) const {
  const double rate = rate_.load(std::memory_order_relaxed);
  SourceKey key;
  if (!source_key(client, ipv6_prefix(), key)) return burst_of(rate);
  const uint64_t h = hash(key);
  Shard& s = shard_of(h);
  std::lock_guard lock(s.mu);
  const uint32_t i = s.find(key, h);
  return i == kNil ? burst_of(rate) : std::min(s.at(i).tokens, burst_of(rate));
}

}  // namespace l4lb
