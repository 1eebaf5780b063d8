// Sockets: what l4lb's listening sockets hand down to the clients they accept.
#include <doctest/doctest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "l4lb/base/net.hpp"

using namespace l4lb;

namespace {
int opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  ::getsockopt(fd, level, name, &v, &len);
  return v;
}

// A listening socket on 127.0.0.1 with a port of the kernel's choice, and where it is bound.
UniqueFd loopback_listener(Address& bound, bool reuse_port = false) {
  Address any;
  std::string err;
  REQUIRE(parse_address("127.0.0.1:0", any, err, true));
  UniqueFd fd = listen_tcp(any, reuse_port);
  REQUIRE(fd);
  bound = local_address(fd.get());
  return fd;
}
}  // namespace

TEST_CASE("accepted clients have TCP_NODELAY and SO_KEEPALIVE without a setsockopt each") {
  Address bound;
  UniqueFd listener = loopback_listener(bound);
  bool in_progress = false;
  UniqueFd client = connect_tcp(bound, in_progress);
  REQUIRE(client);
  UniqueFd accepted;
  Address peer;
  for (int i = 0; i < 1000 && !accepted; ++i) accepted = accept_tcp(listener.get(), peer);
  REQUIRE(accepted);
  CHECK(opt(accepted.get(), IPPROTO_TCP, TCP_NODELAY) == 1);
  CHECK(opt(accepted.get(), SOL_SOCKET, SO_KEEPALIVE) == 1);
  CHECK(opt(client.get(), IPPROTO_TCP, TCP_NODELAY) == 1);  // the backend side sets its own
  CHECK(opt(client.get(), SOL_SOCKET, SO_KEEPALIVE) == 1);
}

TEST_CASE("a second listener on the same address fails unless both share SO_REUSEPORT") {
  Address bound;
  UniqueFd first = loopback_listener(bound, true);
  UniqueFd second = listen_tcp(bound, true);  // another worker's socket
  CHECK(second);
  UniqueFd third = listen_tcp(bound, false);  // another l4lb instance, say
  CHECK_FALSE(third);
}

TEST_CASE("a loopback connect is settled (established or refused) when connect_tcp returns") {
  Address bound;
  UniqueFd listener = loopback_listener(bound);
  // The kernel runs the loopback handshake inside connect(): no wait for writability.
  int settled = 0;
  for (int i = 0; i < 20; ++i) {
    bool in_progress = true;
    UniqueFd client = connect_tcp(bound, in_progress);
    REQUIRE(client);
    if (in_progress) continue;
    ++settled;
    tcp_info info{};
    socklen_t len = sizeof info;
    REQUIRE(::getsockopt(client.get(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0);
    CHECK(info.tcpi_state == TCP_ESTABLISHED);
    CHECK(::send(client.get(), "x", 1, MSG_NOSIGNAL) == 1);
  }
  CHECK(settled > 0);

  // A closed port: the refusal also arrives within the call, as a failed connect_tcp.
  Address closed = bound;
  listener.reset();
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    bool in_progress = true;
    UniqueFd client = connect_tcp(closed, in_progress);
    if (client) {
      CHECK(in_progress);  // never "established" to a closed port
      continue;
    }
    CHECK(errno == ECONNREFUSED);
    ++refused;
  }
  CHECK(refused > 0);
}
