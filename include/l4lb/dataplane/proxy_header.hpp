// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, v1 text and v2 binary)
// that a service with `proxy_protocol: v1|v2` writes to a backend before any client
// byte. Pure: no I/O.
//
// Families. Source and destination in one header are always of one family:
//   - a v4-mapped IPv6 address (::ffff:a.b.c.d, what an IPv4 client looks like on a
//     dual-stack [::] listener) is unmapped to IPv4 first, so an IPv4 client is reported
//     as TCP4 / 0x11 whether l4lb listens on 0.0.0.0 or on [::];
//   - both IPv4 -> TCP4 / 0x11; both IPv6 -> TCP6 / 0x21;
//   - one IPv4 and one (real) IPv6 -> TCP6 / 0x21 with the IPv4 one written as
//     ::ffff:a.b.c.d (as HAProxy does); cannot happen for the two ends of one socket;
//   - anything else (AF_UNSPEC, AF_UNIX, ...) cannot be expressed: false.
// v1 writes IPv6 addresses in RFC 5952 form but always as hex groups ("::ffff:7f00:2",
// never "::ffff:127.0.0.2"): the spec allows only 4-hex-digit groups and "::".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "l4lb/base/address.hpp"
#include "l4lb/config/config.hpp"

namespace l4lb {

// Largest header build_proxy_header() appends: v1 over IPv6 (104 bytes, the spec's
// maximum for TCP6 lines); v2 over IPv6 is 16 + 36 = 52 bytes.
constexpr size_t kMaxProxyHeader = 104;

// The v2 signature: \r\n\r\n\0\r\nQUIT\n.
inline constexpr std::string_view kProxyV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

// The header for a connection from CLIENT to LOCAL (the l4lb address the client
// connected to), appended to OUT. VERSION Off appends nothing and returns true.
// Returns false (OUT unchanged) if the families cannot be expressed (see above).
bool build_proxy_header(ProxyProtocol version, const Address& client, const Address& local,
                        std::string& out);

// ------------------------------------------------------------------ parsing (receivers, tests)

struct ProxyHeader {
  ProxyProtocol version = ProxyProtocol::Off;
  // v2 only: true for the LOCAL command (a connection the proxy made on its own, e.g. a
  // health check: the receiver uses the real connection's addresses; PROTOCOL is then
  // "UNKNOWN"). v1 has no LOCAL command.
  bool local_command = false;
  // "TCP4", "TCP6", "UNKNOWN" (v1 UNKNOWN; v2 AF_UNSPEC or a family other than TCP over
  // IPv4/IPv6, whose addresses are skipped). SOURCE/DESTINATION are set only for TCP4/TCP6.
  std::string_view protocol;
  Address source;
  Address destination;
  size_t length = 0;  // bytes of IN taken by the header (v2: including any TLVs)
};

enum class ProxyParse {
  Complete,    // HEADER filled; the payload starts at IN[header.length]
  Incomplete,  // a valid prefix of a header so far: read more and call again
  Invalid,     // not a PROXY header, or one that does not match the spec exactly
};

// Parses a header at the start of IN, strictly as the spec says a receiver must:
// v1 needs its CRLF within 107 bytes, exactly one space between fields, no leading
// zeroes, addresses of the announced family; v2 needs the signature, version 2,
// command LOCAL or PROXY, and a length that holds the announced addresses. ERROR (if
// not null) says why on Invalid.
ProxyParse parse_proxy_header(std::string_view in, ProxyHeader& header,
                              std::string* error = nullptr);

}  // namespace l4lb
