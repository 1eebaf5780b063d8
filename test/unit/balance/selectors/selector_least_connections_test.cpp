// least_connections / weighted_least_connections against hand-computed counts.
#include <doctest/doctest.h>

#include <random>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

TEST_CASE("least_connections: the lowest live count; ties to the least recently picked") {
  auto a = backend(1), b = backend(2), c = backend(3);
  Pool pool({a, b, c}, Algorithm::LeastConnections);
  std::vector<Lease> held;
  held.emplace_back(a);  // counts taken outside the pool still reach its index
  held.emplace_back(a);
  held.emplace_back(b);
  // a=2 b=1 c=0 -> c; a=2 b=1 c=1 -> b (tie, b not yet picked); a=2 b=2 c=1 -> c;
  // all 2 -> a (picked least recently); a=3 b=2 c=2 -> b (picked before c)
  std::string got;
  for (int i = 0; i < 5; ++i) {
    held.push_back(pool.acquire({}));
    got += "abc"[held.back().get() == a.get() ? 0 : held.back().get() == b.get() ? 1 : 2];
  }
  CHECK(got == "cbcab");
  CHECK(a->live() == 3);
  CHECK(b->live() == 3);
  CHECK(c->live() == 2);
  held.clear();
  CHECK(a->live() + b->live() + c->live() == 0);
}

TEST_CASE("least_connections: equal loads rotate, not always the first") {
  auto a = backend(1), b = backend(2), c = backend(3);
  Pool pool({a, b, c}, Algorithm::LeastConnections);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 7) == "abcabca");
}

TEST_CASE("least_connections: a lease ending makes its backend the least loaded again") {
  auto a = backend(1), b = backend(2);
  Pool pool({a, b}, Algorithm::LeastConnections);
  Lease la = pool.acquire({}), lb = pool.acquire({}), la2 = pool.acquire({});
  CHECK(la.get() == a.get());
  CHECK(lb.get() == b.get());
  CHECK(la2.get() == a.get());
  lb.end();  // a=2 b=0
  Lease x = pool.acquire({});
  Lease y = pool.acquire({});
  CHECK(x.get() == b.get());
  CHECK(y.get() == b.get());  // b=1 < a=2
}

TEST_CASE("weighted_least_connections: the lowest live/weight") {
  auto a = backend(1, 3), b = backend(2, 1);
  Pool pool({a, b}, Algorithm::WeightedLeastConnections);
  // 0/3 = 0/1 -> a (first); 1/3 < 0/1? no: b=0 -> b; 1/3 < 1/1 -> a; 2/3 < 1 -> a;
  // 3/3 = 1/1 -> b (picked before a's last); 3/3 < 2/1 -> a
  std::vector<Lease> held;
  std::string got;
  for (int i = 0; i < 6; ++i) {
    held.push_back(pool.acquire({}));
    got += held.back().get() == a.get() ? 'a' : 'b';
  }
  CHECK(got == "abaaba");
  // Steady state with many connections: a holds about 3x b.
  for (int i = 0; i < 394; ++i) held.push_back(pool.acquire({}));
  CHECK(a->live() == 300);
  CHECK(b->live() == 100);
}

TEST_CASE("least connections: the heap agrees with a scan through random churn") {
  for (bool weighted : {false, true}) {
    std::vector<std::shared_ptr<Backend>> bs;
    std::mt19937 rng(weighted ? 11 : 12);
    for (int i = 0; i < 40; ++i) bs.push_back(backend(1000 + i, 1 + static_cast<int>(rng() % 7)));
    Pool pool(bs, weighted ? Algorithm::WeightedLeastConnections : Algorithm::LeastConnections);
    std::vector<Lease> held;
    for (int step = 0; step < 5000; ++step) {
      if (!held.empty() && rng() % 3 == 0) {
        size_t i = rng() % held.size();
        held[i] = std::move(held.back());
        held.pop_back();
        continue;
      }
      // The least loaded by a scan (over the key only).
      uint64_t best_num = UINT64_MAX, best_den = 1;
      for (const auto& b : bs) {
        uint64_t num = b->live(), den = weighted ? static_cast<uint64_t>(b->config.weight) : 1;
        if (num * best_den < best_num * den || best_num == UINT64_MAX) {
          best_num = num;
          best_den = den;
        }
      }
      held.push_back(pool.acquire({}));
      Backend& got = held.back().backend();
      uint64_t num = got.live() - 1, den = weighted ? static_cast<uint64_t>(got.config.weight) : 1;
      REQUIRE(num * best_den == best_num * den);
    }
    held.clear();
    for (const auto& b : bs) CHECK(b->live() == 0);
  }
}
