// Non-blocking sockets: listen, accept, connect, and the options l4lb sets on them.
#pragma once
#include <string>
#include "l4lb/base/address.hpp"
#include "l4lb/base/fd.hpp"

namespace l4lb {

// A bound, listening, non-blocking socket with SO_REUSEADDR (IPv6 sockets are
// IPV6_V6ONLY) and the proxy options (TCP_NODELAY, SO_KEEPALIVE), which the sockets
// it accepts inherit. REUSE_PORT (SO_REUSEPORT) only where several sockets of this process
// share the address (one per worker): without it a second l4lb cannot bind it too.
// On failure returns an empty fd and sets errno.
UniqueFd listen_tcp(const Address& addr, bool reuse_port = false, int backlog = 4096);

// accept4(SOCK_NONBLOCK|SOCK_CLOEXEC). Empty fd with errno set when nothing was accepted.
UniqueFd accept_tcp(int listen_fd, Address& peer);
// A listening unix stream socket at PATH, mode 0600 from the start (non-blocking,
// close-on-exec). A stale socket file there (nobody accepts on it) is replaced; a live
// one, or a file that is not a socket, is an error (ERROR says which; nothing changed).
UniqueFd listen_unix(const std::string& path, std::string& error, int backlog = 64);
// "unix:UID" for a unix socket peer (SO_PEERCRED), "unix:?" if it cannot be read.
std::string unix_peer(int fd);

// Starts a non-blocking connect. Returns the socket, with IN_PROGRESS telling whether
// the connect is still under way or already established (a loopback or same-host backend
// usually answers within the call). Empty fd + errno on failure, including a refusal that
// arrived within the call.
UniqueFd connect_tcp(const Address& addr, bool& in_progress);

// The pending error of a socket whose connect finished (SO_ERROR): 0 on success.
int socket_error(int fd);

// TCP_NODELAY + SO_KEEPALIVE, as every proxied socket gets.
void set_proxy_options(int fd);

// Sends FD's FIN now (after what is already queued), then drops whatever it received and
// nobody read, so that the close() that follows adds no reset (close() with unread bytes
// resets; a peer that keeps sending after the FIN may still get one, as from any closed socket).
void fin_and_drop_input(int fd);

// SO_LINGER {1, 0}: the next close() sends a reset instead of a FIN.
void set_reset_on_close(int fd);

// The local address of a socket (getsockname).
Address local_address(int fd);

// Whether the peer of connected socket FD runs on this host: its address is a loopback
// one (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) or the socket's own address. A peer on
// another local address of this host is not recognised (false).
bool peer_on_this_host(int fd);

// ERR (an errno) says this host is out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).
bool resource_shortage(int err);

}  // namespace l4lb
