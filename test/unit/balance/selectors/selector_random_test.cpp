// random: in proportion to weight over the available backends (chi-square over 10,000 picks).
// Every pool here draws from a fixed seed, so a statistical bound either always holds or
// always fails for the code under test: none of these can fail by chance.
#include <doctest/doctest.h>

#include <algorithm>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
// A random pool whose regular tier draws from SEED (splitmix64), not from std::random_device.
Pool seeded_pool(std::vector<std::shared_ptr<Backend>> bs, uint64_t seed) {
  return Pool(std::move(bs), std::make_unique<Random>(seed));
}

// Chi-square of COUNTS against a spread of their sum in proportion to WEIGHTS (uniform
// when WEIGHTS is empty).
double chi_square(const std::vector<int>& counts, std::vector<double> weights = {}) {
  if (weights.empty()) weights.assign(counts.size(), 1.0);
  double total = 0, wsum = 0, chi = 0;
  for (int c : counts) total += c;
  for (double w : weights) wsum += w;
  for (size_t i = 0; i < counts.size(); ++i) {
    double expected = total * weights[i] / wsum;
    chi += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi;
}
}  // namespace

TEST_CASE("random: uniform over 10 equal backends (chi-square, 10,000 picks)") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 10; ++i) bs.push_back(backend(100 + i));
  Pool pool = seeded_pool(bs, 0x5eed0001);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 10000; ++i) {
    Backend* b = pick(pool);
    for (size_t k = 0; k < bs.size(); ++k) counts[k] += bs[k].get() == b;
  }
  // 9 degrees of freedom: P(chi2 > 35) is about 6e-5.
  CHECK(chi_square(counts) < 35.0);
}

TEST_CASE("random: in proportion to weight, as nginx's random (weights 1..10, and 5:1:1)") {
  std::vector<std::shared_ptr<Backend>> bs;
  std::vector<double> weights;
  for (int i = 0; i < 10; ++i) {
    bs.push_back(backend(150 + i, 1 + i));
    weights.push_back(1 + i);
  }
  Pool pool = seeded_pool(bs, 0x5eed0002);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 20000; ++i) {
    Backend* b = pick(pool);
    for (size_t k = 0; k < bs.size(); ++k) counts[k] += bs[k].get() == b;
  }
  CHECK(chi_square(counts, weights) < 35.0);
  CHECK(chi_square(counts) > 1000.0);  // far from uniform

  // A reload that changes only weights takes effect (no change of members).
  for (auto& b : bs) set_weight(*b, 1);
  pool.refresh();
  std::fill(counts.begin(), counts.end(), 0);
  for (int i = 0; i < 10000; ++i) {
    Backend* b = pick(pool);
    for (size_t k = 0; k < bs.size(); ++k) counts[k] += bs[k].get() == b;
  }
  CHECK(chi_square(counts) < 35.0);

  // The linear fallback keeps the proportions: 5:1:1 among three left of many.
  std::vector<std::shared_ptr<Backend>> many;
  for (int i = 0; i < 200; ++i) many.push_back(backend(400 + i, i == 0 ? 5 : 1));
  Pool sparse = seeded_pool(many, 0x5eed0003);
  for (size_t k = 3; k < many.size(); ++k) set_drain(*many[k], true);  // draws mostly miss
  std::vector<int> three(3, 0);
  for (int i = 0; i < 14000; ++i) {
    Backend* b = pick(sparse);
    for (size_t k = 0; k < 3; ++k) three[k] += many[k].get() == b;
  }
  CHECK(three[0] + three[1] + three[2] == 14000);
  CHECK(chi_square(three, {5, 1, 1}) < 14.0);  // 2 degrees of freedom
}

TEST_CASE("random: uniform over the backends that remain when some are unavailable") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 8; ++i) bs.push_back(backend(200 + i));
  Pool pool = seeded_pool(bs, 0x5eed0004);
  bs[1]->health = HealthState::Down;  // no refresh: redrawn at pick time
  set_drain(*bs[2], true);
  bs[3]->config.max_connections = 1;
  Lease full(bs[3]);
  std::vector<Backend*> avoid{bs[4].get()};
  std::vector<int> counts;
  std::vector<int> raw(8, 0);
  for (int i = 0; i < 10000; ++i) {
    Backend* b = pick(pool, nullptr, avoid);
    for (size_t k = 0; k < bs.size(); ++k) raw[k] += bs[k].get() == b;
  }
  for (int k : {1, 2, 3, 4}) CHECK(raw[static_cast<size_t>(k)] == 0);
  for (int k : {0, 5, 6, 7}) counts.push_back(raw[static_cast<size_t>(k)]);
  // 3 degrees of freedom: P(chi2 > 21) is about 1e-4.
  CHECK(chi_square(counts) < 21.0);
}

TEST_CASE("random: the linear fallback is uniform too (most members unavailable)") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 200; ++i) bs.push_back(backend(300 + i));
  Pool pool = seeded_pool(bs, 0x5eed0005);
  for (size_t k = 2; k < bs.size(); ++k) set_drain(*bs[k], true);  // 8 draws mostly miss
  int first = 0;
  for (int i = 0; i < 10000; ++i) first += pick(pool) == bs[0].get();
  CHECK(first > 4700);
  CHECK(first < 5300);
}

TEST_CASE("random: the same seed gives the same picks (what keeps the tests above exact)") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 10; ++i) bs.push_back(backend(500 + i, 1 + i % 3));
  Pool a = seeded_pool(bs, 42), b = seeded_pool(bs, 42), c = seeded_pool(bs, 43);
  std::vector<Backend*> pa, pb, pc;
  for (int i = 0; i < 200; ++i) {
    pa.push_back(pick(a));
    pb.push_back(pick(b));
    pc.push_back(pick(c));
  }
  CHECK(pa == pb);
  CHECK(pa != pc);
}
