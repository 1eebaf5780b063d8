// A socket address as written in the config: "HOST:PORT" or "[IPV6]:PORT".
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace l4lb {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  uint16_t port() const;
  bool is_wildcard() const;  // 0.0.0.0 or ::
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage); }

  // "127.0.0.1:8080", "[::1]:8080" (numeric, always).
  std::string to_string() const;
  // The numeric host alone, without brackets: "127.0.0.1", "::1".
  std::string host_string() const;

  static Address from_sockaddr(const sockaddr* sa, socklen_t len);
  void set_port(uint16_t port);
  friend bool operator==(const Address& a, const Address& b);
};

// Parses "HOST:PORT" / "[IPV6]:PORT". HOST may be an IPv4 literal, a bracketed IPv6
// literal, or a name, which is resolved with getaddrinfo (first IPv4 answer preferred,
// else the first IPv6). PORT must be 1..65535 when ALLOW_PORT_ZERO is false.
// On failure returns false and sets ERROR (e.g. `port must be 1..65535, got "99999"`,
// `cannot resolve host "foo.invalid": Name or service not known`).
bool parse_address(std::string_view text, Address& out, std::string& error,
                   bool allow_port_zero = false);

// HOST:PORT checked as parse_address() does, never resolved: HOST is the host as written
// (without brackets); for an IP literal, LITERAL is true and ADDRESS is set.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  bool literal = false;
  Address address;
};
bool parse_host_port(std::string_view text, HostPort& out, std::string& error,
                     bool allow_port_zero = false);
// A DNS name as accepted in an address: [A-Za-z0-9._-], 1..253 characters.
bool valid_host_name(std::string_view host);

}  // namespace l4lb
