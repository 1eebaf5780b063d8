#include "l4lb/dataplane/pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace l4lb {

namespace {
constexpr int kPipeSize = 128 * 1024;
}  // namespace

Pipe PipePool::acquire() {
  if (!idle_.empty()) {
    Pipe p = std::move(idle_.back());
    idle_.pop_back();
    if (idle_.size() < min_idle_) min_idle_ = idle_.size();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1]), 0};
  // 128 KiB: half the splice calls of the 64 KiB default on bulk flows, and two of
  // them (one per direction) stay within the 256 KiB a connection pair may hold.
  // Where the kernel refuses (pipe-user-pages limits), the default size stays.
  ::fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
  int size = ::fcntl(fds[1], F_GETPIPE_SZ);
  p.capacity = size > 0 ? static_cast<size_t>(size) : 65536;
  ++created_;
  return p;
}

void PipePool::release(Pipe&& pipe) {
  if (pipe && idle_.size() < max_idle_) idle_.push_back(std::move(pipe));
  // else: the pipe's fds close as it goes out of scope
}

void PipePool::trim() {
  idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(min_idle_));
  min_idle_ = idle_.size();
}

}  // namespace l4lb
