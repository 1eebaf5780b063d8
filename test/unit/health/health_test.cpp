// The rise/fall health state machine, for every threshold combination 1..4 x 1..4.
#include <doctest/doctest.h>

#include <vector>

#include "l4lb/health/health.hpp"

using namespace l4lb;

namespace {
struct Machine {
  HealthState state = HealthState::Unknown;
  int streak = 0;
  HealthThresholds t;
  HealthState feed(bool ok) { return state = apply_check(state, streak, ok, t); }
};
}  // namespace

TEST_CASE("the first result decides at once: success -> up, failure -> down") {
  for (int h = 1; h <= 4; ++h)
    for (int u = 1; u <= 4; ++u) {
      Machine up{HealthState::Unknown, 0, {h, u}};
      CHECK(up.feed(true) == HealthState::Up);
      Machine down{HealthState::Unknown, 0, {h, u}};
      CHECK(down.feed(false) == HealthState::Down);
    }
}

TEST_CASE("an up backend goes down after exactly unhealthy_threshold consecutive failures") {
  for (int h = 1; h <= 4; ++h)
    for (int u = 1; u <= 4; ++u) {
      CAPTURE(h);
      CAPTURE(u);
      Machine m{HealthState::Unknown, 0, {h, u}};
      m.feed(true);
      for (int i = 1; i < u; ++i) CHECK(m.feed(false) == HealthState::Up);
      CHECK(m.feed(false) == HealthState::Down);
    }
}

TEST_CASE("a down backend comes back after exactly healthy_threshold consecutive successes") {
  for (int h = 1; h <= 4; ++h)
    for (int u = 1; u <= 4; ++u) {
      CAPTURE(h);
      CAPTURE(u);
      Machine m{HealthState::Unknown, 0, {h, u}};
      m.feed(false);
      for (int i = 1; i < h; ++i) CHECK(m.feed(true) == HealthState::Down);
      CHECK(m.feed(true) == HealthState::Up);
    }
}

TEST_CASE("an interrupted streak starts over") {
  Machine m{HealthState::Unknown, 0, {3, 3}};
  m.feed(true);
  m.feed(false);
  m.feed(false);
  CHECK(m.feed(true) == HealthState::Up);  // streak of failures broken
  m.feed(false);
  m.feed(false);
  CHECK(m.state == HealthState::Up);
  CHECK(m.feed(false) == HealthState::Down);
  m.feed(true);
  m.feed(true);
  CHECK(m.feed(false) == HealthState::Down);  // streak of successes broken
  m.feed(true);
  m.feed(true);
  CHECK(m.state == HealthState::Down);
  CHECK(m.feed(true) == HealthState::Up);
}

TEST_CASE("the streak counts successes positive and failures negative") {
  Machine m;
  m.feed(true);
  m.feed(true);
  CHECK(m.streak == 2);
  m.feed(false);
  CHECK(m.streak == -1);
  CHECK(to_string(HealthState::Up) == "up");
  CHECK(to_string(HealthState::Down) == "down");
  CHECK(to_string(HealthState::Unknown) == "unknown");
}
