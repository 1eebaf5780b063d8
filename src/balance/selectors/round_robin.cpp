// round_robin: each new connection goes to the next member in turn; weights are ignored.
// While slow start runs for a member, members are picked by a smooth schedule of their
// ramps instead, so that one gets t / slow_start of a full member's share.
// An unavailable or tried member is stepped over (at most one pass).
#include <algorithm>

#include "l4lb/balance/selectors.hpp"

namespace l4lb {

double RoundRobin::rebuild(std::span<Backend* const> members) {
  if (!members_.update(members)) return 0;
  next_ = 0;
  pos_ = 0;
  const auto& ramps = members_.weights();
  bool even = std::all_of(ramps.begin(), ramps.end(), [&](int r) { return r == ramps.front(); });
  if (even)
    schedule_.clear();
  else
    schedule_ = WeightedRoundRobin::schedule(ramps);
  return 0;
}

Backend* RoundRobin::pick(const PickContext&, const PickFilter& filter) {
  const auto& list = members_.list();
  size_t n = list.size();
  // Slow start: the schedule first (bounded), then the plain rotation below.
  for (size_t i = 0, len = schedule_.size(); i < std::min<size_t>(len, 64); ++i) {
    Backend* b = list[schedule_[pos_]];
    if (++pos_ == len) pos_ = 0;
    if (filter.ok(b)) return b;
  }
  for (size_t i = 0, k = next_; i < n; ++i) {
    Backend* b = list[k];
    if (++k == n) k = 0;
    if (filter.ok(b)) {
      next_ = k;
      return b;
    }
  }
  return nullptr;
}

}  // namespace l4lb
