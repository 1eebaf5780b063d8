// When one backend's health checks run (pure arithmetic, times in seconds).
// Backend INDEX of COUNT in a service owns the slot at phase INDEX/COUNT of every interval,
// so a service's checks are spread evenly over the interval (INTERFACE.md). A backend whose
// state is unknown (at start, or added by a reload) is checked at once, then joins its
// slot; a known one (kept by a reload) waits for its slot. Slots are absolute — jitter
// (a little, so instances never fall into step) moves one check, never the ones after it —
// and two checks of one backend are at least half an interval apart.
#pragma once
#include <cstddef>

namespace l4lb {

class CheckSchedule {
 public:
  static constexpr double kJitter = 0.02;  // +-2% of the interval
  static constexpr double kGrid = 0.01;    // due times are rounded up to 10 ms: checks due
                                           // about together share one loop wake-up

  CheckSchedule(double now, double interval, size_t index, size_t count);

  // Delay from the constructor's NOW to the first check.
  double first_delay(bool at_once) const { return at_once ? 0.0 : slot_ - start_; }
  // A check runs at NOW: the delay to the one after it. JITTER in [-1, 1].
  double next_delay(double now, double jitter);

 private:
  double interval_;
  double start_;
  double slot_;  // the next slot (absolute)
};

}  // namespace l4lb
