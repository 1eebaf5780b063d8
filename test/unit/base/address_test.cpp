#include "l4lb/base/address.hpp"

#include <doctest/doctest.h>

using l4lb::Address;

namespace {

Address ok(std::string_view text, bool allow_port_zero = false) {
  Address a;
  std::string error;
  bool parsed = l4lb::parse_address(text, a, error, allow_port_zero);
  INFO("parsing \"" << std::string(text) << "\": " << error);
  CHECK(parsed);
  return a;
}

std::string bad(std::string_view text, bool allow_port_zero = false) {
  Address a;
  std::string error;
  CHECK_FALSE(l4lb::parse_address(text, a, error, allow_port_zero));
  return error;
}

}  // namespace

TEST_CASE("addresses: IPv4") {
  Address a = ok("127.0.0.1:80");
  CHECK(a.family() == AF_INET);
  CHECK(a.port() == 80);
  CHECK(a.length == sizeof(sockaddr_in));
  CHECK(a.to_string() == "127.0.0.1:80");
  CHECK(a.host_string() == "127.0.0.1");
  CHECK_FALSE(a.is_wildcard());
  CHECK(ok("0.0.0.0:65535").is_wildcard());
  CHECK(ok("0.0.0.0:65535").to_string() == "0.0.0.0:65535");
}

TEST_CASE("addresses: bracketed IPv6") {
  Address a = ok("[::1]:8080");
  CHECK(a.family() == AF_INET6);
  CHECK(a.port() == 8080);
  CHECK(a.length == sizeof(sockaddr_in6));
  CHECK(a.to_string() == "[::1]:8080");
  CHECK(a.host_string() == "::1");
  CHECK_FALSE(a.is_wildcard());
  CHECK(ok("[::]:80").is_wildcard());
  CHECK(ok("[2001:db8:0:0:0:0:0:1]:443").to_string() == "[2001:db8::1]:443");
}

TEST_CASE("addresses: localhost resolves, preferring IPv4") {
  Address a = ok("localhost:9000");
  CHECK(a.to_string() == "127.0.0.1:9000");
  CHECK(a == ok("127.0.0.1:9000"));
}

TEST_CASE("addresses: equality compares family, bytes and port") {
  CHECK(ok("127.0.0.1:80") == ok("127.0.0.1:80"));
  CHECK_FALSE(ok("127.0.0.1:80") == ok("127.0.0.1:81"));
  CHECK_FALSE(ok("127.0.0.1:80") == ok("127.0.0.2:80"));
  CHECK_FALSE(ok("0.0.0.0:80") == ok("[::]:80"));
  CHECK(ok("[::1]:80") == ok("[0:0:0:0:0:0:0:1]:80"));
  Address a = ok("10.1.2.3:4567");
  Address copy = Address::from_sockaddr(a.sa(), a.length);
  CHECK(copy == a);
  CHECK(copy.to_string() == "10.1.2.3:4567");
}

TEST_CASE("addresses: port 0 only when allowed") {
  CHECK(bad("127.0.0.1:0") == "port must be 1..65535, got \"0\"");
  CHECK(ok("127.0.0.1:0", true).port() == 0);
  CHECK(ok("[::1]:0", true).port() == 0);
  CHECK(bad("127.0.0.1:65536", true) == "port must be 0..65535, got \"65536\"");
}

TEST_CASE("addresses: bad forms say why") {
  CHECK(bad("") == "empty address (expected HOST:PORT)");
  CHECK(bad("127.0.0.1") == "missing port in \"127.0.0.1\" (expected HOST:PORT)");
  CHECK(bad("127.0.0.1:") == "port must be 1..65535, got \"\"");
  CHECK(bad("127.0.0.1:99999") == "port must be 1..65535, got \"99999\"");
  CHECK(bad("127.0.0.1:http") == "port must be 1..65535, got \"http\"");
  CHECK(bad("127.0.0.1:-1") == "port must be 1..65535, got \"-1\"");
  CHECK(bad(":80") == "empty host in \":80\" (expected HOST:PORT)");
  CHECK(bad("[::1:80") == "missing \"]\" in \"[::1:80\" (expected [IPV6]:PORT)");
  CHECK(bad("[::1]80") == "expected \":PORT\" after \"]\" in \"[::1]80\"");
  CHECK(bad("[::1]") == "expected \":PORT\" after \"]\" in \"[::1]\"");
  CHECK(bad("[]:80") == "invalid IPv6 address \"\"");
  CHECK(bad("[1.2.3.4]:80") == "invalid IPv6 address \"1.2.3.4\"");
  CHECK(bad("::1:80") == "IPv6 addresses must be in brackets, e.g. \"[::1]:80\", got \"::1:80\"");
  CHECK(bad("a]:80") == "misplaced bracket in \"a]:80\" (expected [IPV6]:PORT)");
  CHECK(bad("256.1.1.1:80") == "invalid IPv4 address \"256.1.1.1\"");
  CHECK(bad("127.1:80") == "invalid IPv4 address \"127.1\"");
  CHECK(bad("bad host:80") == "invalid host name \"bad host\"");
}
