// When health checks run: at once for new backends, then on evenly spread slots.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "l4lb/health/check_schedule.hpp"

using namespace l4lb;

TEST_CASE("check schedule: new backends at once, then each on its slot of the interval") {
  const double t0 = 1000.0, interval = 2.0;
  const size_t n = 4;
  std::vector<double> second;
  for (size_t i = 0; i < n; ++i) {
    CheckSchedule s(t0, interval, i, n);
    CHECK(s.first_delay(true) == 0.0);
    double at = t0 + s.next_delay(t0, 0.0);  // after the check at once
    second.push_back(at);
    // at least half an interval after the first check, at most one and a half
    CHECK(at - t0 >= interval / 2 - 1e-9);
    CHECK(at - t0 <= 1.5 * interval + CheckSchedule::kGrid);
    // then exactly one interval apart (no jitter), the phase kept
    double next = at + s.next_delay(at, 0.0);
    CHECK(next - at == doctest::Approx(interval).epsilon(0.006));
  }
  // phases 0, 1/4, 2/4, 3/4 of the interval: spread evenly
  std::vector<double> phases;
  for (double at : second) phases.push_back(std::fmod(at - t0, interval) / interval);
  std::sort(phases.begin(), phases.end());
  for (size_t i = 0; i < n; ++i) CHECK(phases[i] == doctest::Approx(static_cast<double>(i) / n).epsilon(0.01));
}

TEST_CASE("check schedule: known backends (kept by a reload) wait for their slot") {
  const double t0 = 50.0, interval = 1.0;
  CheckSchedule s(t0, interval, 3, 10);
  CHECK(s.first_delay(false) == doctest::Approx(0.3));
  CheckSchedule first(t0, interval, 0, 10);
  CHECK(first.first_delay(false) == 0.0);
}

TEST_CASE("check schedule: jitter moves one check, never the slots after it") {
  const double t0 = 0.0, interval = 1.0;
  CheckSchedule s(t0, interval, 0, 1);
  double now = t0;
  for (int k = 1; k <= 1000; ++k) {
    double jitter = (k % 2) ? 1.0 : -1.0;  // the worst case: always the extreme
    now += s.next_delay(now, jitter);
    // check k stays within 2% (+ the 10 ms grid) of its slot k * interval: no drift
    CHECK(std::fabs(now - k * interval) <= CheckSchedule::kJitter * interval + CheckSchedule::kGrid + 1e-6);
  }
}

TEST_CASE("check schedule: a late wake-up skips the missed slots, never runs twice at once") {
  CheckSchedule s(0.0, 1.0, 0, 1);
  double d = s.next_delay(0.0, 0.0);
  CHECK(d == doctest::Approx(1.0));
  // the loop was stuck for 5.7 s: the next check is on a slot at least half an interval away
  double late = 6.7;
  double next = late + s.next_delay(late, 0.0);
  CHECK(next == doctest::Approx(8.0));
}
