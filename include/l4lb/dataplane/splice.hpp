// One splice(2) step and its verdict. These helpers never close anything: the
// session decides what a verdict means.
#pragma once
#include <cstddef>

namespace l4lb {

enum class IoStatus {
  Progress,    // `bytes` moved
  WouldBlock,  // EAGAIN: the socket is empty (in) or full (out), or the pipe is full (in)
  Eof,         // the peer finished sending (in only)
  Error,       // `error` holds errno (ECONNRESET, EPIPE, ...)
};

struct IoResult {
  IoStatus status;
  size_t bytes = 0;
  int error = 0;
};

// socket -> pipe, at most MAX bytes.
IoResult splice_in(int socket_fd, int pipe_write_fd, size_t max);
// pipe -> socket, at most MAX bytes.
IoResult splice_out(int pipe_read_fd, int socket_fd, size_t max);

}  // namespace l4lb
