// Selector: one load-balancing algorithm. The pool filters availability; an
// algorithm only chooses among the candidates it is given. One file per algorithm
// in src/selectors/.
#pragma once
#include <memory>
#include <span>

#include "l4lb/address.hpp"
#include "l4lb/backend.hpp"
#include "l4lb/config.hpp"

namespace l4lb {

struct PickContext {
  const Address* client = nullptr;  // for the hashing algorithms
};

class Selector {
 public:
  virtual ~Selector() = default;
  // CANDIDATES: the available backends not yet tried for this client, in config
  // order, never empty. Returns one of them.
  virtual Backend* pick(std::span<Backend* const> candidates, const PickContext& ctx) = 0;
};

std::unique_ptr<Selector> make_selector(Algorithm algorithm);

}  // namespace l4lb
