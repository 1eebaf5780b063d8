// round_robin: each new connection goes to the next candidate in turn; weights are ignored.
#include "l4lb/selectors.hpp"

namespace l4lb {

Backend* RoundRobin::pick(std::span<Backend* const> candidates, const PickContext&) {
  Backend* chosen = candidates[next_ % candidates.size()];
  ++next_;
  return chosen;
}

}  // namespace l4lb
