#include "l4lb/health/health.hpp"

namespace l4lb {

HealthState apply_check(HealthState state, int& streak, bool success, HealthThresholds t) {
  if (success)
    streak = streak > 0 ? streak + 1 : 1;
  else
    streak = streak < 0 ? streak - 1 : -1;
  switch (state) {
    case HealthState::Unknown:
      return success ? HealthState::Up : HealthState::Down;
    case HealthState::Up:
      return -streak >= t.unhealthy ? HealthState::Down : HealthState::Up;
    case HealthState::Down:
      return streak >= t.healthy ? HealthState::Up : HealthState::Down;
  }
  return state;
}

std::string_view to_string(HealthState s) {
  switch (s) {
    case HealthState::Up: return "up";
    case HealthState::Down: return "down";
    case HealthState::Unknown: break;
  }
  return "unknown";
}

}  // namespace l4lb
