// The rise/fall state machine of a backend's health (pure).
//   unknown --success--> up          unknown --failure--> down (at once)
//   up   --unhealthy_threshold consecutive failures--> down
//   down --healthy_threshold consecutive successes--> up
#pragma once
#include <string_view>

#include "l4lb/balance/backend.hpp"

namespace l4lb {

struct HealthThresholds {
  int healthy = 2;
  int unhealthy = 3;
};

// Applies one check result to (STATE, STREAK) and returns the new state. STREAK
// counts consecutive results of the same kind: > 0 successes, < 0 failures.
HealthState apply_check(HealthState state, int& streak, bool success, HealthThresholds t);

std::string_view to_string(HealthState s);  // "unknown", "up", "down"

}  // namespace l4lb
