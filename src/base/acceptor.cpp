#include "l4lb/base/acceptor.hpp"

#include <cerrno>

#include "l4lb/base/net.hpp"

namespace l4lb {

bool Acceptor::accept_batch() {
  for (int i = 0; i < batch_; ++i) {
    Address peer;
    UniqueFd client = accept_tcp(fd_.get(), peer);
    if (!client) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return false;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      if (resource_shortage(err)) shortage(err);
      return false;
    }
    if (!on_client_(owner_, std::move(client), peer)) return false;
  }
  return true;
}

void Acceptor::shortage(int err) {
  on_shortage_(owner_, err);
  io_.stop();
  pause_.start(pause_seconds_);
}

}  // namespace l4lb
