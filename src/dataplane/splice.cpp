#include "l4lb/dataplane/splice.hpp"

#include <fcntl.h>
#include <sys/types.h>

#include <cerrno>

namespace l4lb {

namespace {
IoResult splice_step(int from, int to, size_t max, bool reading) {
  for (;;) {
    ssize_t n = ::splice(from, nullptr, to, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) return {IoStatus::Progress, static_cast<size_t>(n), 0};
    if (n == 0) return reading ? IoResult{IoStatus::Eof} : IoResult{IoStatus::WouldBlock};
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return {IoStatus::WouldBlock};
    return {IoStatus::Error, 0, errno};
  }
}
}  // namespace

IoResult splice_in(int socket_fd, int pipe_write_fd, size_t max) {
  return splice_step(socket_fd, pipe_write_fd, max, true);
}

IoResult splice_out(int pipe_read_fd, int socket_fd, size_t max) {
  return splice_step(pipe_read_fd, socket_fd, max, false);
}

}  // namespace l4lb
