// Pool availability, backups, retries' avoid list, and Lease live counts.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "l4lb/pool.hpp"

using namespace l4lb;

namespace {
std::shared_ptr<Backend> make_backend(int port, bool backup = false) {
  BackendConfig bc;
  bc.address_text = "127.0.0.1:" + std::to_string(port);
  std::string err;
  REQUIRE(parse_address(bc.address_text, bc.address, err));
  bc.backup = backup;
  return std::make_shared<Backend>(bc);
}

Pool make_pool(std::vector<std::shared_ptr<Backend>> bs) {
  return Pool(std::move(bs), make_selector(Algorithm::RoundRobin));
}
}  // namespace

TEST_CASE("round_robin rotates over the available backends in config order") {
  auto a = make_backend(1), b = make_backend(2), c = make_backend(3);
  Pool pool = make_pool({a, b, c});
  std::vector<Backend*> got;
  for (int i = 0; i < 6; ++i) got.push_back(pool.acquire({}, {}).get());
  CHECK(got == std::vector<Backend*>{a.get(), b.get(), c.get(), a.get(), b.get(), c.get()});
}

TEST_CASE("a lease counts +1 while held and -1 when it ends") {
  auto a = make_backend(1);
  Pool pool = make_pool({a});
  {
    Lease l1 = pool.acquire({}, {});
    CHECK(a->live() == 1);
    Lease l2 = pool.acquire({}, {});
    CHECK(a->live() == 2);
    Lease moved = std::move(l1);
    CHECK(a->live() == 2);
    l2.end();
    CHECK(a->live() == 1);
    l2.end();  // ending twice is harmless
    CHECK(a->live() == 1);
  }
  CHECK(a->live() == 0);
}

TEST_CASE("down, draining and full backends are skipped") {
  auto a = make_backend(1), b = make_backend(2), c = make_backend(3);
  Pool pool = make_pool({a, b, c});
  a->health = HealthState::Down;
  b->config.drain = true;
  for (int i = 0; i < 3; ++i) CHECK(pool.acquire({}, {}).get() == c.get());
  c->config.max_connections = 1;
  Lease held = pool.acquire({}, {});
  CHECK(held.get() == c.get());
  CHECK_FALSE(pool.acquire({}, {}));  // c is full: nothing available, never queued
  CHECK_FALSE(pool.any_available());
  held.end();
  CHECK(pool.any_available());
}

TEST_CASE("backups are used only when no regular backend is available") {
  auto a = make_backend(1), spare = make_backend(9, true);
  Pool pool = make_pool({a, spare});
  for (int i = 0; i < 4; ++i) CHECK(pool.acquire({}, {}).get() == a.get());
  a->health = HealthState::Down;
  CHECK(pool.acquire({}, {}).get() == spare.get());
  a->health = HealthState::Up;
  CHECK(pool.acquire({}, {}).get() == a.get());
}

TEST_CASE("a retry never picks a backend already tried") {
  auto a = make_backend(1), b = make_backend(2), c = make_backend(3);
  Pool pool = make_pool({a, b, c});
  std::vector<Backend*> tried{a.get(), c.get()};
  for (int i = 0; i < 5; ++i) CHECK(pool.acquire({}, tried).get() == b.get());
  tried.push_back(b.get());
  CHECK_FALSE(pool.acquire({}, tried));
}
