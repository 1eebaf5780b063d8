// random: uniform over the available backends (chi-square over 10,000 picks).
#include <doctest/doctest.h>

#include "selector_test_helpers.hpp"

using namespace l4lb;
using namespace l4lb::testing;

namespace {
// Chi-square of COUNTS against a uniform spread of their sum.
double chi_square(const std::vector<int>& counts) {
  double total = 0;
  for (int c : counts) total += c;
  double expected = total / static_cast<double>(counts.size()), chi = 0;
  for (int c : counts) chi += (c - expected) * (c - expected) / expected;
  return chi;
}
}  // namespace

TEST_CASE("random: uniform over 10 backends (chi-square, 10,000 picks)") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 10; ++i) bs.push_back(backend(100 + i, 1 + i));  // weights ignored
  Pool pool(bs, Algorithm::Random);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 10000; ++i) {
    Backend* b = pick(pool);
    for (size_t k = 0; k < bs.size(); ++k) counts[k] += bs[k].get() == b;
  }
  // 9 degrees of freedom: P(chi2 > 35) is about 6e-5.
  CHECK(chi_square(counts) < 35.0);
}

TEST_CASE("random: uniform over the backends that remain when some are unavailable") {
  std::vector<std::shared_ptr<Backend>> bs;
  for (int i = 0; i < 8; ++i) bs.push_back(backend(200 + i));
  Pool pool(bs, Algorithm::Random);
  bs[1]->health = HealthState::Down;  // no refresh: redrawn at pick time
  bs[2]->config.drain = true;
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
  Pool pool(bs, Algorithm::Random);
  for (size_t k = 2; k < bs.size(); ++k) bs[k]->config.drain = true;  // 8 draws mostly miss
  int first = 0;
  for (int i = 0; i < 10000; ++i) first += pick(pool) == bs[0].get();
  CHECK(first > 4700);
  CHECK(first < 5300);
}
