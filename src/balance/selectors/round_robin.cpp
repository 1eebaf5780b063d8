// round_robin: each new connection goes to the next member in turn; weights are ignored.
// An unavailable or tried member is stepped over (at most one pass).
#include "l4lb/balance/selectors.hpp"

namespace l4lb {

double RoundRobin::rebuild(std::span<Backend* const> members) {
  if (members_.update(members)) next_ = 0;
  return 0;
}

Backend* RoundRobin::pick(const PickContext&, const PickFilter& filter) {
  const auto& list = members_.list();
  size_t n = list.size();
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
