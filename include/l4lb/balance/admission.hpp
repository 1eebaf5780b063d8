// Admission: the places a client takes under the connection limits. The check against a
// limit and the +1 are one atomic step, so no number of workers can overshoot it even for
// an instant; the -1 comes with the destructor, when the client's session ends.
#pragma once
#include <atomic>
#include <cstdint>
#include <utility>

#include "l4lb/balance/source_limits.hpp"

namespace l4lb {

class Seat {
 public:
  Seat() = default;
  // A place in COUNT if it is below MAX (0 = unlimited); empty when full.
  static Seat take(std::atomic<uint64_t>& count, uint64_t max) {
    uint64_t n = count.load(std::memory_order_relaxed);
    do {
      if (max != 0 && n >= max) return {};
    } while (!count.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    Seat s;
    s.count_ = &count;
    return s;
  }
  Seat(Seat&& o) noexcept : count_(std::exchange(o.count_, nullptr)) {}
  Seat& operator=(Seat&& o) noexcept {
    if (this != &o) {
      release();
      count_ = std::exchange(o.count_, nullptr);
    }
    return *this;
  }
  Seat(const Seat&) = delete;
  Seat& operator=(const Seat&) = delete;
  ~Seat() { release(); }
  explicit operator bool() const { return count_ != nullptr; }

 private:
  void release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_ = nullptr;
  }
  std::atomic<uint64_t>* count_ = nullptr;
};

// A client's places: one under global.max_connections (taken at accept), one under its
// service's (taken once the service is known).
struct Admission {
  Seat global;
  Seat service;
  SourceSeat source;  // under its address's per_source.max_connections (empty: not counted)
};

}  // namespace l4lb
