#include "l4lb/balance/service.hpp"

#include <ctime>

#include <fmt/format.h>

#include "l4lb/health/health.hpp"

namespace l4lb {

namespace {
constexpr size_t kHistory = 16;

double now_unix() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
}  // namespace

void Service::report_health(Backend& b, bool ok, std::string_view reason, Log& log) {
  HealthRecord& rec = b.health_record;
  rec.last_check = now_unix();
  if (ok) {
    ++rec.checks_ok;
    rec.last_error.clear();
  } else {
    ++rec.checks_failed;
    rec.last_error = reason;
  }
  const HealthCheckConfig& hc = config.health_check;
  HealthState before = b.health;
  HealthState after =
      apply_check(before, b.health_streak, ok, {hc.healthy_threshold, hc.unhealthy_threshold});
  if (after == before) return;

  rec.history.push_back({rec.last_check, before, after, std::string(reason)});
  if (rec.history.size() > kHistory) rec.history.pop_front();
  double moved = pool.set_health(b, after);  // rebuilds only if membership changed
  const bool up = after == HealthState::Up;
  std::vector<LogField> fields{{"service", config.name}, {"backend", b.config.address_text}};
  if (!up) fields.push_back({"reason", std::string(reason)});
  // consistent_hash: how much of the lookup table now maps elsewhere.
  if (config.algorithm == Algorithm::ConsistentHash)
    fields.push_back({"table_moved", fmt::format("{:.4f}", moved)});
  log.write(up ? LogLevel::Info : LogLevel::Warn, up ? "backend up" : "backend down", fields);
}

}  // namespace l4lb
