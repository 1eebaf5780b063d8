#include "l4lb/pool.hpp"

#include <algorithm>

namespace l4lb {

Pool::Pool(std::vector<std::shared_ptr<Backend>> backends, std::unique_ptr<Selector> selector)
    : backends_(std::move(backends)), selector_(std::move(selector)) {
  candidates_.reserve(backends_.size());
}

Lease Pool::acquire(const PickContext& ctx, std::span<Backend* const> avoid) {
  auto collect = [&](bool backup) {
    candidates_.clear();
    for (const auto& b : backends_) {
      if (b->config.backup != backup || !b->available()) continue;
      if (std::find(avoid.begin(), avoid.end(), b.get()) != avoid.end()) continue;
      candidates_.push_back(b.get());
    }
    return !candidates_.empty();
  };
  // Backups only when no regular backend is available (tried ones count as unavailable).
  if (!collect(false) && !collect(true)) return {};
  return Lease(selector_->pick(candidates_, ctx)->shared_from_this());
}

bool Pool::any_available() const {
  return std::any_of(backends_.begin(), backends_.end(),
                     [](const auto& b) { return b->available(); });
}

}  // namespace l4lb
