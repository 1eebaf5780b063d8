// Counters of the data path. Each worker writes only its own slot (no lock prefix,
// no cache line shared between workers); readers such as the admin port sum the
// slots. A Counter is a relaxed atomic so that reading it from another thread is
// well defined.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace l4lb {

class Counter {
 public:
  // Only the slot's own worker writes: load + store, not a locked read-modify-write.
  void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// One SLOT per worker.
template <class Slot>
class PerWorker {
 public:
  explicit PerWorker(size_t workers = 1)
      : n_(workers ? workers : 1), slots_(std::make_unique<Slot[]>(n_)) {}
  Slot& operator[](size_t worker) { return slots_[worker]; }
  size_t size() const { return n_; }
  // The sum of one Counter over every slot: sum(&Slot::field).
  uint64_t sum(Counter Slot::*field) const {
    uint64_t total = 0;
    for (size_t i = 0; i < n_; ++i) total += (slots_[i].*field).get();
    return total;
  }
  const Slot& at(size_t worker) const { return slots_[worker]; }

 private:
  size_t n_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace l4lb
