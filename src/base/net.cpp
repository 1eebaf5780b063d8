#include "l4lb/base/net.hpp"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace l4lb {

namespace {
void set_int(int fd, int level, int name, int value) {
  ::setsockopt(fd, level, name, &value, sizeof value);
}
}  // namespace

UniqueFd listen_tcp(const Address& addr, bool reuse_port, int backlog) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (reuse_port) set_int(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1);
  if (addr.family() == AF_INET6) set_int(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1);
  set_proxy_options(fd.get());  // accepted sockets inherit them: no setsockopt per client
  if (::bind(fd.get(), addr.sa(), addr.length) != 0 || ::listen(fd.get(), backlog) != 0) {
    int saved = errno;
    fd.reset();
    errno = saved;
  }
  return fd;
}

UniqueFd accept_tcp(int listen_fd, Address& peer) {
  peer.length = sizeof peer.storage;
  return UniqueFd(::accept4(listen_fd, peer.sa(), &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

UniqueFd connect_tcp(const Address& addr, bool& in_progress) {
  in_progress = false;
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  set_proxy_options(fd.get());
  int saved = 0;
  if (::connect(fd.get(), addr.sa(), addr.length) == 0) return fd;
  if (errno == EINPROGRESS) {
    // A backend on this host has usually answered before connect() returns (the kernel
    // runs the whole loopback handshake inside the call): ask once, and skip the wait for
    // writability (an epoll_ctl pair and a loop round) when it is already decided.
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        info.tcpi_state == TCP_SYN_SENT || info.tcpi_state == TCP_SYN_RECV) {
      in_progress = true;
      return fd;
    }
    if (info.tcpi_state != TCP_CLOSE) return fd;  // established (and maybe already closed by the peer)
    saved = socket_error(fd.get());               // refused or unreachable, already
    if (saved == 0) saved = ECONNREFUSED;
  } else {
    saved = errno;
  }
  fd.reset();
  errno = saved;
  return fd;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void set_proxy_options(int fd) {
  set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
}

void fin_and_drop_input(int fd) {
  ::shutdown(fd, SHUT_WR);
  // MSG_TRUNC on TCP drops the bytes without copying them into the buffer, which is never
  // written (and so never costs memory); it is real only for tools that check the call.
  static char sink[1 << 20];
  for (int i = 0; i < 64; ++i)
    if (::recv(fd, sink, sizeof sink, MSG_TRUNC | MSG_DONTWAIT) <= 0) return;
}

void set_reset_on_close(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

Address local_address(int fd) {
  Address a;
  a.length = sizeof a.storage;
  if (::getsockname(fd, a.sa(), &a.length) != 0) a.length = 0;
  return a;
}

bool resource_shortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace l4lb
