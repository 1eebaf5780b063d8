// ip_hash: a client address (IPv4 or IPv6, any port) keeps its backend while the set
// of available backends is unchanged.
#include <doctest/doctest.h>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
std::vector<std::shared_ptr<Backend>> five() {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 5; ++i) bs.push_back(backend(500 + i));
  return bs;
}
}  // namespace

TEST_CASE("ip_hash: the same client (v4 and v6) gets the same backend, whatever its port") {
  auto bs = five();
  Pool pool(bs, Algorithm::IpHash);
  std::map<Backend*, int> spread;
  for (bool v6 : {false, true}) {
    for (uint32_t i = 0; i < 500; ++i) {
      Address c1 = client(i, v6, 40000), c2 = client(i, v6, 51234);
      Backend* first = pick(pool, &c1);
      REQUIRE(first != nullptr);
      for (int k = 0; k < 3; ++k) CHECK(pick(pool, &c1) == first);
      CHECK(pick(pool, &c2) == first);
      ++spread[first];
    }
  }
  CHECK(spread.size() == 5);
  for (auto& [b, count] : spread) CHECK(count > 100);  // 1000 clients over 5: ~200 each
}

TEST_CASE("ip_hash: an IPv4-mapped IPv6 client hashes as its IPv4 address") {
  Address v4 = address("192.0.2.33:1000"), mapped = address("[::ffff:192.0.2.33]:2000");
  CHECK(hash_client(&v4) == hash_client(&mapped));
  Address other = address("[2001:db8::21]:1000");
  CHECK(hash_client(&v4) != hash_client(&other));
}

TEST_CASE("ip_hash: stable across a refresh that changes nothing, and a pool rebuilt") {
  auto bs = five();
  Pool pool(bs, Algorithm::IpHash);
  Pool again(bs, Algorithm::IpHash);
  std::vector<Backend*> before;
  for (uint32_t i = 0; i < 300; ++i) {
    Address c = client(i, i % 2 == 1);
    before.push_back(pick(pool, &c));
  }
  pool.refresh();
  for (uint32_t i = 0; i < 300; ++i) {
    Address c = client(i, i % 2 == 1);
    CHECK(pick(pool, &c) == before[i]);
    CHECK(pick(again, &c) == before[i]);
  }
}

TEST_CASE("ip_hash: an unavailable backend's clients go elsewhere, the others stay") {
  auto bs = five();
  Pool pool(bs, Algorithm::IpHash);
  std::vector<Backend*> before;
  for (uint32_t i = 0; i < 300; ++i) {
    Address c = client(i);
    before.push_back(pick(pool, &c));
  }
  bs[2]->config.max_connections = 1;
  Lease full(bs[2]);  // full: skipped at pick time, no table change
  for (uint32_t i = 0; i < 300; ++i) {
    Address c = client(i);
    Backend* now = pick(pool, &c);
    if (before[i] == bs[2].get()) {
      CHECK(now != bs[2].get());
      CHECK(pick(pool, &c) == now);  // and still deterministic
    } else {
      CHECK(now == before[i]);
    }
  }
}
