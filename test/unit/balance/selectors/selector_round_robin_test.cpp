// round_robin: exact sequences, weights ignored, skipping and coming back.
#include <doctest/doctest.h>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

TEST_CASE("round_robin: a b c a b c, weights ignored") {
  auto a = backend(1, 5), b = backend(2, 1), c = backend(3, 1);
  Pool pool({a, b, c}, Algorithm::RoundRobin);
  CHECK(sequence(pool, {{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}}, 9) == "abcabcabc");
}

TEST_CASE("round_robin: a backend going down mid-sequence, then back") {
  auto a = backend(1), b = backend(2), c = backend(3);
  Pool pool({a, b, c}, Algorithm::RoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  CHECK(sequence(pool, n, 2) == "ab");
  pool.set_health(*c, HealthState::Down);
  CHECK(sequence(pool, n, 4) == "abab");
  pool.set_health(*c, HealthState::Up);  // membership changed: the rotation restarts
  CHECK(sequence(pool, n, 6) == "abcabc");
}

TEST_CASE("round_robin: a full backend is stepped over without losing the turn order") {
  auto a = backend(1), b = backend(2), c = backend(3);
  Pool pool({a, b, c}, Algorithm::RoundRobin);
  std::map<const Backend*, char> n{{a.get(), 'a'}, {b.get(), 'b'}, {c.get(), 'c'}};
  b->config.max_connections = 1;
  Lease hold(b);
  CHECK(sequence(pool, n, 4) == "acac");
  hold.end();
  CHECK(sequence(pool, n, 3) == "abc");
}
