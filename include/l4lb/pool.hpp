// Pool: the backends of one service and which of them may take a new connection
// (available; backups only when no regular backend is). acquire() hands out a Lease.
#pragma once
#include <memory>
#include <span>
#include <vector>

#include "l4lb/lease.hpp"
#include "l4lb/selector.hpp"

namespace l4lb {

class Pool {
 public:
  Pool(std::vector<std::shared_ptr<Backend>> backends, std::unique_ptr<Selector> selector);

  // A lease on an available backend not in AVOID, chosen by the algorithm; an empty
  // Lease when there is none.
  Lease acquire(const PickContext& ctx, std::span<Backend* const> avoid);
  bool any_available() const;

  const std::vector<std::shared_ptr<Backend>>& backends() const { return backends_; }

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
  std::unique_ptr<Selector> selector_;
  std::vector<Backend*> candidates_;  // scratch, reused per pick
};

}  // namespace l4lb
