// The algorithms behind Selector, one class each (src/selectors/<name>.cpp).
#pragma once
#include <cstddef>

#include "l4lb/selector.hpp"

namespace l4lb {

class RoundRobin final : public Selector {
 public:
  Backend* pick(std::span<Backend* const> candidates, const PickContext& ctx) override;

 private:
  size_t next_ = 0;
};

}  // namespace l4lb
