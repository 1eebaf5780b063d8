// weighted_round_robin: nginx's smooth sequence, exactly; weight changes; a backend
// going down mid-sequence; the fast schedule against the plain nginx loop.
#include <doctest/doctest.h>

#include <random>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
// ngx_http_upstream_get_peer, as written: O(n) per pick.
std::vector<uint32_t> nginx(const std::vector<int>& w, size_t picks) {
  std::vector<int64_t> cw(w.size(), 0);
  int64_t total = 0;
  for (int x : w) total += x;
  std::vector<uint32_t> out;
  for (size_t t = 0; t < picks; ++t) {
    size_t best = w.size();
    for (size_t i = 0; i < w.size(); ++i) {
      cw[i] += w[i];
      if (best == w.size() || cw[i] > cw[best]) best = i;
    }
    cw[best] -= total;
    out.push_back(static_cast<uint32_t>(best));
  }
  return out;
}
}  // namespace

TEST_CASE("weighted_round_robin: 5:1:1 gives a a b a c a a, repeating") {
  auto a = backend(1, 5), b = backend(2, 1), c = backend(3, 1);
  Pool pool({a, b, c}, Algorithm::WeightedRoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 21) == "aabacaa" "aabacaa" "aabacaa");
}

TEST_CASE("weighted_round_robin: equal weights are plain rotation; 2:1 is a b a") {
  auto a = backend(1, 3), b = backend(2, 3), c = backend(3, 3);
  Pool pool({a, b, c}, Algorithm::WeightedRoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 6) == "abcabc");
  Pool two({a, b}, Algorithm::WeightedRoundRobin);
  set_weight(*a, 2);
  set_weight(*b, 1);
  two.refresh();
  CHECK(sequence(two, n, 6) == "abaaba");
}

TEST_CASE("weighted_round_robin: a weight change takes effect at the next refresh") {
  auto a = backend(1, 5), b = backend(2, 1), c = backend(3, 1);
  Pool pool({a, b, c}, Algorithm::WeightedRoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 3) == "aab");
  set_weight(*c, 3);  // a reload overwrites the config...
  CHECK(sequence(pool, n, 2) == "ac");  // ...the old schedule runs until the refresh
  pool.refresh();
  // 5:1:3 by hand (current weights after each round, the largest chosen):
  // a5b1c3>a | a1b2c6>c | a6b3c0>a | a2b4c3>b | a7b-4c6>a | a3b-3c9>c | a8b-2c3>a | a4b-1c6>c | a9b0c0>a
  CHECK(sequence(pool, n, 18) == "acabacaca" "acabacaca");
}

TEST_CASE("weighted_round_robin: a backend going down mid-sequence, then back") {
  auto a = backend(1, 5), b = backend(2, 1), c = backend(3, 1);
  Pool pool({a, b, c}, Algorithm::WeightedRoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 3) == "aab");
  pool.set_health(*c, HealthState::Down);
  // 5:1 from the start: a5b1>a | a4b2>a | a3b3>a (tie: first) | a2b4>b | a7b-1>a | a6b0>a
  CHECK(sequence(pool, n, 12) == "aaabaa" "aaabaa");
  pool.set_health(*c, HealthState::Up);
  CHECK(sequence(pool, n, 7) == "aabacaa");
}

TEST_CASE("weighted_round_robin: down without a refresh is skipped, never chosen") {
  auto a = backend(1, 5), b = backend(2, 1), c = backend(3, 1);
  Pool pool({a, b, c}, Algorithm::WeightedRoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  c->health = HealthState::Down;
  CHECK(sequence(pool, n, 14) == "aabaaa" "aabaaa" "aa");
}

TEST_CASE("weighted_round_robin: the grouped build equals nginx's loop") {
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    size_t n = 1 + rng() % 12;
    int max_w = round % 2 ? 5 : 60;
    std::vector<int> w(n);
    for (int& x : w) x = 1 + static_cast<int>(rng() % max_w);
    int64_t total = 0;
    for (int x : w) total += x;
    std::vector<uint32_t> fast = WeightedRoundRobin::schedule(w);
    std::vector<uint32_t> slow = nginx(w, static_cast<size_t>(total));
    // The schedule is one period after dividing by the gcd; nginx's is that repeated.
    REQUIRE(fast.size() > 0);
    REQUIRE(slow.size() % fast.size() == 0);
    for (size_t i = 0; i < slow.size(); ++i) REQUIRE(slow[i] == fast[i % fast.size()]);
  }
}

TEST_CASE("weighted_round_robin: 1,000 backends of weights 1..1000 build quickly, fair") {
  std::vector<int> w(1000);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int>(i + 1);
  std::vector<uint32_t> s = WeightedRoundRobin::schedule(w);  // past the exact budget: EDF
  REQUIRE(s.size() == 500500);
  std::vector<int> count(w.size(), 0);
  for (uint32_t i : s) ++count[i];
  for (size_t i = 0; i < w.size(); ++i) CHECK(count[i] == w[i]);
}
