// The pure parts of backends from DNS: TTL clamping, SRV weights, set diffs, answer TTLs
// and a service's backend list with its DNS entries' addresses.
#include "l4lb/discovery/dns.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace l4lb;
using namespace l4lb::dns;

namespace {
Address addr(const std::string& text) {
  Address a;
  std::string error;
  REQUIRE(parse_address(text, a, error));
  return a;
}
Resolved r(const std::string& text, int weight = 0) { return {addr(text), weight}; }

// A DNS message: header, one question, then answers of (type, ttl, rdata length).
std::vector<unsigned char> message(std::vector<std::tuple<int, uint32_t, int>> answers) {
  std::vector<unsigned char> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, static_cast<unsigned char>(answers.size()), 0, 0, 0, 0};
  const unsigned char qname[] = {3, 'a', 'p', 'p', 4, 't', 'e', 's', 't', 0};
  m.insert(m.end(), qname, qname + sizeof qname);
  m.insert(m.end(), {0, 1, 0, 1});
  for (auto [type, ttl, len] : answers) {
    m.insert(m.end(), {0xC0, 12});  // pointer to the question's name
    m.insert(m.end(), {static_cast<unsigned char>(type >> 8), static_cast<unsigned char>(type), 0, 1});
    m.insert(m.end(), {static_cast<unsigned char>(ttl >> 24), static_cast<unsigned char>(ttl >> 16),
                       static_cast<unsigned char>(ttl >> 8), static_cast<unsigned char>(ttl)});
    m.insert(m.end(), {static_cast<unsigned char>(len >> 8), static_cast<unsigned char>(len)});
    m.insert(m.end(), static_cast<size_t>(len), 7);
  }
  return m;
}
}  // namespace

TEST_CASE("dns: a TTL is clamped to [min_ttl, max_ttl]") {
  const Millis lo{1000}, hi{300000};
  CHECK(clamp_ttl(0, lo, hi) == lo);
  CHECK(clamp_ttl(1, lo, hi) == Millis{1000});
  CHECK(clamp_ttl(30, lo, hi) == Millis{30000});
  CHECK(clamp_ttl(300, lo, hi) == hi);
  CHECK(clamp_ttl(86400 * 7, lo, hi) == hi);
  CHECK(clamp_ttl(UINT32_MAX, lo, hi) == hi);
  CHECK(clamp_ttl(5, Millis{250}, Millis{250}) == Millis{250});
}

TEST_CASE("dns: an SRV weight becomes a backend weight in 1..1000, 0 counting as 1") {
  CHECK(srv_weight(0) == 1);
  CHECK(srv_weight(1) == 1);
  CHECK(srv_weight(10) == 10);
  CHECK(srv_weight(1000) == 1000);
  CHECK(srv_weight(1001) == 1000);
  CHECK(srv_weight(65535) == 1000);
}

TEST_CASE("dns: sets are compared whatever order the server sent, diffs name each address") {
  std::vector<Resolved> a = {r("127.0.0.2:80"), r("[::1]:80"), r("127.0.0.1:80"), r("127.0.0.1:80")};
  std::vector<Resolved> b = {r("127.0.0.1:80"), r("127.0.0.2:80"), r("[::1]:80")};
  CHECK(normalize(a) == 0);
  CHECK(normalize(b) == 0);
  CHECK(a == b);  // the cheap equality check that spares a pool rebuild
  std::vector<Resolved> c = {r("127.0.0.1:80"), r("127.0.0.3:80")};
  normalize(c);
  Diff d = diff(a, c);
  CHECK(d.added == std::vector<std::string>{"127.0.0.3:80"});
  CHECK(d.removed == std::vector<std::string>{"127.0.0.2:80", "[::1]:80"});
  CHECK(join(d.removed) == "127.0.0.2:80,[::1]:80");
  CHECK(join({}) == "");
  CHECK(diff(a, b).empty());
  // An SRV weight that changes is a change (the backend's weight follows).
  std::vector<Resolved> w1 = {r("127.0.0.1:80", 5)}, w2 = {r("127.0.0.1:80", 6)};
  CHECK_FALSE(w1 == w2);
  CHECK(diff(w1, w2).empty());
}

TEST_CASE("dns: at most kMaxAddresses per entry, the rest refused and counted") {
  std::vector<Resolved> many;
  for (int i = 0; i < 1500; ++i)
    many.push_back(r("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":80"));
  CHECK(normalize(many) == 500);
  CHECK(many.size() == kMaxAddresses);
}

TEST_CASE("dns: the TTL of an answer is the smallest of its records of that type and CNAMEs") {
  AnswerInfo info;
  auto m = message({{1, 30, 4}, {1, 10, 4}, {5, 20, 2}, {28, 1, 16}});
  REQUIRE(answer_info(m.data(), m.size(), 1, info));
  CHECK(info.count == 2);
  CHECK(info.min_ttl == 10);
  REQUIRE(answer_info(m.data(), m.size(), 28, info));
  CHECK(info.count == 1);
  CHECK(info.min_ttl == 1);
  auto none = message({});
  REQUIRE(answer_info(none.data(), none.size(), 1, info));
  CHECK(info.count == 0);
  CHECK(info.min_ttl == UINT32_MAX);
  // Truncated or garbage: refused, never read past the end.
  for (size_t len = 0; len < m.size(); ++len) CHECK_FALSE(answer_info(m.data(), len, 1, info));
}

TEST_CASE("dns: a service's backends are the fixed ones, then each entry's addresses") {
  ServiceConfig sc;
  sc.name = "web";
  BackendConfig fixed;
  fixed.address = addr("127.0.0.1:80");
  fixed.address_text = "127.0.0.1:80";
  sc.backends.push_back(fixed);
  DnsBackendConfig host;
  host.name = "app.internal";
  host.port = 80;
  host.weight = 3;
  host.backup = true;
  DnsBackendConfig srv;
  srv.srv = true;
  srv.name = "_app._tcp.internal";
  DnsBackendConfig srv_weighted = srv;
  srv_weighted.name = "_w._tcp.internal";
  srv_weighted.weight = 9;
  srv_weighted.weight_given = true;
  sc.dns_backends = {host, srv, srv_weighted};
  std::vector<Resolved> host_set = {r("127.0.0.1:80"), r("127.0.0.2:80")};  // one fixed already
  std::vector<Resolved> srv_set = {r("127.0.0.3:81", 0), r("127.0.0.4:82", 2000)};
  std::vector<Resolved> w_set = {r("127.0.0.5:83", 50), r("127.0.0.2:80", 1)};
  auto current = [&](const DnsBackendConfig& d) -> const std::vector<Resolved>* {
    if (d.name == "app.internal") return &host_set;
    if (d.name == "_app._tcp.internal") return &srv_set;
    return &w_set;
  };
  expand(sc, current);
  REQUIRE(sc.backends.size() == 5);
  CHECK(sc.backends[0].resolved_from.empty());
  CHECK(sc.backends[1].address_text == "127.0.0.2:80");
  CHECK(sc.backends[1].resolved_from == "app.internal");
  CHECK(sc.backends[1].weight == 3);
  CHECK(sc.backends[1].backup);
  CHECK(sc.backends[2].address_text == "127.0.0.3:81");
  CHECK(sc.backends[2].weight == 1);  // SRV weight 0 counts as 1
  CHECK(sc.backends[3].weight == 1000);  // clamped
  CHECK(sc.backends[3].resolved_from == "_app._tcp.internal");
  CHECK(sc.backends[4].address_text == "127.0.0.5:83");
  CHECK(sc.backends[4].weight == 9);  // weight given wins over the record's
  // Again (a reload, a new set): the earlier DNS backends are replaced, not added to.
  host_set = {};
  srv_set = {r("127.0.0.3:81", 4)};
  expand(sc, current);
  REQUIRE(sc.backends.size() == 4);
  CHECK(sc.backends[1].weight == 4);
  // Not resolved yet: no backends from it.
  expand(sc, [](const DnsBackendConfig&) -> const std::vector<Resolved>* { return nullptr; });
  CHECK(sc.backends.size() == 1);
}
