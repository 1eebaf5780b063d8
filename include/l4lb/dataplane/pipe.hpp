// Pipes for splice(2), lent from a pool only while bytes are in flight: an idle
// connection holds none.
#pragma once
#include <cstddef>
#include <vector>

#include "l4lb/base/fd.hpp"

namespace l4lb {

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
  size_t capacity = 0;  // bytes the kernel lets the pipe hold (F_GETPIPE_SZ)
  explicit operator bool() const { return static_cast<bool>(read_end); }
};

class PipePool {
 public:
  explicit PipePool(size_t max_idle = 256) : max_idle_(max_idle) {}
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // An empty pipe from the pool, or a new one. An empty Pipe (errno set) when none can be made.
  Pipe acquire();
  // Takes back a pipe. Only an EMPTY pipe may be returned; keep at most max_idle.
  void release(Pipe&& pipe);

  // Closes the idle pipes that stayed unused since the previous trim (called about
  // once a second), so that a quiet process gives its pipes back.
  void trim();

  size_t idle() const { return idle_.size(); }
  size_t created() const { return created_; }

 private:
  std::vector<Pipe> idle_;
  size_t max_idle_;
  size_t min_idle_ = 0;  // fewest idle pipes since the last trim: those never left the pool
  size_t created_ = 0;
};

}  // namespace l4lb
