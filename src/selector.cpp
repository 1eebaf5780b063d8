#include "l4lb/selector.hpp"

#include "l4lb/selectors.hpp"

namespace l4lb {

std::unique_ptr<Selector> make_selector(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::RoundRobin:
    default:  // the other algorithms land with the selection work (issue 3)
      return std::make_unique<RoundRobin>();
  }
}

}  // namespace l4lb
