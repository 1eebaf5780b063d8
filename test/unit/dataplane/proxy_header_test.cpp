// PROXY protocol headers against the byte layouts of HAProxy's doc/proxy-protocol.txt
// (expected bytes written out by hand), then the parser, round trips and a fuzz pass.
#include "l4lb/dataplane/proxy_header.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

using l4lb::Address;
using l4lb::build_proxy_header;
using l4lb::parse_proxy_header;
using l4lb::ProxyHeader;
using l4lb::ProxyParse;
using l4lb::ProxyProtocol;

namespace {

Address addr(std::string_view text) {
  Address a;
  std::string error;
  bool ok = l4lb::parse_address(text, a, error, /*allow_port_zero=*/true);
  INFO("address \"" << std::string(text) << "\": " << error);
  REQUIRE(ok);
  return a;
}

std::string header(ProxyProtocol v, std::string_view client, std::string_view local) {
  std::string out;
  REQUIRE(build_proxy_header(v, addr(client), addr(local), out));
  return out;
}

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s += static_cast<char>(b);
  return s;
}

// The 12-byte v2 signature, written out from the spec rather than taken from the header.
const std::string kSig = bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                0x54, 0x0A});

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
    out += ' ';
  }
  return out;
}

#define CHECK_BYTES(got, want)                                     \
  do {                                                             \
    std::string g_ = (got), w_ = (want);                           \
    INFO("got:  " << hex(g_));                                     \
    INFO("want: " << hex(w_));                                     \
    CHECK(g_ == w_);                                               \
  } while (0)

ProxyHeader parsed(std::string_view in) {
  ProxyHeader h;
  std::string error;
  ProxyParse r = parse_proxy_header(in, h, &error);
  INFO("parsing " << hex(in) << ": " << error);
  REQUIRE(r == ProxyParse::Complete);
  return h;
}

ProxyParse parse_result(std::string_view in) {
  ProxyHeader h;
  return parse_proxy_header(in, h);
}

// The v1 TCP6 text of an IPv6 literal, via the builder (both ends the same address).
std::string v6_text(std::string_view literal) {
  std::string line = header(ProxyProtocol::V1, "[" + std::string(literal) + "]:1",
                            "[" + std::string(literal) + "]:2");
  REQUIRE(line.starts_with("PROXY TCP6 "));
  std::string rest = line.substr(11);
  return rest.substr(0, rest.find(' '));
}

}  // namespace

// ------------------------------------------------------------------ v1

TEST_CASE("proxy v1: IPv4, the spec's own example") {
  CHECK(header(ProxyProtocol::V1, "192.168.0.1:56324", "192.168.0.11:443") ==
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST_CASE("proxy v1: IPv4 longest line is 56 bytes, shortest fields have no leading zeroes") {
  std::string longest = header(ProxyProtocol::V1, "255.255.255.255:65535", "255.255.255.255:65535");
  CHECK(longest == "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  CHECK(longest.size() == 56);
  CHECK(header(ProxyProtocol::V1, "0.0.0.0:0", "10.0.0.1:7") == "PROXY TCP4 0.0.0.0 10.0.0.1 0 7\r\n");
}

TEST_CASE("proxy v1: IPv6") {
  CHECK(header(ProxyProtocol::V1, "[2001:db8::1]:40000", "[2001:db8:1::abcd]:443") ==
        "PROXY TCP6 2001:db8::1 2001:db8:1::abcd 40000 443\r\n");
  CHECK(header(ProxyProtocol::V1, "[::1]:51000", "[::1]:8080") == "PROXY TCP6 ::1 ::1 51000 8080\r\n");
}

TEST_CASE("proxy v1: IPv6 longest line is 104 bytes = kMaxProxyHeader") {
  std::string all = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
  std::string line = header(ProxyProtocol::V1, all, all);
  CHECK(line ==
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
  CHECK(line.size() == 104);
  CHECK(line.size() == l4lb::kMaxProxyHeader);
}

TEST_CASE("proxy v1: IPv6 text is RFC 5952 and hex groups only") {
  CHECK(v6_text("::") == "::");
  CHECK(v6_text("1::") == "1::");
  CHECK(v6_text("2001:0DB8:0000:0000:0000:0000:0000:000A") == "2001:db8::a");
  CHECK(v6_text("2001:db8:0:1:1:1:1:1") == "2001:db8:0:1:1:1:1:1");  // one zero group stays
  CHECK(v6_text("2001:0:0:1:0:0:0:1") == "2001:0:0:1::1");          // the longest run
  CHECK(v6_text("2001:db8:0:0:1:0:0:1") == "2001:db8::1:0:0:1");    // the first of equal runs
  CHECK(v6_text("fe80::1:0:0:0") == "fe80::1:0:0:0");               // first run is longer
  // No dotted tail (inet_ntop would write "::1.2.3.4"): the spec allows hex groups only.
  CHECK(v6_text("::102:304") == "::102:304");
  CHECK(v6_text("64:ff9b::c000:201") == "64:ff9b::c000:201");
}

TEST_CASE("proxy v1: IPv6 text equals inet_ntop wherever inet_ntop writes no dotted tail") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    in6_addr ip{};
    // Mostly zero groups, so that runs of zeroes of every length and place occur.
    for (int g = 0; g < 8; ++g) {
      uint16_t v = rng() % 3 == 0 ? static_cast<uint16_t>(rng()) : 0;
      if (rng() % 4 == 0) v &= 0xf;
      ip.s6_addr[2 * g] = static_cast<uint8_t>(v >> 8);
      ip.s6_addr[2 * g + 1] = static_cast<uint8_t>(v);
    }
    char want[INET6_ADDRSTRLEN];
    REQUIRE(inet_ntop(AF_INET6, &ip, want, sizeof want));
    if (std::strchr(want, '.')) continue;  // v4-mapped/compatible: checked above
    INFO("address " << want);
    CHECK(v6_text(want) == want);
  }
}

TEST_CASE("proxy v1: an IPv4 client on an IPv6 listener (v4-mapped) is unmapped to TCP4") {
  // accept() on a dual-stack [::] socket gives ::ffff:127.0.0.2 / ::ffff:127.0.0.1.
  CHECK(header(ProxyProtocol::V1, "[::ffff:127.0.0.2]:5000", "[::ffff:127.0.0.1]:8080") ==
        "PROXY TCP4 127.0.0.2 127.0.0.1 5000 8080\r\n");
  // Same bytes as the listener on 0.0.0.0 would give.
  CHECK(header(ProxyProtocol::V1, "[::ffff:127.0.0.2]:5000", "[::ffff:127.0.0.1]:8080") ==
        header(ProxyProtocol::V1, "127.0.0.2:5000", "127.0.0.1:8080"));
}

TEST_CASE("proxy v1: one IPv4 and one real IPv6 end: TCP6 with the IPv4 one v4-mapped") {
  // Not possible for the two ends of one socket, but the header must still be one family.
  CHECK(header(ProxyProtocol::V1, "10.0.0.1:1", "[2001:db8::5]:80") ==
        "PROXY TCP6 ::ffff:a00:1 2001:db8::5 1 80\r\n");
  CHECK(header(ProxyProtocol::V1, "[2001:db8::5]:80", "[::ffff:10.0.0.1]:1") ==
        "PROXY TCP6 2001:db8::5 ::ffff:a00:1 80 1\r\n");
}

// ------------------------------------------------------------------ v2

TEST_CASE("proxy v2: IPv4 is 16 + 12 bytes") {
  std::string want = kSig + bytes({0x21,                      // version 2, PROXY
                                   0x11,                      // TCP over IPv4
                                   0x00, 0x0C,                // 12 address bytes
                                   192, 168, 0, 1,            // source
                                   192, 168, 0, 11,           // destination
                                   0xDC, 0x04,                // 56324
                                   0x01, 0xBB});              // 443
  std::string got = header(ProxyProtocol::V2, "192.168.0.1:56324", "192.168.0.11:443");
  CHECK_BYTES(got, want);
  CHECK(got.size() == 28);
}

TEST_CASE("proxy v2: IPv6 is 16 + 36 bytes") {
  std::string want =
      kSig + bytes({0x21, 0x21, 0x00, 0x24,
                    // 2001:db8::1
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
                    // 2001:db8:1::abcd
                    0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd,
                    0x9C, 0x40,    // 40000
                    0x01, 0xBB});  // 443
  std::string got = header(ProxyProtocol::V2, "[2001:db8::1]:40000", "[2001:db8:1::abcd]:443");
  CHECK_BYTES(got, want);
  CHECK(got.size() == 52);
}

TEST_CASE("proxy v2: ports and addresses are in network byte order, edge values") {
  std::string want = kSig + bytes({0x21, 0x11, 0x00, 0x0C, 0, 0, 0, 0, 255, 255, 255, 255,
                                   0x00, 0x00, 0xFF, 0xFF});
  CHECK_BYTES(header(ProxyProtocol::V2, "0.0.0.0:0", "255.255.255.255:65535"), want);
}

TEST_CASE("proxy v2: an IPv4 client on an IPv6 listener (v4-mapped) is unmapped to 0x11") {
  std::string want = kSig + bytes({0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 2, 127, 0, 0, 1,
                                   0x13, 0x88,    // 5000
                                   0x1F, 0x90});  // 8080
  CHECK_BYTES(header(ProxyProtocol::V2, "[::ffff:127.0.0.2]:5000", "[::ffff:127.0.0.1]:8080"),
              want);
}

TEST_CASE("proxy v2: one IPv4 and one real IPv6 end: 0x21 with the IPv4 one v4-mapped") {
  std::string want =
      kSig + bytes({0x21, 0x21, 0x00, 0x24,
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1,            // ::ffff:10.0.0.1
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,    // 2001:db8::5
                    0x00, 0x01, 0x00, 0x50});
  CHECK_BYTES(header(ProxyProtocol::V2, "10.0.0.1:1", "[2001:db8::5]:80"), want);
}

// ------------------------------------------------------------------ builder contract

TEST_CASE("proxy header: appends to OUT; off appends nothing") {
  std::string out = "kept";
  REQUIRE(build_proxy_header(ProxyProtocol::V1, addr("1.2.3.4:5"), addr("6.7.8.9:10"), out));
  CHECK(out == "keptPROXY TCP4 1.2.3.4 6.7.8.9 5 10\r\n");
  size_t before = out.size();
  REQUIRE(build_proxy_header(ProxyProtocol::V2, addr("1.2.3.4:5"), addr("6.7.8.9:10"), out));
  CHECK(out.size() == before + 28);
  CHECK(out.substr(before, 12) == kSig);

  std::string off = "x";
  CHECK(build_proxy_header(ProxyProtocol::Off, addr("1.2.3.4:5"), addr("6.7.8.9:10"), off));
  CHECK(off == "x");
}

TEST_CASE("proxy header: families that cannot be expressed give false and leave OUT alone") {
  Address unspec;  // AF_UNSPEC
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/run/x.sock");
  Address unix_addr = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&un), sizeof un);
  for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    std::string out = "kept";
    CHECK_FALSE(build_proxy_header(v, unspec, addr("1.2.3.4:5"), out));
    CHECK_FALSE(build_proxy_header(v, addr("1.2.3.4:5"), unspec, out));
    CHECK_FALSE(build_proxy_header(v, unix_addr, unix_addr, out));
    CHECK(out == "kept");
  }
}

TEST_CASE("proxy header: no header is longer than kMaxProxyHeader") {
  std::string all6 = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
  for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    CHECK(header(v, all6, all6).size() <= l4lb::kMaxProxyHeader);
    CHECK(header(v, "255.255.255.255:65535", all6).size() <= l4lb::kMaxProxyHeader);
  }
}

// ------------------------------------------------------------------ parser

TEST_CASE("proxy parse: round trips, payload left in place") {
  const char* pairs[][2] = {
      {"192.168.0.1:56324", "192.168.0.11:443"},
      {"[2001:db8::1]:40000", "[2001:db8:1::abcd]:443"},
      {"0.0.0.0:0", "255.255.255.255:65535"},
      {"[::]:0", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
  };
  for (auto& p : pairs)
    for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
      std::string wire = header(v, p[0], p[1]);
      size_t hlen = wire.size();
      wire += "GET / HTTP/1.0\r\n\r\n";
      ProxyHeader h = parsed(wire);
      CHECK(h.version == v);
      CHECK(h.length == hlen);
      CHECK_FALSE(h.local_command);
      CHECK(h.source == addr(p[0]));
      CHECK(h.destination == addr(p[1]));
      CHECK(h.protocol == (addr(p[0]).family() == AF_INET ? "TCP4" : "TCP6"));
    }
}

TEST_CASE("proxy parse: v4-mapped input comes back as plain IPv4") {
  for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    ProxyHeader h = parsed(header(v, "[::ffff:127.0.0.2]:5000", "[::ffff:127.0.0.1]:8080"));
    CHECK(h.protocol == "TCP4");
    CHECK(h.source.to_string() == "127.0.0.2:5000");
    CHECK(h.destination.to_string() == "127.0.0.1:8080");
  }
}

TEST_CASE("proxy parse: every proper prefix is Incomplete, never Invalid") {
  for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2})
    for (auto [c, l] : {std::pair{"10.1.2.3:4567", "10.9.8.7:80"},
                        std::pair{"[2001:db8::1]:1", "[2001:db8::2]:2"}}) {
      std::string wire = header(v, c, l);
      for (size_t n = 0; n < wire.size(); ++n) {
        INFO("prefix of " << n << " bytes: " << hex(wire.substr(0, n)));
        CHECK(parse_result(std::string_view(wire).substr(0, n)) == ProxyParse::Incomplete);
      }
      CHECK(parse_result(wire) == ProxyParse::Complete);
    }
}

TEST_CASE("proxy parse: v1 UNKNOWN") {
  ProxyHeader h = parsed("PROXY UNKNOWN\r\nrest");
  CHECK(h.protocol == "UNKNOWN");
  CHECK(h.length == 15);
  std::string worst =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  CHECK(worst.size() == 107);
  CHECK(parsed(worst).length == 107);
}

TEST_CASE("proxy parse: HAProxy-style dotted tail in TCP6 is accepted") {
  ProxyHeader h = parsed("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n");
  CHECK(h.source.to_string() == "[::ffff:192.0.2.1]:1");
}

TEST_CASE("proxy parse: v1 that does not match the spec exactly is Invalid") {
  const char* bad[] = {
      "GET / HTTP/1.1\r\n",
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      // two spaces
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      // trailing space
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         // a field missing
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     // one too many
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         // LF alone
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",        // CR alone
      "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",      // leading zero
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",      // leading zero in a port
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
      "PROXY TCP4 ::1 ::1 1 2\r\n",               // family mismatch
      "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",      // zone
      "PROXY TCP6 [::1] ::1 1 2\r\n",
      "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY\r\n",
      "PROXY \r\n",
  };
  for (const char* b : bad) {
    INFO(b);
    CHECK(parse_result(b) == ProxyParse::Invalid);
  }
  // No CRLF within 107 bytes.
  CHECK(parse_result("PROXY UNKNOWN " + std::string(93, 'a')) == ProxyParse::Invalid);
  CHECK(parse_result("PROXY UNKNOWN " + std::string(92, 'a')) == ProxyParse::Incomplete);
  CHECK(parse_result("PROXY UNKNOWN " + std::string(92, 'a') + "\r") == ProxyParse::Invalid);
  CHECK(parse_result("PROXY UNKNOWN " + std::string(91, 'a') + "\r\n") == ProxyParse::Complete);
  // Invalid as soon as the bytes so far cannot start a header.
  CHECK(parse_result("PRX") == ProxyParse::Invalid);
  CHECK(parse_result("X") == ProxyParse::Invalid);
}

TEST_CASE("proxy parse: v2 LOCAL, TLVs, unsupported families") {
  // LOCAL with no addresses (what a sender should write for its own health checks).
  ProxyHeader h = parsed(kSig + bytes({0x20, 0x00, 0x00, 0x00}) + "payload");
  CHECK(h.local_command);
  CHECK(h.protocol == "UNKNOWN");
  CHECK(h.length == 16);
  // LOCAL with addresses present: skipped, not used.
  h = parsed(kSig + bytes({0x20, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
  CHECK(h.local_command);
  CHECK(h.length == 28);
  CHECK(h.source.family() == AF_UNSPEC);
  // PROXY over IPv4 followed by a NOOP TLV (type 4, length 4): all part of the header.
  h = parsed(kSig + bytes({0x21, 0x11, 0x00, 0x13, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2,
                           0x04, 0x00, 0x04, 0, 0, 0, 0}) + "x");
  CHECK(h.length == 16 + 19);
  CHECK(h.source.to_string() == "1.2.3.4:1");
  CHECK(h.destination.to_string() == "5.6.7.8:2");
  // UDP over IPv4 and UNIX stream: valid, addresses not interpreted.
  h = parsed(kSig + bytes({0x21, 0x12, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
  CHECK(h.protocol == "UNKNOWN");
  h = parsed(kSig + bytes({0x21, 0x31, 0x00, 0xD8}) + std::string(216, '\0'));
  CHECK(h.protocol == "UNKNOWN");
  CHECK(h.length == 16 + 216);
}

TEST_CASE("proxy parse: v2 that does not match the spec is Invalid") {
  auto v4body = bytes({1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2});
  CHECK(parse_result(kSig + bytes({0x11, 0x11, 0x00, 0x0C}) + v4body) == ProxyParse::Invalid);
  CHECK(parse_result(kSig + bytes({0x22, 0x11, 0x00, 0x0C}) + v4body) == ProxyParse::Invalid);
  CHECK(parse_result(kSig + bytes({0x21, 0x41, 0x00, 0x0C}) + v4body) == ProxyParse::Invalid);
  CHECK(parse_result(kSig + bytes({0x21, 0x13, 0x00, 0x0C}) + v4body) == ProxyParse::Invalid);
  CHECK(parse_result(kSig + bytes({0x21, 0x11, 0x00, 0x0B}) + v4body) == ProxyParse::Invalid);
  CHECK(parse_result(kSig + bytes({0x21, 0x21, 0x00, 0x0C}) + v4body) == ProxyParse::Invalid);
  // Fails early, on the 13th byte, without waiting for the rest.
  CHECK(parse_result(kSig + bytes({0x31})) == ProxyParse::Invalid);
  std::string wrong_sig = kSig;
  wrong_sig[4] = 'X';
  CHECK(parse_result(wrong_sig.substr(0, 5)) == ProxyParse::Invalid);
  CHECK(parse_result("\r\n\r\nX") == ProxyParse::Invalid);
  CHECK(parse_result("\r\n\r\n\r\n") == ProxyParse::Invalid);
}

TEST_CASE("proxy parse: random mutations never read out of bounds and stay consistent") {
  std::mt19937 rng(4242);
  std::vector<std::string> seeds;
  for (ProxyProtocol v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    seeds.push_back(header(v, "192.168.0.1:56324", "192.168.0.11:443"));
    seeds.push_back(header(v, "[2001:db8::1]:40000", "[2001:db8:1::abcd]:443"));
  }
  seeds.push_back(kSig + bytes({0x21, 0x11, 0x00, 0x13, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2,
                                0x04, 0x00, 0x04, 0, 0, 0, 0}));
  int complete = 0, incomplete = 0, invalid = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = static_cast<char>(rng()); break;
        case 1: s.erase(at, 1); break;
        case 2: s.insert(at, 1, static_cast<char>(rng())); break;
        case 3: s.resize(at); break;
      }
    }
    // Exactly sized heap copy: ASan catches any read past the end.
    std::unique_ptr<char[]> buf(new char[s.size() ? s.size() : 1]);
    std::memcpy(buf.get(), s.data(), s.size());
    ProxyHeader h;
    std::string error;
    switch (parse_proxy_header(std::string_view(buf.get(), s.size()), h, &error)) {
      case ProxyParse::Complete:
        ++complete;
        CHECK(h.length <= s.size());
        CHECK(h.length >= 15);
        break;
      case ProxyParse::Incomplete: ++incomplete; break;
      case ProxyParse::Invalid:
        ++invalid;
        CHECK_FALSE(error.empty());
        break;
    }
  }
  CHECK(complete > 0);
  CHECK(incomplete > 0);
  CHECK(invalid > 0);
}
