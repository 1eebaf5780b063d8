// Pool: the backends of one service and which of them may take a new connection.
// Members are the backends that are up and not draining, in two tiers: regular and
// backup, one selector each; the backup tier is asked only when no regular backend
// can take the connection. Whether a member is available right now (below
// max_connections, and still up) is checked at pick time, so a full backend is
// skipped, never queued. acquire() hands out a Lease.
//
// Health, drain, weight and backup change outside the pool (the prober sets
// Backend::health, a reload overwrites Backend::config): call refresh() after such a
// change, so the algorithms rebuild what they keep (schedule, table, index). Until
// then they stay correct (an unavailable backend is never chosen) but a backend that
// came back up is not chosen yet.
//
// One pool per service, shared by every worker under a short mutex (one rotation over all
// workers); live counts are atomics in Backend.
#pragma once
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "l4lb/balance/lease.hpp"
#include "l4lb/balance/selectors.hpp"

namespace l4lb {

class Pool {
 public:
  Pool(std::vector<std::shared_ptr<Backend>> backends, Algorithm algorithm);
  // The algorithm of SELECTOR (a second one is made for the backup tier).
  Pool(std::vector<std::shared_ptr<Backend>> backends, std::unique_ptr<Selector> selector);
  Pool(Pool&& other) noexcept;
  Pool& operator=(Pool&& other) noexcept;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  // A lease on an available backend not in AVOID, chosen by the algorithm; an empty
  // Lease when there is none.
  Lease acquire(const PickContext& ctx, std::span<Backend* const> avoid = {});
  bool any_available() const;

  // Re-reads health, drain, backup and weight of every backend and rebuilds the
  // algorithms' state where membership or weights changed (a no-op otherwise, which
  // keeps rotation positions). Returns moved_fraction().
  double refresh();
  // Sets B's health and refreshes when that changes membership. Returns moved_fraction()
  // when it refreshed, else 0.
  double set_health(Backend& b, HealthState state);
  // A reload in place: new backend list (objects kept for addresses that stay, their
  // config already overwritten) and algorithm. Keeps the algorithm's state when the
  // algorithm is the same, so the moved fraction compares with the previous table.
  // Returns moved_fraction().
  double update(std::vector<std::shared_ptr<Backend>> backends, Algorithm algorithm);

  // consistent_hash: the fraction (0..1) of the lookup table that maps a client to a
  // different backend after the last change of membership (refresh/update that
  // rebuilt something); a switch between the regular and backup tiers moves all (1).
  // 0 for the other algorithms, and for a pool that has not changed since it was built.
  double moved_fraction() const { return moved_; }

  Algorithm algorithm() const { return algorithm_; }
  const std::vector<std::shared_ptr<Backend>>& backends() const { return backends_; }

 private:
  enum class Tier { None, Regular, Backup };
  void make_selectors(std::unique_ptr<Selector> regular);
  double rebuild(bool fresh);

  Algorithm algorithm_;
  std::vector<std::shared_ptr<Backend>> backends_;
  // Declared after backends_: selectors are destroyed first (they may touch members).
  std::unique_ptr<Selector> regular_;
  std::unique_ptr<Selector> backup_;
  std::vector<Backend*> scratch_regular_, scratch_backup_;
  Members regular_members_, backup_members_;  // as of the last rebuild
  Tier tier_ = Tier::None;  // the tier that had members at the last rebuild
  double moved_ = 0;
  mutable const Backend* hint_ = nullptr;  // the last backend found available
  // Workers pick concurrently and leases report load changes from any thread; the
  // pointer keeps the mutex where the selectors were told it is when the pool moves.
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
};

}  // namespace l4lb
