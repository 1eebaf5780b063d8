// What a flow borrows only while bytes wait in it, so an idle connection holds none:
// pipes for splice(2), and copy buffers (the worker's scratch buffer, handed to a flow
// whose destination did not take all of it). Each kind is lent from a per-worker pool.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "l4lb/base/fd.hpp"

namespace l4lb {

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
  size_t capacity = 0;  // bytes the kernel lets the pipe hold (F_GETPIPE_SZ)
  explicit operator bool() const { return static_cast<bool>(read_end); }
  // A new pipe of 128 KiB where the kernel allows; empty (errno set) when none can be made.
  static Pipe make();
};

// A copy buffer and the bytes in it still to be sent: [begin, end).
struct Buffer {
  static constexpr size_t kSize = 65536;
  std::unique_ptr<char[]> data;
  size_t begin = 0;
  size_t end = 0;
  explicit operator bool() const { return static_cast<bool>(data); }
  size_t waiting() const { return end - begin; }
  static Buffer make() { return Buffer{std::make_unique<char[]>(kSize)}; }
};

// Lends items of one kind and takes them back; keeps at most MAX_IDLE idle ones, and
// trim() (about once a second) frees those that stayed unused for a whole period, so a
// quiet process gives them back.
template <class T>
class LendPool {
 public:
  explicit LendPool(size_t max_idle = 256) : max_idle_(max_idle) {}
  LendPool(const LendPool&) = delete;
  LendPool& operator=(const LendPool&) = delete;

  // An idle item, or a new one (T::make(): may be empty, errno set, or throw bad_alloc).
  T acquire() {
    if (!idle_.empty()) {
      T item = std::move(idle_.back());
      idle_.pop_back();
      if (idle_.size() < min_idle_) min_idle_ = idle_.size();
      return item;
    }
    T item = T::make();
    if (item) ++created_;
    return item;
  }
  // Takes one back. Only an EMPTY item may be returned (no bytes waiting in it).
  void release(T&& item) {
    if (item && idle_.size() < max_idle_) idle_.push_back(std::move(item));
    // else: it is freed as it goes out of scope
  }
  void trim() {
    idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(min_idle_));
    min_idle_ = idle_.size();
  }

  size_t idle() const { return idle_.size(); }
  size_t created() const { return created_; }

 private:
  std::vector<T> idle_;
  size_t max_idle_;
  size_t min_idle_ = 0;  // fewest idle items since the last trim: those never left the pool
  size_t created_ = 0;
};

using PipePool = LendPool<Pipe>;
using BufferPool = LendPool<Buffer>;

}  // namespace l4lb
