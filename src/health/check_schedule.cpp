#include "l4lb/health/check_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace l4lb {

CheckSchedule::CheckSchedule(double now, double interval, size_t index, size_t count)
    : interval_(interval),
      start_(now),
      slot_(now + interval * static_cast<double>(index) / static_cast<double>(std::max<size_t>(count, 1))) {}

double CheckSchedule::next_delay(double now, double jitter) {
  double earliest = now + interval_ / 2;
  if (slot_ < earliest) slot_ += std::ceil((earliest - slot_) / interval_) * interval_;
  double due = slot_ + std::clamp(jitter, -1.0, 1.0) * kJitter * interval_;
  due = std::ceil(due / kGrid) * kGrid;
  return std::max(due - now, 0.0);
}

}  // namespace l4lb
