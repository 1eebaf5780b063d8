// Fixed hash helpers (the same on every machine and every run; not std::hash).
#pragma once
#include <cstdint>

namespace l4lb {

// murmur3's 64-bit finalizer: a bijection with full avalanche.
constexpr uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace l4lb
