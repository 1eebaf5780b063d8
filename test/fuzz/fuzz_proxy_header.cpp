// parse_proxy_header: never crashes or reads past the input; a Complete TCP4/TCP6
// header rebuilt with build_proxy_header (same version, same addresses) parses back to
// the same addresses. The builder writes a v4-mapped IPv6 address as IPv4 (and an IPv4
// next to a real IPv6 one as v4-mapped), so addresses are compared as IPv6 (v4 -> ::ffff:v4).
#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "fuzz.hpp"
#include "l4lb/dataplane/proxy_header.hpp"

namespace {

struct Canon {
  uint8_t ip[16];
  uint16_t port;
  bool operator==(const Canon& o) const {
    return std::memcmp(ip, o.ip, 16) == 0 && port == o.port;
  }
};

Canon canon(const l4lb::Address& a) {
  Canon c{};
  c.port = a.port();
  if (a.family() == AF_INET) {
    c.ip[10] = c.ip[11] = 0xff;
    std::memcpy(c.ip + 12, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
  } else {
    FUZZ_CHECK(a.family() == AF_INET6);
    std::memcpy(c.ip, &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr, 16);
  }
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz_text(data, size);
  l4lb::ProxyHeader h;
  std::string error;
  l4lb::ProxyParse r = l4lb::parse_proxy_header(in, h, &error);
  if (r == l4lb::ProxyParse::Invalid) FUZZ_CHECK(!error.empty());
  if (r != l4lb::ProxyParse::Complete) return 0;
  FUZZ_CHECK(h.length > 0 && h.length <= in.size());
  FUZZ_CHECK(h.version == l4lb::ProxyProtocol::V1 || h.version == l4lb::ProxyProtocol::V2);
  if (h.protocol != "TCP4" && h.protocol != "TCP6") {
    FUZZ_CHECK(h.protocol == "UNKNOWN");
    return 0;
  }
  std::string out;
  FUZZ_CHECK(l4lb::build_proxy_header(h.version, h.source, h.destination, out));
  FUZZ_CHECK(out.size() <= l4lb::kMaxProxyHeader);
  l4lb::ProxyHeader back;
  FUZZ_CHECK(l4lb::parse_proxy_header(out, back, &error) == l4lb::ProxyParse::Complete);
  FUZZ_CHECK(back.length == out.size() && back.version == h.version && !back.local_command);
  FUZZ_CHECK(canon(back.source) == canon(h.source));
  FUZZ_CHECK(canon(back.destination) == canon(h.destination));
  return 0;
}
