// The pool under several workers at once: picks reserve a backend's place in the step
// that checks it, and load-ordered algorithms keep their index right while leases come
// and go on other threads. (Run under SANITIZE=thread too: scripts/tsan.sh.)
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "l4lb/balance/pool.hpp"
#include "selectors/selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
constexpr int kThreads = 4;
constexpr int kRounds = 20000;

// Runs FN(thread index) on kThreads threads at once.
template <class Fn>
void on_threads(Fn fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      fn(t);
    });
  for (auto& th : threads) th.join();
}
}  // namespace

TEST_CASE("picks from several threads never take a backend past max_connections") {
  auto a = backend(8001), b = backend(8002);
  a->config.max_connections = 2;
  b->config.max_connections = 1;
  Pool pool({a, b}, Algorithm::RoundRobin);
  std::atomic<uint32_t> over{0}, granted{0}, empty{0};
  on_threads([&](int) {
    std::vector<Lease> held;
    for (int i = 0; i < kRounds; ++i) {
      Lease l = pool.acquire(PickContext{});
      if (!l) {
        empty.fetch_add(1);
      } else {
        granted.fetch_add(1);
        if (l.backend().live() > l.backend().config.max_connections) over.fetch_add(1);
        held.push_back(std::move(l));
      }
      if (held.size() > 3 || i % 7 == 0) held.clear();  // give back, at varying times
    }
  });
  CHECK(over == 0);
  CHECK(granted > 0);
  CHECK(empty > 0);  // the limits were reached, so the check was exercised
  CHECK(a->live() == 0);
  CHECK(b->live() == 0);
}

TEST_CASE("least_connections keeps its load index right while leases move on several threads") {
  std::vector<std::shared_ptr<Backend>> bs{backend(8001), backend(8002), backend(8003)};
  Pool pool(bs, Algorithm::LeastConnections);
  on_threads([&](int t) {
    std::vector<Lease> held;
    for (int i = 0; i < kRounds; ++i) {
      held.push_back(pool.acquire(PickContext{}));
      if (held.size() > static_cast<size_t>(1 + t)) held.erase(held.begin());
    }
  });
  for (const auto& b : bs) CHECK(b->live() == 0);
  // All idle again: the index must see equal loads, so picks that are held spread 1/1/1.
  std::vector<Lease> held;
  for (int i = 0; i < 3; ++i) held.push_back(pool.acquire(PickContext{}));
  for (const auto& b : bs) CHECK(b->live() == 1);
  // And the least loaded is chosen after uneven releases.
  Backend* freed = held[1].get();
  held[1] = Lease();
  Lease next = pool.acquire(PickContext{});
  CHECK(next.get() == freed);
}
