#include "l4lb/dataplane/proxy_header.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace l4lb {
namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr size_t kV1MaxLine = 107;  // including CRLF (the spec's worst case)
constexpr size_t kV2FixedSize = 16;

// One end of the connection as the header presents it.
struct Endpoint {
  int family = AF_UNSPEC;  // AF_INET (4 bytes used) or AF_INET6 (16 bytes)
  uint8_t ip[16]{};
  uint16_t port = 0;  // host order
};

// Takes the IP and port out of A; a v4-mapped IPv6 address becomes IPv4.
bool endpoint_of(const Address& a, Endpoint& e) {
  e = Endpoint{};
  e.port = a.port();
  if (a.family() == AF_INET) {
    e.family = AF_INET;
    std::memcpy(e.ip, &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
    return true;
  }
  if (a.family() == AF_INET6) {
    const auto* bytes = reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr.s6_addr;
    if (std::memcmp(bytes, kV4MappedPrefix, 12) == 0) {
      e.family = AF_INET;
      std::memcpy(e.ip, bytes + 12, 4);
    } else {
      e.family = AF_INET6;
      std::memcpy(e.ip, bytes, 16);
    }
    return true;
  }
  return false;
}

// IPv4 -> ::ffff:a.b.c.d
void map_to_v6(Endpoint& e) {
  if (e.family != AF_INET) return;
  uint8_t v4[4];
  std::memcpy(v4, e.ip, 4);
  std::memcpy(e.ip, kV4MappedPrefix, 12);
  std::memcpy(e.ip + 12, v4, 4);
  e.family = AF_INET6;
}

void append_v4_text(const uint8_t* ip, std::string& out) {
  for (int i = 0; i < 4; ++i) {
    if (i) out += '.';
    out += std::to_string(ip[i]);
  }
}

// RFC 5952: lowercase, no leading zeroes, the longest run (first on a tie) of two or
// more zero groups as "::". Unlike inet_ntop, never a dotted IPv4 tail: the PROXY
// spec allows hex groups only.
void append_v6_text(const uint8_t* ip, std::string& out) {
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(ip[2 * i] << 8 | ip[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) best = i, best_len = j - i;
    i = j;
  }
  if (best_len < 2) best = -1;
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (i != 0 && i != best + best_len) out += ':';
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      int nibble = (g[i] >> shift) & 0xf;
      if (nibble || started || shift == 0) {
        out += kHex[nibble];
        started = true;
      }
    }
  }
}

void append_be16(uint16_t v, std::string& out) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

// ------------------------------------------------------------------ parsing helpers

bool invalid(std::string* error, const char* why) {
  if (error) *error = why;
  return false;
}

// Decimal 0..MAX, no sign, no leading zeroes ("0" itself is fine).
bool parse_decimal(std::string_view s, unsigned max, unsigned& value) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= max;
}

bool parse_v4_text(std::string_view s, uint8_t* ip) {
  for (int i = 0; i < 4; ++i) {
    size_t dot = i < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos || dot > 3) return false;
    unsigned v;
    if (!parse_decimal(s.substr(0, dot), 255, v)) return false;
    ip[i] = static_cast<uint8_t>(v);
    s.remove_prefix(i < 3 ? dot + 1 : dot);
  }
  return s.empty();
}

// What inet_pton accepts for IPv6 (hex groups and "::"; a dotted tail too, as HAProxy
// itself writes "::ffff:a.b.c.d"), nothing else (no zone, no brackets).
bool parse_v6_text(std::string_view s, uint8_t* ip) {
  if (s.empty() || s.size() > 45) return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.';
    if (!ok) return false;
  }
  char buf[46];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  return inet_pton(AF_INET6, buf, ip) == 1;
}

void set_address(Address& a, int family, const uint8_t* ip, uint16_t port) {
  a = Address{};
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, ip, 4);
    sin->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, ip, 16);
    sin6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
  }
}

// Splits off the text up to the next single space (or the end when LAST).
bool next_field(std::string_view& rest, std::string_view& field, bool last) {
  size_t sp = rest.find(' ');
  if (last) {
    if (sp != std::string_view::npos) return false;
    field = rest;
    rest = {};
  } else {
    if (sp == std::string_view::npos) return false;
    field = rest.substr(0, sp);
    rest.remove_prefix(sp + 1);
  }
  return !field.empty();
}

ProxyParse parse_v1(std::string_view in, ProxyHeader& h, std::string* error) {
  static constexpr std::string_view kPrefix = "PROXY ";
  size_t n = std::min(in.size(), kPrefix.size());
  if (in.substr(0, n) != kPrefix.substr(0, n))
    return invalid(error, "not a PROXY header"), ProxyParse::Invalid;

  // The line ends at the first CR, which must be followed by LF, within 107 bytes.
  size_t limit = std::min(in.size(), kV1MaxLine);
  size_t end = in.substr(0, limit).find_first_of("\r\n");
  if (end == std::string_view::npos) {
    if (in.size() >= kV1MaxLine)
      return invalid(error, "v1: no CRLF in the first 107 bytes"), ProxyParse::Invalid;
    return ProxyParse::Incomplete;
  }
  if (in[end] == '\n') return invalid(error, "v1: LF without CR"), ProxyParse::Invalid;
  if (end + 1 >= kV1MaxLine)
    return invalid(error, "v1: no CRLF in the first 107 bytes"), ProxyParse::Invalid;
  if (end + 1 == in.size()) return ProxyParse::Incomplete;
  if (in[end + 1] != '\n') return invalid(error, "v1: CR without LF"), ProxyParse::Invalid;

  std::string_view rest = in.substr(kPrefix.size(), end - kPrefix.size());
  ProxyHeader out;
  out.version = ProxyProtocol::V1;
  out.length = end + 2;
  if (rest == "UNKNOWN" || rest.starts_with("UNKNOWN ")) {
    out.protocol = "UNKNOWN";
    h = out;
    return ProxyParse::Complete;
  }
  std::string_view proto, src, dst, sport, dport;
  if (!next_field(rest, proto, false) || !next_field(rest, src, false) ||
      !next_field(rest, dst, false) || !next_field(rest, sport, false) ||
      !next_field(rest, dport, true))
    return invalid(error, "v1: expected \"PROXY TCP4|TCP6 SRC DST SPORT DPORT\""),
           ProxyParse::Invalid;
  int family;
  uint8_t sip[16], dip[16];
  if (proto == "TCP4") {
    family = AF_INET;
    out.protocol = "TCP4";
    if (!parse_v4_text(src, sip) || !parse_v4_text(dst, dip))
      return invalid(error, "v1: bad IPv4 address"), ProxyParse::Invalid;
  } else if (proto == "TCP6") {
    family = AF_INET6;
    out.protocol = "TCP6";
    if (!parse_v6_text(src, sip) || !parse_v6_text(dst, dip))
      return invalid(error, "v1: bad IPv6 address"), ProxyParse::Invalid;
  } else {
    return invalid(error, "v1: protocol must be TCP4, TCP6 or UNKNOWN"), ProxyParse::Invalid;
  }
  unsigned sp, dp;
  if (!parse_decimal(sport, 65535, sp) || !parse_decimal(dport, 65535, dp))
    return invalid(error, "v1: bad port"), ProxyParse::Invalid;
  set_address(out.source, family, sip, static_cast<uint16_t>(sp));
  set_address(out.destination, family, dip, static_cast<uint16_t>(dp));
  h = out;
  return ProxyParse::Complete;
}

ProxyParse parse_v2(std::string_view in, ProxyHeader& h, std::string* error) {
  size_t n = std::min(in.size(), kProxyV2Signature.size());
  if (in.substr(0, n) != kProxyV2Signature.substr(0, n))
    return invalid(error, "not a PROXY header"), ProxyParse::Invalid;
  if (in.size() > 12) {
    auto ver_cmd = static_cast<uint8_t>(in[12]);
    if (ver_cmd >> 4 != 2) return invalid(error, "v2: version is not 2"), ProxyParse::Invalid;
    if ((ver_cmd & 0xf) > 1)
      return invalid(error, "v2: command is neither LOCAL nor PROXY"), ProxyParse::Invalid;
  }
  if (in.size() > 13) {
    auto fam = static_cast<uint8_t>(in[13]);
    if (fam >> 4 > 3 || (fam & 0xf) > 2)
      return invalid(error, "v2: unknown address family or protocol"), ProxyParse::Invalid;
  }
  if (in.size() < kV2FixedSize) return ProxyParse::Incomplete;
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(in[i]); };
  size_t len = static_cast<size_t>(u8(14) << 8 | u8(15));
  bool local = (u8(12) & 0xf) == 0;
  uint8_t fam = u8(13);
  size_t need = fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0;
  if (!local && len < need)
    return invalid(error, "v2: length too short for the addresses"), ProxyParse::Invalid;
  if (in.size() < kV2FixedSize + len) return ProxyParse::Incomplete;

  ProxyHeader out;
  out.version = ProxyProtocol::V2;
  out.local_command = local;
  out.length = kV2FixedSize + len;
  out.protocol = "UNKNOWN";
  if (!local && need) {
    const auto* p = reinterpret_cast<const uint8_t*>(in.data()) + kV2FixedSize;
    size_t alen = fam == 0x11 ? 4 : 16;
    int family = fam == 0x11 ? AF_INET : AF_INET6;
    auto port_at = [&](size_t off) { return static_cast<uint16_t>(p[off] << 8 | p[off + 1]); };
    set_address(out.source, family, p, port_at(2 * alen));
    set_address(out.destination, family, p + alen, port_at(2 * alen + 2));
    out.protocol = fam == 0x11 ? "TCP4" : "TCP6";
  }
  h = out;
  return ProxyParse::Complete;
}

}  // namespace

bool build_proxy_header(ProxyProtocol version, const Address& client, const Address& local,
                        std::string& out) {
  if (version == ProxyProtocol::Off) return true;
  Endpoint src, dst;
  if (!endpoint_of(client, src) || !endpoint_of(local, dst)) return false;
  if (src.family != dst.family) {
    map_to_v6(src);
    map_to_v6(dst);
  }
  const bool v4 = src.family == AF_INET;

  if (version == ProxyProtocol::V1) {
    out += v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
    auto text = v4 ? append_v4_text : append_v6_text;
    text(src.ip, out);
    out += ' ';
    text(dst.ip, out);
    out += ' ';
    out += std::to_string(src.port);
    out += ' ';
    out += std::to_string(dst.port);
    out += "\r\n";
    return true;
  }

  const size_t alen = v4 ? 4 : 16;
  out += kProxyV2Signature;
  out += static_cast<char>(0x21);            // version 2, command PROXY
  out += static_cast<char>(v4 ? 0x11 : 0x21);  // TCP over IPv4 / IPv6
  append_be16(static_cast<uint16_t>(2 * alen + 4), out);
  out.append(reinterpret_cast<const char*>(src.ip), alen);
  out.append(reinterpret_cast<const char*>(dst.ip), alen);
  append_be16(src.port, out);
  append_be16(dst.port, out);
  return true;
}

ProxyParse parse_proxy_header(std::string_view in, ProxyHeader& header, std::string* error) {
  if (in.empty()) return ProxyParse::Incomplete;
  if (in[0] == 'P') return parse_v1(in, header, error);
  if (in[0] == '\r') return parse_v2(in, header, error);
  invalid(error, "not a PROXY header");
  return ProxyParse::Invalid;
}

}  // namespace l4lb
