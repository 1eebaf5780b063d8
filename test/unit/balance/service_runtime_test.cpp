// Service: what is in force for a backend (file -> override -> slow start, derived in one
// place), slow start's ramp and its exceptions, and overrides across a reload.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "l4lb/balance/service.hpp"
#include "l4lb/base/clock.hpp"

using namespace l4lb;

namespace {

BackendConfig backend_config(int port, int weight = 1, bool drain = false) {
  BackendConfig bc;
  bc.address_text = "127.0.0.1:" + std::to_string(port);
  std::string err;
  REQUIRE(parse_address(bc.address_text, bc.address, err));
  bc.weight = weight;
  bc.drain = drain;
  return bc;
}

ServiceConfig service_config(Algorithm algorithm, Millis slow_start, std::vector<BackendConfig> bs) {
  ServiceConfig sc;
  sc.name = "web";
  sc.algorithm = algorithm;
  sc.slow_start = slow_start;
  sc.health_check.type = HealthType::None;
  sc.backends = std::move(bs);
  return sc;
}

std::shared_ptr<Service> make(const ServiceConfig& sc) {
  return Service::create(sc, Service::plan_backends(nullptr, sc, 1), 1);
}

Backend& at(Service& s, size_t i) { return *s.pool.backends()[i]; }

// Picks N times (leases released at once); counts per backend index.
std::map<size_t, int> picks(Service& s, int n) {
  std::map<size_t, int> count;
  for (int i = 0; i < n; ++i) {
    Lease l = s.pool.acquire({});
    REQUIRE(l);
    for (size_t k = 0; k < s.pool.backends().size(); ++k)
      if (&l.backend() == s.pool.backends()[k].get()) ++count[k];
  }
  return count;
}

}  // namespace

TEST_CASE("in force: the file, then the override; the file's state removes nothing it did not set") {
  auto svc = make(service_config(Algorithm::WeightedRoundRobin, Millis(0),
                                 {backend_config(1, 4), backend_config(2, 2, true)}));
  Backend& a = at(*svc, 0);
  Backend& b = at(*svc, 1);
  CHECK(a.admin_state() == AdminState::Ready);
  CHECK(b.admin_state() == AdminState::Drain);  // drain: true in the file
  CHECK(a.weight() == 4);
  CHECK(a.base_weight() == 4);
  a.override_weight = 9;
  a.override_state = AdminState::Maint;
  svc->derive(a, monotonic_seconds());
  CHECK(a.weight() == 9);
  CHECK(a.admin_state() == AdminState::Maint);
  CHECK_FALSE(a.selectable());
  a.override_state.reset();
  a.override_weight.reset();
  svc->derive(a, monotonic_seconds());
  CHECK(a.weight() == 4);
  CHECK(a.selectable());
}

TEST_CASE("slow start: weight x t / window rounded up, at least 1; the share ramps in 1/20 steps") {
  auto svc = make(service_config(Algorithm::WeightedRoundRobin, Millis(10000),
                                 {backend_config(1, 10), backend_config(2, 10)}));
  Backend& b = at(*svc, 1);
  const double t0 = 1000.0;
  b.override_state = AdminState::Drain;
  svc->derive(b, t0);
  b.override_state.reset();
  svc->derive(b, t0);  // drain -> ready: slow start begins
  REQUIRE(b.ramp_start == t0);
  CHECK(b.weight() == 1);   // ceil(10 x 0) = 0 -> at least 1
  CHECK(b.ramp() == 1);     // at least one step
  svc->derive(b, t0 + 2.5);
  CHECK(b.weight() == 3);   // ceil(10 x 0.25)
  CHECK(b.ramp() == 5);     // ceil(20 x 0.25)
  CHECK(b.share() == 50);
  svc->derive(b, t0 + 9.99);
  CHECK(b.weight() == 10);
  CHECK(b.ramp() == 20);
  svc->derive(b, t0 + 10.0);
  CHECK(b.ramp_start < 0);  // over
  CHECK(b.weight() == 10);
  CHECK(b.share() == 10 * Backend::kRampSteps);
}

TEST_CASE("slow start: not for the hash algorithms, not for the only available backend") {
  for (Algorithm alg : {Algorithm::IpHash, Algorithm::ConsistentHash}) {
    auto svc = make(service_config(alg, Millis(10000), {backend_config(1), backend_config(2)}));
    Backend& b = at(*svc, 1);
    svc->begin_slow_start(b, 5.0);
    CHECK(b.ramp_start < 0);
  }
  auto svc = make(service_config(Algorithm::RoundRobin, Millis(10000), {backend_config(1), backend_config(2)}));
  Backend& a = at(*svc, 0);
  Backend& b = at(*svc, 1);
  a.override_state = AdminState::Maint;
  svc->derive(a, 1.0);
  svc->begin_slow_start(b, 1.0);
  CHECK(b.ramp_start < 0);  // a is out: b alone takes every connection
  a.override_state.reset();
  svc->derive(a, 2.0);      // a back (maint -> ready) beside b: a ramps
  CHECK(a.ramp_start == 2.0);
  b.override_state = AdminState::Drain;
  svc->derive(b, 2.5);
  CHECK(svc->refresh(2.5) == false);  // a is now the only one: its ramp ends
  CHECK(a.ramp() == Backend::kRampSteps);
  CHECK(svc->pool.any_available());
  CHECK(!svc->dropped_overrides.size());
}

TEST_CASE("slow start: round_robin and least_connections give a ramping backend its fraction") {
  for (Algorithm alg : {Algorithm::RoundRobin, Algorithm::LeastConnections,
                        Algorithm::WeightedRoundRobin, Algorithm::WeightedLeastConnections}) {
    INFO(to_string(alg));
    auto svc = make(service_config(alg, Millis(20000), {backend_config(1), backend_config(2)}));
    Backend& b = at(*svc, 1);
    const double t0 = monotonic_seconds();
    b.override_state = AdminState::Drain;
    svc->derive(b, t0);
    b.override_state.reset();
    svc->derive(b, t0);
    svc->refresh(t0 + 5.0);  // a quarter: 5 steps of 20
    auto count = picks(*svc, 500);
    double share = count[1] / 500.0;
    const bool by_load = alg == Algorithm::LeastConnections || alg == Algorithm::WeightedLeastConnections;
    if (by_load) {
      // No load held (each lease ends at once): the one further along wins every tie.
      CHECK(share <= 0.3);
      // Load held: the ramping one carries its fraction, 5 : 20.
      std::vector<Lease> held;
      int to_b = 0;
      for (int i = 0; i < 500; ++i) {
        held.push_back(svc->pool.acquire({}));
        REQUIRE(held.back());
        to_b += &held.back().backend() == &b ? 1 : 0;
      }
      CHECK(to_b / 500.0 == doctest::Approx(5.0 / 25.0).epsilon(0.1));
    } else {
      CHECK(share == doctest::Approx(5.0 / 25.0).epsilon(0.1));  // 5 : 20
    }
    svc->refresh(t0 + 25.0);  // over
    count = picks(*svc, 500);
    CHECK(count[1] / 500.0 == doctest::Approx(0.5).epsilon(0.05));
  }
}

TEST_CASE("reload: overrides stay unless the file changes that property (dropped, reported)") {
  ServiceConfig sc = service_config(Algorithm::RoundRobin, Millis(0),
                                    {backend_config(1, 3), backend_config(2, 3)});
  auto svc = make(sc);
  at(*svc, 0).override_state = AdminState::Drain;
  at(*svc, 0).override_weight = 7;
  at(*svc, 1).override_weight = 8;
  svc->refresh(1.0);
  // Same file: everything stays.
  svc->reconfigure(sc, Service::plan_backends(svc.get(), sc, 1));
  CHECK(svc->dropped_overrides.empty());
  CHECK(at(*svc, 0).admin_state() == AdminState::Drain);
  CHECK(at(*svc, 0).weight() == 7);
  // The file changes backend 0's drain and backend 1's weight.
  ServiceConfig next = service_config(Algorithm::RoundRobin, Millis(0),
                                      {backend_config(1, 3, true), backend_config(2, 4)});
  svc->reconfigure(next, Service::plan_backends(svc.get(), next, 1));
  REQUIRE(svc->dropped_overrides.size() == 2);
  CHECK(svc->dropped_overrides[0].backend == "127.0.0.1:1");
  CHECK(svc->dropped_overrides[0].what == "state");
  CHECK(svc->dropped_overrides[1].backend == "127.0.0.1:2");
  CHECK(svc->dropped_overrides[1].what == "weight");
  CHECK_FALSE(at(*svc, 0).override_state);
  CHECK(at(*svc, 0).override_weight == 7);  // its weight did not change in the file
  CHECK(at(*svc, 0).admin_state() == AdminState::Drain);  // now the file's
  CHECK(at(*svc, 1).weight() == 4);
}
