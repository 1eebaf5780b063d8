// Selector: one load-balancing algorithm. The pool decides membership and
// availability; an algorithm only chooses. One class per algorithm, one file each in
// src/selectors/ (declared in selectors.hpp).
//
// A selector is told its members (the backends of one tier that are up and not
// draining) by rebuild(), which is where it builds whatever it keeps (schedule,
// lookup table, load index). pick() is the per-connection path: it tries the
// algorithm's choice and falls back only when that backend is unavailable right now
// (full, or down/draining since the last rebuild) or already tried.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "l4lb/base/address.hpp"
#include "l4lb/base/hash.hpp"
#include "l4lb/balance/backend.hpp"
#include "l4lb/config/config.hpp"

namespace l4lb {

struct PickContext {
  const Address* client = nullptr;  // for the hashing algorithms (null: hashed as empty)
};

// The pool's rule for one pick: available now (up, not draining, below
// max_connections) and not already tried for this client.
class PickFilter {
 public:
  PickFilter() = default;
  explicit PickFilter(std::span<Backend* const> avoid) : avoid_(avoid) {}
  bool ok(const Backend* b) const {
    if (!b->available()) return false;
    for (const Backend* a : avoid_)
      if (a == b) return false;
    return true;
  }

 private:
  std::span<Backend* const> avoid_;
};

class Selector {
 public:
  virtual ~Selector() = default;
  virtual Algorithm algorithm() const = 0;

  // MEMBERS: this tier's backends that are up and not draining, in config order (may
  // be empty). Called when the pool is built and on every Pool::refresh(); the same
  // members with the same weights keep the algorithm's position (rotation, schedule).
  // The members must outlive the selector or the next rebuild.
  // Returns the fraction of the lookup table that now maps a client to another
  // backend (consistent_hash; 0 for the other algorithms).
  virtual double rebuild(std::span<Backend* const> members) = 0;

  // A member that FILTER accepts, chosen by the algorithm; nullptr when no member is.
  virtual Backend* pick(const PickContext& ctx, const PickFilter& filter) = 0;

  // The pool's lock. rebuild() and pick() are called with it held; an algorithm that
  // is also told of load changes (LoadObserver, from any worker's thread) takes it there.
  void set_lock(std::mutex* lock) { lock_ = lock; }

 protected:
  std::mutex* lock_ = nullptr;
};

std::unique_ptr<Selector> make_selector(Algorithm algorithm);

// Fixed hashes (the same on every machine and every run; not std::hash), so that two
// l4lb instances with the same config make the same choices.
// 64-bit FNV-1a over the bytes, finished with fmix64 for avalanche.
uint64_t hash_bytes(const void* data, size_t size, uint64_t seed = 0);
// A client: its IP address only (not the port); an IPv4-mapped IPv6 address hashes
// as the IPv4 address. Null (no client) hashes as an empty address.
uint64_t hash_client(const Address* client);
// A backend: family, IP address (IPv4-mapped as IPv4) and port, in network byte order.
uint64_t hash_backend(const Address& address, uint64_t seed = 0);

}  // namespace l4lb
