#include "l4lb/base/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

#include "l4lb/base/text.hpp"

namespace l4lb {
namespace {

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool parse_port(std::string_view text, uint16_t& port, std::string& error, bool allow_zero) {
  const std::string range = allow_zero ? "0..65535" : "1..65535";
  unsigned long value = 0;
  bool ok = !text.empty() && text.size() <= 5;
  for (char c : text) {
    if (c < '0' || c > '9')
      ok = false;
    else
      value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (!ok || value > 65535 || (value == 0 && !allow_zero))
    return error = "port must be " + range + ", got " + quoted(text), false;
  port = static_cast<uint16_t>(value);
  return true;
}

void set_v4(Address& a, const in_addr& ip, uint16_t port) {
  a = Address{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  sin->sin_family = AF_INET;
  sin->sin_addr = ip;
  sin->sin_port = htons(port);
  a.length = sizeof(sockaddr_in);
}

void set_v6(Address& a, const in6_addr& ip, uint16_t port) {
  a = Address{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_addr = ip;
  sin6->sin6_port = htons(port);
  a.length = sizeof(sockaddr_in6);
}

bool resolve(const std::string& host, uint16_t port, Address& out, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
    error = "cannot resolve host " + quoted(host) + ": " + gai_strerror(rc);
    return false;
  }
  const addrinfo* v4 = nullptr;
  const addrinfo* v6 = nullptr;
  for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && !v4) v4 = ai;
    if (ai->ai_family == AF_INET6 && !v6) v6 = ai;
  }
  if (v4)
    set_v4(out, reinterpret_cast<const sockaddr_in*>(v4->ai_addr)->sin_addr, port);
  else if (v6)
    set_v6(out, reinterpret_cast<const sockaddr_in6*>(v6->ai_addr)->sin6_addr, port);
  freeaddrinfo(list);
  if (!v4 && !v6) error = "cannot resolve host " + quoted(host) + ": no IPv4 or IPv6 address";
  return v4 || v6;
}

}  // namespace

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void Address::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

bool Address::is_wildcard() const {
  if (family() == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (family() == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr);
  return false;
}

std::string Address::host_string() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family() == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  else if (family() == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
  return buf;
}

std::string Address::to_string() const {
  std::string port_text = std::to_string(port());
  if (family() == AF_INET6) return "[" + host_string() + "]:" + port_text;
  return host_string() + ":" + port_text;
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  if (sa && len > 0 && static_cast<size_t>(len) <= sizeof a.storage) {
    std::memcpy(&a.storage, sa, len);
    a.length = len;
  }
  return a;
}

bool operator==(const Address& a, const Address& b) {
  if (a.family() != b.family() || a.port() != b.port()) return false;
  if (a.family() == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.storage)->sin_addr.s_addr;
  if (a.family() == AF_INET6)
    return IN6_ARE_ADDR_EQUAL(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr,
                              &reinterpret_cast<const sockaddr_in6*>(&b.storage)->sin6_addr);
  return a.family() == AF_UNSPEC;
}

bool parse_host_port(std::string_view text, HostPort& out, std::string& error,
                     bool allow_port_zero) {
  out = HostPort{};
  if (text.empty()) return error = "empty address (expected HOST:PORT)", false;
  std::string_view host, port_text;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos)
      return error = "missing \"]\" in " + quoted(text) + " (expected [IPV6]:PORT)", false;
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return error = "expected \":PORT\" after \"]\" in " + quoted(text), false;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    in6_addr ip6{};
    if (std::string h(host); inet_pton(AF_INET6, h.c_str(), &ip6) != 1)
      return error = "invalid IPv6 address " + quoted(host), false;
    if (!parse_port(port_text, out.port, error, allow_port_zero)) return false;
    set_v6(out.address, ip6, out.port);
    out.host = host;
    out.literal = true;
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return error = "missing port in " + quoted(text) + " (expected HOST:PORT)", false;
  host = text.substr(0, colon);
  port_text = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos)
    return error = "IPv6 addresses must be in brackets, e.g. \"[::1]:80\", got " + quoted(text),
           false;
  if (host.find_first_of("[]") != std::string_view::npos)
    return error = "misplaced bracket in " + quoted(text) + " (expected [IPV6]:PORT)", false;
  if (host.empty()) return error = "empty host in " + quoted(text) + " (expected HOST:PORT)", false;
  if (!parse_port(port_text, out.port, error, allow_port_zero)) return false;
  std::string h(host);
  out.host = h;
  in_addr ip4{};
  if (inet_pton(AF_INET, h.c_str(), &ip4) == 1) {
    set_v4(out.address, ip4, out.port);
    out.literal = true;
    return true;
  }
  bool numeric = host.find_first_not_of("0123456789.") == std::string_view::npos;
  if (numeric) return error = "invalid IPv4 address " + quoted(host), false;
  if (!valid_host_name(host)) return error = "invalid host name " + quoted(host), false;
  return true;
}

bool valid_host_name(std::string_view host) {
  bool ok = !host.empty() && host.size() <= 253;
  for (char c : host) ok = ok && is_host_char(c);
  return ok;
}

bool parse_address(std::string_view text, Address& out, std::string& error, bool allow_port_zero) {
  HostPort hp;
  if (!parse_host_port(text, hp, error, allow_port_zero)) return false;
  if (hp.literal) return out = hp.address, true;
  return resolve(hp.host, hp.port, out, error);
}

}  // namespace l4lb
