#include "l4lb/dataplane/pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace l4lb {

namespace {
constexpr int kPipeSize = 128 * 1024;
}  // namespace

Pipe Pipe::make() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1]), 0};
  // 128 KiB: half the splice calls of the 64 KiB default on bulk flows, and two of
  // them (one per direction) stay within the 256 KiB a connection pair may hold.
  // Where the kernel refuses (pipe-user-pages limits), the default size stays.
  ::fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
  int size = ::fcntl(fds[1], F_GETPIPE_SZ);
  p.capacity = size > 0 ? static_cast<size_t>(size) : 65536;
  return p;
}

}  // namespace l4lb
