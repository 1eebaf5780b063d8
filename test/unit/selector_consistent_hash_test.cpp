// consistent_hash (Maglev): weight shares, minimal disruption, order independence,
// fixed hashes.
#include <doctest/doctest.h>

#include <algorithm>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
std::vector<std::shared_ptr<Backend>> backends(int n, int first_port = 7000, bool weighted = false) {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < n; ++i)
    bs.push_back(backend("10.1." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1) + ":" +
                             std::to_string(first_port),
                         weighted ? 1 + i % 4 : 1));
  return bs;
}

constexpr uint32_t kClients = 40000;

std::vector<Backend*> map_clients(Pool& pool) {
  std::vector<Backend*> out;
  out.reserve(kClients);
  for (uint32_t i = 0; i < kClients; ++i) {
    Address c = client(i * 2654435761u % 16777216u, i % 4 == 3);
    out.push_back(pick(pool, &c));
  }
  return out;
}
}  // namespace

TEST_CASE("consistent_hash: each backend's share of the table is its weight share (+-3%)") {
  for (bool weighted : {false, true}) {
    auto bs = backends(12, 7000, weighted);
    ConsistentHash ch;
    std::vector<Backend*> members;
    double total = 0;
    for (auto& b : bs) {
      members.push_back(b.get());
      total += b->config.weight;
    }
    ch.rebuild(members);
    for (auto& b : bs) {
      double share = static_cast<double>(ch.slots_of(b.get())) / ch.table_size();
      double want = b->config.weight / total;
      CHECK(share == doctest::Approx(want).epsilon(0.03));
    }
    // And through picks, for many clients (looser: sampling noise).
    Pool pool(bs, Algorithm::ConsistentHash);
    std::map<Backend*, int> count;
    for (Backend* b : map_clients(pool)) ++count[b];
    for (auto& b : bs)
      CHECK(count[b.get()] / double(kClients) == doctest::Approx(b->config.weight / total).epsilon(0.12));
  }
}

TEST_CASE("consistent_hash: removing 1 of N moves that backend's clients and about 1/N") {
  for (int n : {5, 10, 50}) {
    CAPTURE(n);
    auto bs = backends(n);
    Pool pool(bs, Algorithm::ConsistentHash);
    std::vector<Backend*> before = map_clients(pool);
    Backend* gone = bs[static_cast<size_t>(n / 2)].get();
    double moved_table = pool.set_health(*gone, HealthState::Down);
    CHECK(pool.moved_fraction() == moved_table);
    std::vector<Backend*> after = map_clients(pool);
    size_t moved = 0, moved_others = 0, of_gone = 0;
    for (uint32_t i = 0; i < kClients; ++i) {
      CHECK(after[i] != gone);
      of_gone += before[i] == gone;
      if (before[i] != after[i]) {
        ++moved;
        moved_others += before[i] != gone;
      }
    }
    double frac = double(moved) / kClients, table = moved_table;
    MESSAGE("n=" << n << " moved clients " << frac << " table " << table << " of others "
                 << double(moved_others) / kClients << " (1/N = " << 1.0 / n << ")");
    CHECK(frac >= 0.5 / n);
    CHECK(frac <= 1.5 / n);
    CHECK(table >= 0.5 / n);
    CHECK(table <= 1.5 / n);
    // Maglev's small extra disruption: clients of other backends that moved.
    CHECK(double(moved_others) / kClients < 0.3 / n);

    // Re-adding it restores the old mapping exactly.
    double back = pool.set_health(*gone, HealthState::Up);
    CHECK(back == doctest::Approx(moved_table));
    CHECK(map_clients(pool) == before);
  }
}

TEST_CASE("consistent_hash: the same set in another order, or other objects, gives the same table") {
  auto bs = backends(30, 7000, true);
  auto reversed = bs;
  std::reverse(reversed.begin(), reversed.end());
  std::vector<std::shared_ptr<Backend>> copies;  // another instance: same addresses/weights
  for (auto& b : bs) copies.push_back(backend(b->config.address_text, b->config.weight));
  std::rotate(copies.begin(), copies.begin() + 7, copies.end());
  Pool p1(bs, Algorithm::ConsistentHash), p2(reversed, Algorithm::ConsistentHash),
      p3(copies, Algorithm::ConsistentHash);
  std::vector<Backend*> m1 = map_clients(p1), m2 = map_clients(p2), m3 = map_clients(p3);
  CHECK(m1 == m2);
  for (uint32_t i = 0; i < kClients; ++i) REQUIRE(m1[i]->config.address == m3[i]->config.address);
  // A reload that only reorders the file moves nothing.
  CHECK(p1.update(reversed, Algorithm::ConsistentHash) == 0);
  CHECK(map_clients(p1) == m2);
}

TEST_CASE("consistent_hash: a weight change moves about the weight that changed") {
  auto bs = backends(10);
  Pool pool(bs, Algorithm::ConsistentHash);
  bs[3]->config.weight = 2;  // 10 -> 11 weight units: ~1/11 of the table moves to it
  double moved = pool.refresh();
  CHECK(moved > 0.5 / 11);
  CHECK(moved < 1.5 / 11);
  CHECK(pool.moved_fraction() == moved);
  CHECK(pool.refresh() == 0);              // nothing changed
  CHECK(pool.moved_fraction() == moved);   // the last change's figure stays
}

TEST_CASE("consistent_hash: all regulars down switches to the backups (everything moves)") {
  auto a = backend(1), spare = backend(2, 1, true);
  Pool pool({a, spare}, Algorithm::ConsistentHash);
  CHECK(pool.moved_fraction() == 0);
  CHECK(pool.set_health(*a, HealthState::Down) == 1);
  Address c = client(1);
  CHECK(pick(pool, &c) == spare.get());
  CHECK(pool.set_health(*a, HealthState::Up) == 1);
  CHECK(pick(pool, &c) == a.get());
}

TEST_CASE("consistent_hash: a full or tried choice walks on, deterministically") {
  auto bs = backends(8);
  Pool pool(bs, Algorithm::ConsistentHash);
  std::vector<Backend*> before = map_clients(pool);
  Backend* first = before[0];
  std::vector<Backend*> avoid{first};
  Address c0 = client(0);
  Backend* second = pick(pool, &c0, avoid);
  CHECK(second != nullptr);
  CHECK(second != first);
  CHECK(pick(pool, &c0, avoid) == second);
  first->config.max_connections = 1;
  Lease hold(first->shared_from_this());
  CHECK(pick(pool, &c0) == second);  // full: the same next choice as "tried"
}

TEST_CASE("fixed hashes: the same values everywhere (golden values)") {
  // These pin the hash: changing them changes every consistent_hash / ip_hash choice.
  Address c = address("192.0.2.1:1234"), b = address("10.0.0.1:8080");
  CHECK(hash_bytes("", 0) == hash_bytes("", 0, 0));
  CHECK(hash_client(&c) == 6526086231696783564ULL);
  CHECK(hash_backend(b) == 12461219722723758308ULL);
}
