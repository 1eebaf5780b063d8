#include "l4lb/base/net.hpp"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

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

UniqueFd listen_unix(const std::string& path, std::string& error, int backlog) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path) {
    error = "unix socket path too long: " + path;
    return UniqueFd();
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      error = path + " exists and is not a socket";
      return UniqueFd();
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&sun), len) == 0) {
      error = "a live socket is already at " + path + " (another l4lb?)";
      return UniqueFd();
    }
    ::unlink(path.c_str());  // stale: left by a process that is gone
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = std::string("socket: ") + std::strerror(errno);
    return fd;
  }
  // The mode is set at bind from the umask: 0600 from the first instant (only this
  // thread creates files while it runs).
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), len);
  int saved = errno;
  if (rc != 0 && saved == ENOENT) {  // its directory (e.g. /run/l4lb outside systemd): made once
    ::umask(0022);
    const std::string dir = path.substr(0, path.rfind('/'));
    if (!dir.empty() && ::mkdir(dir.c_str(), 0755) == 0) {
      ::umask(0177);
      rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), len);
      saved = errno;
    }
  }
  ::umask(old);
  if (rc != 0 || ::listen(fd.get(), backlog) != 0) {
    if (rc == 0) {
      saved = errno;
      ::unlink(path.c_str());
    }
    error = "cannot listen on " + path + ": " + std::strerror(saved);
    fd.reset();
  }
  return fd;
}

std::string unix_peer(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unix:?";
  return "unix:" + std::to_string(cred.uid);
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

bool peer_on_this_host(int fd) {
  Address peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd, peer.sa(), &peer.length) != 0) return false;
  const Address self = local_address(fd);
  if (peer.family() != self.family()) return false;
  if (peer.family() == AF_INET) {
    const auto& p = reinterpret_cast<const sockaddr_in&>(peer.storage).sin_addr;
    const auto& s = reinterpret_cast<const sockaddr_in&>(self.storage).sin_addr;
    return (ntohl(p.s_addr) >> 24) == 127 || p.s_addr == s.s_addr;
  }
  if (peer.family() == AF_INET6) {
    const auto& p = reinterpret_cast<const sockaddr_in6&>(peer.storage).sin6_addr;
    const auto& s = reinterpret_cast<const sockaddr_in6&>(self.storage).sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(&p) || (IN6_IS_ADDR_V4MAPPED(&p) && p.s6_addr[12] == 127) ||
           IN6_ARE_ADDR_EQUAL(&p, &s);
  }
  return false;
}

bool resource_shortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace l4lb
