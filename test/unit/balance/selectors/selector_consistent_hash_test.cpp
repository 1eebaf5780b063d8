// consistent_hash (weighted rendezvous table): weight shares, exact minimal disruption,
// incremental changes equal to full builds, order independence, fixed hashes.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>

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
    // Only the removed backend's clients move.
    CHECK(moved_others == 0);

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
  set_weight(*bs[3], 2);  // 10 -> 11 weight units: ~1/11 of the table moves to it
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

// ---------------------------------------------------------------- the table itself

namespace {
std::vector<Backend*> raw(const std::vector<std::shared_ptr<Backend>>& bs) {
  std::vector<Backend*> out;
  for (auto& b : bs) out.push_back(b.get());
  return out;
}

// The owner of every slot.
std::vector<Backend*> owners(const ConsistentHash& ch) {
  std::vector<Backend*> out(ch.table_size());
  for (uint32_t s = 0; s < ch.table_size(); ++s) out[s] = ch.owner(s);
  return out;
}

// The owner of every slot by address (to compare tables of different Backend objects).
std::vector<uint64_t> owner_keys(const ConsistentHash& ch) {
  std::vector<uint64_t> out(ch.table_size());
  for (uint32_t s = 0; s < ch.table_size(); ++s) out[s] = hash_backend(ch.owner(s)->config.address);
  return out;
}

std::vector<std::shared_ptr<Backend>> with_weights(const std::vector<int>& weights, int first_port = 7000) {
  std::vector<std::shared_ptr<Backend>> bs;
  for (size_t i = 0; i < weights.size(); ++i)
    bs.push_back(backend("10.3." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1) + ":" +
                             std::to_string(first_port),
                         weights[i]));
  return bs;
}
}  // namespace

TEST_CASE("consistent_hash: the fixed-point -log2 is exact enough and never increases") {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> hs{0, 1, 2, 3, UINT64_MAX, UINT64_MAX - 1, uint64_t{1} << 63,
                           (uint64_t{1} << 63) - 1, (uint64_t{1} << 63) + 1};
  for (int k = 1; k < 64; ++k) {
    hs.push_back(uint64_t{1} << k);
    hs.push_back((uint64_t{1} << k) - 1);
    hs.push_back(~((uint64_t{1} << k) - 1));  // near 2^64: u near 1
    hs.push_back(~(uint64_t{1} << k));
  }
  for (int i = 0; i < 200000; ++i) {
    uint64_t h = rng();
    hs.push_back(h);
    hs.push_back(h >> (rng() % 64));   // small u
    hs.push_back(~(h >> (rng() % 64)));  // u near 1
  }
  std::sort(hs.begin(), hs.end());
  uint64_t last = UINT64_MAX;
  double worst = 0;
  size_t violations = 0;
  for (uint64_t h : hs) {
    uint64_t g = ConsistentHash::neg_log2(h);
    violations += g > last;
    last = g;
    // Away from the ends (2^-32 <= u <= 1 - 2^-32, i.e. all but 2^-31 of the draws),
    // the relative error.
    long double u = static_cast<long double>(h) / 18446744073709551616.0L;
    long double want = -std::log2(u);
    if (h >= (uint64_t{1} << 32) && ~h >= (uint64_t{1} << 32)) {
      double got = std::ldexp(static_cast<double>(g), -ConsistentHash::kLogBits);
      worst = std::max(worst, static_cast<double>(std::fabs(got - want) / want));
    }
  }
  MESSAGE("worst relative error of -log2: " << worst);
  CHECK(violations == 0);
  CHECK(worst < 2e-6);
  const uint64_t one = uint64_t{1} << ConsistentHash::kLogBits;
  CHECK(ConsistentHash::neg_log2((uint64_t{1} << 63) - 1) >= one);      // u = 1/2
  CHECK(ConsistentHash::neg_log2(uint64_t{1} << 63) <= one);
  CHECK(ConsistentHash::neg_log2(uint64_t{1} << 62) == 2 * one);         // u = 1/4
  CHECK(ConsistentHash::neg_log2(0) == 65 * one);
  CHECK(ConsistentHash::neg_log2(UINT64_MAX) == 0);
}

TEST_CASE("consistent_hash: slot shares follow the weights (+-3%, binomial)") {
  struct Case {
    std::vector<int> weights;
    bool relative;  // +-3% of the member's own share (else of all slots)
  };
  std::vector<Case> cases{{{1, 2, 3, 4}, true}, {{1, 1, 1, 1}, true}, {std::vector<int>(10, 1), false},
                          {std::vector<int>(50, 1), false}, {{5, 1, 1}, true}, {{1000, 1, 1, 1}, false}};
  std::vector<int> mixed;  // 100 backends, weights 1..10
  for (int i = 0; i < 100; ++i) mixed.push_back(1 + i % 10);
  cases.push_back({mixed, false});
  for (const Case& c : cases) {
    auto bs = with_weights(c.weights);
    CAPTURE(c.weights.size());
    CAPTURE(c.weights[0]);
    ConsistentHash ch;
    ch.rebuild(raw(bs));
    double total = 0;
    for (int w : c.weights) total += w;
    double m = ch.table_size(), worst_sigma = 0, worst_rel = 0;
    size_t sum = 0;
    for (auto& b : bs) {
      size_t got = ch.slots_of(b.get());
      sum += got;
      double p = b->config.weight / total, share = got / m;
      double sigma = std::sqrt(m * p * (1 - p));
      worst_sigma = std::max(worst_sigma, std::fabs(got - m * p) / sigma);
      worst_rel = std::max(worst_rel, std::fabs(share - p) / p);
      CHECK(std::fabs(share - p) <= 0.03 * (c.relative ? p : 1.0));
      CHECK(std::fabs(got - m * p) <= 4.5 * sigma);  // a binomial draw per slot, no more
    }
    CHECK(sum == ch.table_size());
    MESSAGE("weights " << c.weights.size() << " x (" << c.weights[0] << ", ...): worst "
                       << worst_rel * 100 << "% of own share, " << worst_sigma << " sigma");
  }
}

TEST_CASE("consistent_hash: removing a member changes exactly its slots; adding it back restores") {
  std::vector<int> mixed;
  for (int i = 0; i < 50; ++i) mixed.push_back(1 + i * 7 % 5);
  for (const auto& weights : {std::vector<int>(4, 1), std::vector<int>{1, 2, 3, 4}, std::vector<int>(10, 1),
                              std::vector<int>{3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, mixed}) {
    auto bs = with_weights(weights);
    const size_t n = bs.size();
    CAPTURE(n);
    ConsistentHash ch;
    std::vector<Backend*> all = raw(bs);
    CHECK(ch.rebuild(all) == 0);  // the first build
    const std::vector<Backend*> start = owners(ch);
    for (size_t gone = 0; gone < n; gone += n > 10 ? 7 : 1) {
      CAPTURE(gone);
      std::vector<Backend*> rest = all;
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(gone));
      size_t held = ch.slots_of(all[gone]);
      double moved = ch.rebuild(rest);
      CHECK(ch.last_incremental());
      std::vector<Backend*> now = owners(ch);
      size_t changed = 0, wrong = 0;
      for (uint32_t s = 0; s < ch.table_size(); ++s) {
        changed += now[s] != start[s];
        wrong += start[s] == all[gone] ? now[s] == all[gone] : now[s] != start[s];
      }
      CHECK(wrong == 0);
      CHECK(changed == held);
      // The figure rebuild() reports is that member's share of the table, exactly.
      CHECK(moved == static_cast<double>(held) / ch.table_size());
      double total = 0;
      for (int w : weights) total += w;
      CHECK(moved == doctest::Approx(weights[gone] / total).epsilon(0.5));
      // Adding it back restores every slot.
      CHECK(ch.rebuild(all) == moved);
      CHECK(ch.last_incremental());
      CHECK(owners(ch) == start);
    }
  }
}

TEST_CASE("consistent_hash: a change applied in place gives the full build's table") {
  // A pool of 80 candidate backends (weights all 1, 1..4, or 80 distinct); random changes of
  // one to three members, weight changes, and bigger changes, compared after each with
  // a table built from scratch by another instance (members in another order).
  // (Few distinct weights take the grouped scan, many the bounded one: both are covered.)
  for (int variant : {0, 1, 2}) {
    std::string name = variant == 0 ? "equal" : variant == 1 ? "1..4" : "distinct";
    CAPTURE(name);
    std::mt19937_64 rng(7 + static_cast<unsigned>(variant));
    std::vector<int> weights;
    for (int i = 0; i < 80; ++i) weights.push_back(variant == 0 ? 1 : variant == 1 ? 1 + static_cast<int>(rng() % 4) : 1 + i * 37 % 500);
    auto bs = with_weights(weights, 7100);
    std::vector<bool> in(bs.size(), false);
    for (size_t i = 0; i < 40; ++i) in[i] = true;
    ConsistentHash inc;
    size_t incremental = 0, steps = 40;
    for (size_t step = 0; step < steps; ++step) {
      CAPTURE(step);
      if (step > 0) {
        size_t kind = rng() % 6;
        if (kind < 4) {  // flip one to three members in or out
          for (size_t k = 0, flips = 1 + rng() % 3; k < flips; ++k) {
            size_t i = rng() % bs.size();
            in[i] = !in[i];
          }
        } else if (kind == 4) {  // a weight change
          size_t i = rng() % bs.size();
          set_weight(*bs[i], 1 + static_cast<int>(rng() % 6));
          in[i] = true;
        } else {  // a big change
          for (size_t i = 0; i < bs.size(); ++i)
            if (rng() % 3 == 0) in[i] = !in[i];
        }
      }
      std::vector<Backend*> members;
      for (size_t i = 0; i < bs.size(); ++i)
        if (in[i]) members.push_back(bs[i].get());
      if (members.empty()) members.push_back(bs[0].get());
      std::vector<Backend*> before = step ? owners(inc) : std::vector<Backend*>{};
      double moved = inc.rebuild(members);
      incremental += inc.last_incremental();
      ConsistentHash full;
      full.set_incremental(false);
      std::vector<Backend*> shuffled = members;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      full.rebuild(shuffled);
      REQUIRE(owners(inc) == owners(full));
      if (step) {
        size_t changed = 0;
        for (uint32_t s = 0; s < inc.table_size(); ++s) changed += before[s] != inc.owner(s);
        CHECK(moved == static_cast<double>(changed) / inc.table_size());
      }
    }
    MESSAGE(name << " weights: " << incremental << " of " << steps
                                        << " changes applied in place");
    CHECK(incremental >= steps / 2);
  }
}

TEST_CASE("consistent_hash: the table depends only on the set of (address, weight)") {
  auto bs = backends(30, 7000, true);
  std::vector<Backend*> members = raw(bs);
  ConsistentHash a, b, c;
  a.rebuild(members);
  std::mt19937_64 rng(3);
  std::shuffle(members.begin(), members.end(), rng);
  b.rebuild(members);
  CHECK(owners(a) == owners(b));
  // Other Backend objects with the same addresses and weights: the same owners.
  std::vector<std::shared_ptr<Backend>> copies;
  for (auto& x : bs) copies.push_back(backend(x->config.address_text, x->config.weight));
  std::reverse(copies.begin(), copies.end());
  c.rebuild(raw(copies));
  CHECK(owner_keys(a) == owner_keys(c));
  // A reordered list moves nothing.
  CHECK(a.rebuild(members) == 0);
  CHECK(owners(a) == owners(b));
  // Another weight is another table (but the same addresses keep most slots).
  set_weight(*copies[0], copies[0]->config.weight + 1);
  CHECK(c.rebuild(raw(copies)) > 0);
}

TEST_CASE("consistent_hash: the same table on every machine (golden value)") {
  // Pins the table: the slot hash, the fixed-point -log2 and the tie rules. Changing it
  // changes consistent_hash choices between versions (and between mixed instances).
  std::vector<int> weights;
  for (int i = 0; i < 20; ++i) weights.push_back(1 + i % 3);
  auto bs = with_weights(weights);
  ConsistentHash ch;
  ch.rebuild(raw(bs));
  uint64_t sum = 0;
  for (uint64_t k : owner_keys(ch)) sum = hash_bytes(&k, sizeof k, sum);
  MESSAGE("table checksum " << sum);
  CHECK(sum == 5080198560533538461ULL);
  CHECK(ConsistentHash::slot_hash(1, 0) == 121124985946443870ULL);
  CHECK(ConsistentHash::neg_log2(0x123456789abcdef0ULL) == 17175743738802150ULL);
}

TEST_CASE("consistent_hash: build times" * doctest::skip()) {
  // build/unit-tests -tc='consistent_hash: build times' --no-skip
  auto time_ms = [](auto&& f) {
    double best = 1e9;
    for (int r = 0; r < 3; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  for (bool equal : {true, false}) {
    for (int n : {10, 100, 1000}) {
      std::vector<int> weights;
      for (int i = 0; i < n; ++i) weights.push_back(equal ? 1 : 1 + i % 10);
      auto bs = with_weights(weights);
      std::vector<Backend*> all = raw(bs), less = all;
      less.erase(less.begin() + n / 2);
      double full = time_ms([&] {
        ConsistentHash ch;
        ch.rebuild(all);
      });
      ConsistentHash ch;
      ch.rebuild(all);
      double down = 0, up = 0;
      for (int r = 0; r < 3; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        ch.rebuild(less);
        auto t1 = std::chrono::steady_clock::now();
        REQUIRE(ch.last_incremental());
        ch.rebuild(all);
        auto t2 = std::chrono::steady_clock::now();
        REQUIRE(ch.last_incremental());
        double d = std::chrono::duration<double, std::milli>(t1 - t0).count();
        double u = std::chrono::duration<double, std::milli>(t2 - t1).count();
        down = r ? std::min(down, d) : d;
        up = r ? std::min(up, u) : u;
      }
      std::printf("%s weights, N=%4d: full build %8.2f ms, one member down %6.2f ms, back up %6.2f ms\n",
                  equal ? "equal" : "1..10", n, full, down, up);
    }
  }
}
