// What every algorithm must do: honour the avoid list, skip down/draining/full
// backends, use backups only when no regular backend is available, and leave every
// live count at 0 once the leases are gone.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "selectors/selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
std::vector<std::shared_ptr<Backend>> four() {
  return {backend(1, 3), backend(2, 1), backend(3, 2), backend(4, 1)};
}
}  // namespace

TEST_CASE("every algorithm honours the avoid list") {
  for (Algorithm alg : all_algorithms()) {
    CAPTURE(to_string(alg));
    auto bs = four();
    Pool pool(bs, alg);
    std::vector<Backend*> avoid{bs[0].get(), bs[2].get(), bs[3].get()};
    for (uint32_t i = 0; i < 50; ++i) {
      Address c = client(i, i % 2 == 1);
      CHECK(pick(pool, &c, avoid) == bs[1].get());
    }
    avoid = {bs[0].get(), bs[2].get()};
    std::set<Backend*> seen;
    for (uint32_t i = 0; i < 200; ++i) {
      Address c = client(i);
      Backend* b = pick(pool, &c, avoid);
      CHECK((b == bs[1].get() || b == bs[3].get()));
      seen.insert(b);
    }
    CHECK(seen.size() == 2);  // and both remaining ones get used
    avoid.push_back(bs[1].get());
    avoid.push_back(bs[3].get());
    Address c = client(1);
    CHECK(pick(pool, &c, avoid) == nullptr);
  }
}

TEST_CASE("every algorithm skips down, draining and full backends, refreshed or not") {
  for (Algorithm alg : all_algorithms()) {
    for (bool refresh : {false, true}) {
      CAPTURE(to_string(alg));
      CAPTURE(refresh);
      auto bs = four();
      Pool pool(bs, alg);
      bs[0]->health = HealthState::Down;
      set_drain(*bs[1], true);
      bs[2]->config.max_connections = 2;
      Lease h1(bs[2]), h2(bs[2]);
      if (refresh) pool.refresh();
      for (uint32_t i = 0; i < 100; ++i) {
        Address c = client(i, i % 3 == 0);
        CHECK(pick(pool, &c) == bs[3].get());
      }
      bs[3]->config.max_connections = 1;
      Lease h3 = pool.acquire(PickContext{});
      CHECK(h3.get() == bs[3].get());
      CHECK_FALSE(pool.acquire(PickContext{}));  // nothing left: refused, not queued
      CHECK_FALSE(pool.any_available());
      h1.end();  // bs[2] below its maximum again
      Address c = client(9);
      CHECK(pick(pool, &c) == bs[2].get());
    }
  }
}

TEST_CASE("every algorithm uses backups only when no regular backend is available") {
  for (Algorithm alg : all_algorithms()) {
    CAPTURE(to_string(alg));
    auto a = backend(1, 2), b = backend(2, 1), s1 = backend(8, 1, true), s2 = backend(9, 1, true);
    Pool pool({s1, a, s2, b}, alg);
    for (uint32_t i = 0; i < 40; ++i) {
      Address c = client(i);
      Backend* got = pick(pool, &c);
      CHECK((got == a.get() || got == b.get()));
    }
    // Tried regulars count as unavailable: a retry may go to a backup.
    Address c0 = client(0);
    Backend* retry = pick(pool, &c0, {a.get(), b.get()});
    CHECK((retry == s1.get() || retry == s2.get()));
    // All regulars down (told, and not told) -> backups; one back -> regulars only.
    a->health = HealthState::Down;
    b->config.max_connections = 1;
    Lease hold(b);
    std::set<Backend*> seen;
    for (uint32_t i = 0; i < 60; ++i) {
      Address c = client(i);
      Backend* got = pick(pool, &c);
      CHECK((got == s1.get() || got == s2.get()));
      seen.insert(got);
    }
    if (alg != Algorithm::IpHash && alg != Algorithm::ConsistentHash) CHECK(seen.size() == 2);
    pool.refresh();
    for (uint32_t i = 0; i < 10; ++i) {
      Address c = client(i);
      Backend* got = pick(pool, &c);
      CHECK((got == s1.get() || got == s2.get()));
    }
    hold.end();
    for (uint32_t i = 0; i < 10; ++i) {
      Address c = client(i);
      CHECK(pick(pool, &c) == b.get());
    }
    pool.set_health(*a, HealthState::Up);
    for (uint32_t i = 0; i < 40; ++i) {
      Address c = client(i);
      Backend* got = pick(pool, &c);
      CHECK((got == a.get() || got == b.get()));
    }
  }
}

TEST_CASE("every algorithm: live counts come back to 0 through churn, refreshes and reloads") {
  for (Algorithm alg : all_algorithms()) {
    CAPTURE(to_string(alg));
    std::vector<std::shared_ptr<Backend>> bs;
    for (int i = 0; i < 16; ++i) bs.push_back(backend(100 + i, 1 + i % 5, i % 7 == 6));
    Pool pool(bs, alg);
    std::mt19937 rng(static_cast<unsigned>(alg) + 1);
    std::vector<Lease> held;
    for (int step = 0; step < 4000; ++step) {
      uint32_t r = rng() % 100;
      if (r < 35 && !held.empty()) {
        held.erase(held.begin() + static_cast<long>(rng() % held.size()));
      } else if (r < 38) {
        Backend& b = *bs[rng() % bs.size()];
        pool.set_health(b, b.health == HealthState::Down ? HealthState::Up : HealthState::Down);
      } else if (r < 39) {
        bs[rng() % bs.size()]->config.max_connections = rng() % 4;
        set_drain(*bs[rng() % bs.size()], rng() % 2);
        pool.refresh();
      } else if (r < 40) {
        auto subset = bs;
        subset.erase(subset.begin() + static_cast<long>(rng() % subset.size()));
        pool.update(subset, all_algorithms()[rng() % all_algorithms().size()]);
      } else {
        Address c = client(rng() % 1000, rng() % 2);
        Lease l = pool.acquire(PickContext{&c});
        if (l) {
          CHECK(l.backend().live() >= 1);
          held.push_back(std::move(l));
        }
      }
    }
    held.clear();
    for (const auto& b : bs) CHECK(b->live() == 0);
  }
}
