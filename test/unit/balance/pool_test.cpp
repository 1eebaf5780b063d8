// Pool availability, backups, retries' avoid list, refresh/update, and Lease live counts.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "l4lb/balance/pool.hpp"
#include "selectors/selector_test_helpers.hpp"

using namespace l4lb;
using l4lb::testing::backend;
using l4lb::testing::pick;
using l4lb::testing::set_drain;

namespace {
std::shared_ptr<Backend> make_backend(int port, bool backup = false) {
  return backend(port, 1, backup);
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
  set_drain(*b, true);
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

TEST_CASE("a backend that comes back up is chosen again after refresh") {
  auto a = make_backend(1), b = make_backend(2);
  a->health = HealthState::Down;
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, b}, Algorithm::RoundRobin);
  CHECK(pick(pool) == b.get());
  a->health = HealthState::Up;
  CHECK(pick(pool) == b.get());  // not a member until the pool is told
  pool.refresh();
  std::set<Backend*> seen{pick(pool), pick(pool)};
  CHECK(seen == std::set<Backend*>{a.get(), b.get()});
}

TEST_CASE("set_health refreshes only when membership changes") {
  auto a = make_backend(1), b = make_backend(2);
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, b}, Algorithm::RoundRobin);
  CHECK(pick(pool) == a.get());
  pool.set_health(*a, HealthState::Up);  // Unknown -> Up: still a member, rotation kept
  CHECK(pick(pool) == b.get());
  pool.set_health(*a, HealthState::Down);
  CHECK(a->health == HealthState::Down);
  CHECK(pick(pool) == b.get());
  CHECK(pick(pool) == b.get());
  pool.set_health(*a, HealthState::Up);
  CHECK(pick(pool) == a.get());
}

TEST_CASE("a refresh that changes nothing keeps the rotation") {
  auto a = make_backend(1), b = make_backend(2), c = make_backend(3);
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, b, c}, Algorithm::RoundRobin);
  CHECK(pick(pool) == a.get());
  CHECK(pool.refresh() == 0);
  CHECK(pick(pool) == b.get());
}

TEST_CASE("update() applies a reload in place: new members, same rotation state") {
  auto a = make_backend(1), b = make_backend(2), c = make_backend(3);
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, b}, Algorithm::LeastConnections);
  Lease held = pool.acquire({});
  CHECK(held.get() == a.get());
  pool.update({a, b, c}, Algorithm::LeastConnections);
  CHECK(pool.algorithm() == Algorithm::LeastConnections);
  // a holds 1; b and c are idle: b (config order among the idle), then c.
  Lease l2 = pool.acquire({});
  Lease l3 = pool.acquire({});
  CHECK(l2.get() == b.get());
  CHECK(l3.get() == c.get());
  pool.update({c}, Algorithm::RoundRobin);
  CHECK(pool.algorithm() == Algorithm::RoundRobin);
  CHECK(pick(pool) == c.get());
  held.end();
  l2.end();
  l3.end();
  CHECK(a->live() == 0);
  CHECK(b->live() == 0);
  CHECK(c->live() == 0);
}

TEST_CASE("a pool replaced by move-assignment while leases are out (a reload)") {
  auto a = make_backend(1), b = make_backend(2);
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, b}, Algorithm::LeastConnections);
  Lease la = pool.acquire({});
  pool = Pool(std::vector<std::shared_ptr<Backend>>{b}, Algorithm::WeightedLeastConnections);
  a.reset();  // a removed: it lives on in its lease only
  Lease lb = pool.acquire({});
  CHECK(lb.get() == b.get());
  la.end();   // the old pool's index is gone; nothing may touch it
  lb.end();
  CHECK(b->live() == 0);
}

TEST_CASE("leases may outlive their pool") {
  auto a = make_backend(1);
  Lease l;
  {
    Pool pool(std::vector<std::shared_ptr<Backend>>{a}, Algorithm::LeastConnections);
    l = pool.acquire({});
    CHECK(a->load_observer != nullptr);
  }
  CHECK(a->load_observer == nullptr);
  l.end();
  CHECK(a->live() == 0);
}

TEST_CASE("any_available sees every tier and follows availability") {
  auto a = make_backend(1), spare = make_backend(2, true);
  Pool pool(std::vector<std::shared_ptr<Backend>>{a, spare}, Algorithm::RoundRobin);
  CHECK(pool.any_available());
  a->health = HealthState::Down;
  CHECK(pool.any_available());
  set_drain(*spare, true);
  CHECK_FALSE(pool.any_available());
  set_drain(*spare, false);
  CHECK(pool.any_available());
}

#include "l4lb/dataplane/pipe.hpp"

TEST_CASE("the pipe pool lends, takes back empty pipes, and trims unused ones") {
  PipePool pipes(4);
  Pipe a = pipes.acquire();
  Pipe b = pipes.acquire();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a.capacity >= 4096);
  CHECK(pipes.created() == 2);
  pipes.release(std::move(a));
  pipes.release(std::move(b));
  CHECK(pipes.idle() == 2);
  Pipe again = pipes.acquire();  // reused, not created
  CHECK(pipes.created() == 2);
  pipes.release(std::move(again));
  pipes.trim();                  // none sat idle for the whole first period
  CHECK(pipes.idle() == 2);
  pipes.trim();                  // both untouched for a whole period: closed
  CHECK(pipes.idle() == 0);
  for (int i = 0; i < 6; ++i) pipes.release(pipes.acquire());
  CHECK(pipes.idle() <= 4);
}

#include "l4lb/balance/admission.hpp"
#include "l4lb/balance/service.hpp"

TEST_CASE("per-worker counters are summed for readers") {
  BackendConfig bc;
  std::string err;
  REQUIRE(parse_address("127.0.0.1:1", bc.address, err));
  Backend b(bc, 3);
  b.slot(0).bytes_in.add(10);
  b.slot(2).bytes_in.add(5);
  b.slot(1).connections.add(2);
  b.slot(1).observe_connect(0.002);
  b.slot(2).observe_connect(9);
  BackendCounters t = b.totals();
  CHECK(t.bytes_in == 15);
  CHECK(t.connections == 2);
  ConnectHistogram h = b.connect_times();
  CHECK(h.count == 2);
  CHECK(h.counts[ConnectHistogram::kBuckets] == 1);  // 9 s: +Inf
  CHECK(h.sum == doctest::Approx(9.002));

  ServiceConfig sc;
  Service svc(sc, Pool({}, Algorithm::RoundRobin), 2);
  std::vector<Seat> seats;
  for (int i = 0; i < 5; ++i) seats.push_back(Seat::take(svc.active_count(), 0));
  seats.pop_back();
  CHECK(svc.active() == 4);
  CHECK(svc.totals().active == 4);
}

TEST_CASE("a seat is taken only below its limit and given back once") {
  std::atomic<uint64_t> count{0};
  Seat a = Seat::take(count, 2), b = Seat::take(count, 2), c = Seat::take(count, 2);
  CHECK(a);
  CHECK(b);
  CHECK(!c);
  CHECK(count == 2);
  Seat moved = std::move(a);
  CHECK(count == 2);
  moved = Seat();
  CHECK(count == 1);
  CHECK(Seat::take(count, 0));  // 0 = unlimited (and given back at once)
  CHECK(count == 1);
}
