// CIDRs: parsing (v4, v6, bare, every kind of mistake) and the set (longest prefix first,
// IPv4-mapped IPv6 clients, 10,000 entries with the time of a lookup printed).
#include "l4lb/base/cidr.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <vector>

using namespace l4lb;

namespace {

Cidr ok(std::string_view text) {
  Cidr c;
  std::string error;
  bool parsed = parse_cidr(text, c, error);
  INFO("parsing \"" << std::string(text) << "\": " << error);
  CHECK(parsed);
  return c;
}

std::string bad(std::string_view text) {
  Cidr c;
  std::string error;
  CHECK_FALSE(parse_cidr(text, c, error));
  CHECK_FALSE(error.empty());
  return error;
}

std::string text_of(const Cidr& c) {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(c.family, c.bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(c.prefix);
}

Address ip(const std::string& host) {
  Address a;
  std::string error;
  bool v6 = host.find(':') != std::string::npos;
  REQUIRE(parse_address(v6 ? "[" + host + "]:1" : host + ":1", a, error));
  return a;
}

CidrSet set_of(std::initializer_list<std::string_view> texts) {
  CidrSet s;
  for (std::string_view t : texts) s.add(ok(t));
  return s;
}

}  // namespace

TEST_CASE("cidr: IPv4") {
  Cidr c = ok("10.0.0.0/8");
  CHECK(c.family == AF_INET);
  CHECK(c.prefix == 8);
  CHECK(text_of(c) == "10.0.0.0/8");
  CHECK(text_of(ok("192.168.1.0/24")) == "192.168.1.0/24");
  CHECK(text_of(ok("0.0.0.0/0")) == "0.0.0.0/0");
  CHECK(text_of(ok("10.1.2.3/32")) == "10.1.2.3/32");
  CHECK(text_of(ok("10.1.2.3")) == "10.1.2.3/32");  // bare: one address
  CHECK(text_of(ok("10.1.2.128/25")) == "10.1.2.128/25");
  Cidr b = ok("10.1.2.3");
  for (size_t i = 4; i < 16; ++i) CHECK(b.bytes[i] == 0);
}

TEST_CASE("cidr: IPv6") {
  Cidr c = ok("fd00::/8");
  CHECK(c.family == AF_INET6);
  CHECK(c.prefix == 8);
  CHECK(text_of(c) == "fd00::/8");
  CHECK(text_of(ok("::1/128")) == "::1/128");
  CHECK(text_of(ok("::1")) == "::1/128");
  CHECK(text_of(ok("::/0")) == "::/0");
  CHECK(text_of(ok("2001:db8::/32")) == "2001:db8::/32");
  CHECK(text_of(ok("2001:DB8:0:0:8000::/65")) == "2001:db8:0:0:8000::/65");
  CHECK(text_of(ok("::ffff:10.0.0.0/104")) == "::ffff:10.0.0.0/104");  // parsed as written
}

TEST_CASE("cidr: mistakes, each with a clear message") {
  CHECK(bad("") == "empty CIDR (expected ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\")");
  CHECK(bad("/8") ==
        "missing address in \"/8\" (expected ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\")");
  CHECK(bad("10.0.0.1/8") ==
        "host bits set past the /8 prefix in \"10.0.0.1/8\" (the network is \"10.0.0.0/8\", one "
        "address is \"10.0.0.1/32\")");
  CHECK(bad("fd00::1/64") ==
        "host bits set past the /64 prefix in \"fd00::1/64\" (the network is \"fd00::/64\", one "
        "address is \"fd00::1/128\")");
  CHECK(bad("10.0.0.0/33") == "prefix length must be 0..32, got \"33\" in \"10.0.0.0/33\"");
  CHECK(bad("::/129") == "prefix length must be 0..128, got \"129\" in \"::/129\"");
  CHECK(bad("10.0.0.0/") == "prefix length must be 0..32, got \"\" in \"10.0.0.0/\"");
  CHECK(bad("10.0.0.0/-1") == "prefix length must be 0..32, got \"-1\" in \"10.0.0.0/-1\"");
  CHECK(bad("10.0.0.0/8/8") == "prefix length must be 0..32, got \"8/8\" in \"10.0.0.0/8/8\"");
  CHECK(bad("10.0.0.0/0008") == "prefix length must be 0..32, got \"0008\" in \"10.0.0.0/0008\"");
  CHECK(bad("10.0.0.0/4848536150") ==  // found by the fuzzer: no overflow on long digits
        "prefix length must be 0..32, got \"4848536150\" in \"10.0.0.0/4848536150\"");
  CHECK(bad("09.0.0.0/8") == "invalid IPv4 address \"09.0.0.0\" in \"09.0.0.0/8\"");
  CHECK(bad("10.0.0.0/ 8") == "prefix length must be 0..32, got \" 8\" in \"10.0.0.0/ 8\"");
  CHECK(bad("10.0.0.256/32") == "invalid IPv4 address \"10.0.0.256\" in \"10.0.0.256/32\"");
  CHECK(bad("10.0.0/24") == "invalid IPv4 address \"10.0.0\" in \"10.0.0/24\"");
  CHECK(bad("localhost") ==
        "\"localhost\" is not an IP address (a CIDR takes no host names), in \"localhost\"");
  CHECK(
      bad("db1.internal/32") ==
      "\"db1.internal\" is not an IP address (a CIDR takes no host names), in \"db1.internal/32\"");
  CHECK(bad("10.0.0.1:80") == "a CIDR has no port, got \"10.0.0.1:80\"");
  CHECK(bad("[::1]/128") ==
        "write an IPv6 CIDR without brackets, e.g. \"::1/128\", got \"[::1]/128\"");
  CHECK(bad("[::1]:80") ==
        "write an IPv6 CIDR without brackets, e.g. \"::1/128\", got \"[::1]:80\"");
  CHECK(bad("fe80::1%eth0") == "invalid IPv6 address \"fe80::1%eth0\" in \"fe80::1%eth0\"");
  CHECK(bad(":::1") == "invalid IPv6 address \":::1\" in \":::1\"");
  CHECK(bad(" 10.0.0.0/8") ==
        "\" 10.0.0.0\" is not an IP address (a CIDR takes no host names), "
        "in \" 10.0.0.0/8\"");
}

TEST_CASE("cidr set: IPv4, longest prefix and the edges of each network") {
  CidrSet s = set_of({"10.0.0.0/8", "192.168.1.0/24", "172.16.5.4", "10.1.0.0/16"});
  CHECK(s.size() == 4);
  CHECK_FALSE(s.empty());
  CHECK(s.contains(ip("10.0.0.0")));
  CHECK(s.contains(ip("10.255.255.255")));
  CHECK(s.contains(ip("10.1.2.3")));
  CHECK_FALSE(s.contains(ip("11.0.0.0")));
  CHECK_FALSE(s.contains(ip("9.255.255.255")));
  CHECK(s.contains(ip("192.168.1.0")));
  CHECK(s.contains(ip("192.168.1.255")));
  CHECK_FALSE(s.contains(ip("192.168.2.0")));
  CHECK(s.contains(ip("172.16.5.4")));  // /32
  CHECK_FALSE(s.contains(ip("172.16.5.5")));
  CHECK_FALSE(s.contains(ip("::1")));      // no IPv6 entry
  CHECK_FALSE(s.contains(ip("::a00:1")));  // IPv4-compatible (::10.0.0.1) is not mapped
  CHECK_FALSE(s.contains(Address{}));      // no family
}

TEST_CASE("cidr set: /0, /32, /128 and empty") {
  CidrSet none;
  CHECK(none.empty());
  CHECK(none.size() == 0);
  CHECK_FALSE(none.contains(ip("10.0.0.1")));
  CHECK_FALSE(none.contains(ip("::1")));

  CidrSet all4 = set_of({"0.0.0.0/0"});
  CHECK(all4.contains(ip("0.0.0.0")));
  CHECK(all4.contains(ip("255.255.255.255")));
  CHECK(all4.contains(ip("::ffff:1.2.3.4")));
  CHECK_FALSE(all4.contains(ip("::1")));

  CidrSet all6 = set_of({"::/0"});
  CHECK(all6.contains(ip("::1")));
  CHECK(all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  CHECK_FALSE(all6.contains(ip("1.2.3.4")));         // IPv4 clients match IPv4 entries only
  CHECK_FALSE(all6.contains(ip("::ffff:1.2.3.4")));  // also when they arrive mapped

  CidrSet one = set_of({"10.0.0.7/32", "2001:db8::7"});
  CHECK(one.contains(ip("10.0.0.7")));
  CHECK_FALSE(one.contains(ip("10.0.0.6")));
  CHECK_FALSE(one.contains(ip("10.0.0.8")));
  CHECK(one.contains(ip("2001:db8::7")));
  CHECK_FALSE(one.contains(ip("2001:db8::6")));
  CHECK_FALSE(one.contains(ip("2001:db8::8")));
}

TEST_CASE("cidr set: IPv6 prefixes that do not end on a byte") {
  CidrSet s = set_of({"2001:db8:0:0:8000::/65", "fc00::/7"});
  CHECK(s.contains(ip("2001:db8::8000:0:0:1")));
  CHECK(s.contains(ip("2001:db8::ffff:ffff:ffff:ffff")));
  CHECK_FALSE(s.contains(ip("2001:db8::7fff:ffff:ffff:ffff")));
  CHECK(s.contains(ip("fc00::1")));
  CHECK(s.contains(ip("fdff::1")));
  CHECK_FALSE(s.contains(ip("fe00::1")));
}

TEST_CASE("cidr set: IPv4-mapped IPv6 clients match IPv4 entries, both ways") {
  CidrSet s = set_of({"10.0.0.0/8", "192.0.2.1"});
  CHECK(s.contains(ip("::ffff:10.1.2.3")));
  CHECK(s.contains(ip("::ffff:192.0.2.1")));
  CHECK_FALSE(s.contains(ip("::ffff:192.0.2.2")));
  CHECK_FALSE(s.contains(ip("::ffff:11.0.0.1")));
  // A mapped entry is the IPv4 network it stands for.
  CidrSet m = set_of({"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"});
  CHECK(m.contains(ip("10.9.9.9")));
  CHECK(m.contains(ip("::ffff:10.9.9.9")));
  CHECK(m.contains(ip("192.0.2.1")));
  CHECK_FALSE(m.contains(ip("11.0.0.1")));
  CHECK(m == s);
}

TEST_CASE("cidr set: equality is of the normalized entries, as sets") {
  CHECK(set_of({"10.0.0.0/8", "::1"}) == set_of({"::1/128", "10.0.0.0/8", "10.0.0.0/8"}));
  CHECK(set_of({"10.0.0.0/8", "10.0.0.0/8"}).size() == 1);
  CHECK_FALSE(set_of({"10.0.0.0/8"}) == set_of({"10.0.0.0/9"}));
  CHECK_FALSE(set_of({"10.0.0.0/8"}) == set_of({"10.0.0.0/8", "::1"}));
  CHECK(CidrSet{} == CidrSet{});
  // add() ignores bits past the prefix of a hand-made Cidr.
  Cidr c = ok("10.0.0.0/8");
  c.bytes[3] = 1;
  CidrSet s;
  s.add(c);
  CHECK(s == set_of({"10.0.0.0/8"}));
}

namespace {

// 10,000 random networks (a quarter IPv6), their prefix lengths drawn from V4_LENGTHS and
// V6_LENGTHS; checks contains() against a linear scan on 4,000 addresses (half inside a
// network) and prints the time of a lookup.
void ten_thousand(const char* what, const std::vector<int>& v4_lengths,
                  const std::vector<int>& v6_lengths) {
  std::mt19937 rng(7);
  std::vector<Cidr> nets;
  CidrSet s;
  for (int i = 0; i < 10'000; ++i) {
    const bool v6 = i % 4 == 0;
    const int family = v6 ? AF_INET6 : AF_INET;
    const int prefix =
        v6 ? v6_lengths[rng() % v6_lengths.size()] : v4_lengths[rng() % v4_lengths.size()];
    std::array<uint8_t, 16> net{};
    for (int b = 0; b < (v6 ? 16 : 4); ++b) net[b] = static_cast<uint8_t>(rng());
    if (v6) net[0] = 0x20;        // never IPv4-mapped
    for (int b = 0; b < 16; ++b)  // the network of that address at that prefix
      net[b] &= static_cast<uint8_t>(0xFF00 >> std::clamp(prefix - 8 * b, 0, 8));
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family, net.data(), buf, sizeof buf);
    Cidr c;
    std::string error;
    REQUIRE(parse_cidr(std::string(buf) + "/" + std::to_string(prefix), c, error));
    nets.push_back(c);
    s.add(c);
  }
  CHECK(s.size() <= 10'000);
  CHECK(s.size() > 9'500);  // short random IPv4 prefixes may repeat

  auto linear = [&](const Address& a) {
    std::array<uint8_t, 16> bytes{};
    int family = a.family();
    if (family == AF_INET)
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr, 4);
    else
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr, 16);
    for (const Cidr& c : nets) {
      if (c.family != family) continue;
      bool in = true;
      for (int bit = 0; bit < c.prefix && in; ++bit)
        in = ((bytes[bit / 8] ^ c.bytes[bit / 8]) & (0x80 >> (bit % 8))) == 0;
      if (in) return true;
    }
    return false;
  };

  std::vector<Address> queries;
  for (int i = 0; i < 4'000; ++i) {
    Address a;
    const Cidr& c = nets[rng() % nets.size()];
    std::array<uint8_t, 16> bytes{};
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0) {  // inside C, random host bits
      for (int bit = 0; bit < c.prefix; ++bit) {
        uint8_t m = static_cast<uint8_t>(0x80 >> (bit % 8));
        bytes[bit / 8] = static_cast<uint8_t>((bytes[bit / 8] & ~m) | (c.bytes[bit / 8] & m));
      }
    }
    if (c.family == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
      sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, bytes.data(), 4);
      a.length = sizeof(sockaddr_in);
    } else {
      if (i % 2 == 1) bytes[0] = 0x20;
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
      sin6->sin6_family = AF_INET6;
      std::memcpy(&sin6->sin6_addr, bytes.data(), 16);
      a.length = sizeof(sockaddr_in6);
    }
    queries.push_back(a);
  }
  size_t hits = 0;
  for (const Address& a : queries) {
    bool want = linear(a);
    CHECK(s.contains(a) == want);
    hits += want;
  }
  CHECK(hits >= queries.size() / 2);

  constexpr int kRounds = 50;
  size_t checksum = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < kRounds; ++r)
    for (const Address& a : queries) checksum += s.contains(a);
  double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("cidr set, " << s.size() << " networks, " << std::string(what) << ": "
                       << ns / (kRounds * queries.size()) << " ns per lookup (half hits; checksum "
                       << checksum << ")");
}

std::vector<int> range(int lo, int hi) {
  std::vector<int> v;
  for (int i = lo; i <= hi; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("cidr set: 10,000 networks against a linear scan, and the time of a lookup") {
  // Typical lists: a few prefix lengths, so a few probes per lookup.
  ten_thousand("lengths /32 /24 /16 and /128 /64 /48", {32, 24, 16}, {128, 64, 48});
  // Every length from /8 and from /32: the worst a list can do (25 and 97 probes for a miss).
  ten_thousand("every length /8../32 and /32../128", range(8, 32), range(32, 128));
}

TEST_CASE("cidr: normalized, as a set holds an entry") {
  CHECK(text_of(normalized(ok("::ffff:10.0.0.0/104"))) == "10.0.0.0/8");
  CHECK(text_of(normalized(ok("::ffff:192.0.2.1"))) == "192.0.2.1/32");
  CHECK(text_of(normalized(ok("::ffff:0:0/96"))) == "0.0.0.0/0");
  CHECK(text_of(normalized(ok("::/0"))) == "::/0");  // wider than the mapped range: IPv6
  CHECK(text_of(normalized(ok("::fffe:0:0/95"))) == "::fffe:0:0/95");
  CHECK(normalized(ok("10.0.0.0/8")) == ok("10.0.0.0/8"));
  Cidr c = ok("10.0.0.0/8");
  c.bytes[2] = 7;  // host bits of a hand-made Cidr are cleared
  CHECK(normalized(c) == ok("10.0.0.0/8"));
}
