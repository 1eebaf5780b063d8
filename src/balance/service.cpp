#include "l4lb/balance/service.hpp"

#include <fmt/format.h>

#include "l4lb/base/clock.hpp"
#include "l4lb/health/health.hpp"

namespace l4lb {

namespace {
constexpr size_t kHistory = 16;

}  // namespace

void Service::report_health(Backend& b, bool ok, std::string_view reason, Log& log) {
  // A passive failure posted by a worker may arrive after a reload turned checks off:
  // without checks a backend is always up, whatever the interleaving.
  if (config.health_check.type == HealthType::None) return;
  HealthRecord& rec = b.health_record;
  rec.last_check = unix_now();
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

// ------------------------------------------------------------------ reload

std::shared_ptr<Backend> Service::find_backend(const Address& addr) const {
  for (const auto& b : pool.backends())
    if (b->config.address == addr) return b;
  return nullptr;
}

std::shared_ptr<Backend> Service::find_retired(const Address& addr) const {
  for (const auto& w : retired_)
    if (std::shared_ptr<Backend> b = w.lock(); b && b->config.address == addr) return b;
  return nullptr;
}

BackendPlan Service::plan_backends(const Service* previous, const ServiceConfig& sc, size_t workers) {
  BackendPlan plan;
  for (const BackendConfig& bc : sc.backends) {
    BackendPlan::Item item{nullptr, bc, false};
    if (previous && (item.backend = previous->find_backend(bc.address))) {
      ++plan.kept;
      item.measured = previous->config.health_check.type != HealthType::None;
    } else {
      // One back after a removal is checked like any added one, its live count (the
      // connections that ran on) kept.
      if (!previous || !(item.backend = previous->find_retired(bc.address)))
        item.backend = std::make_shared<Backend>(bc, workers);
      ++plan.added;
    }
    plan.items.push_back(std::move(item));
  }
  if (previous) plan.removed = previous->pool.backends().size() - plan.kept;
  return plan;
}

std::vector<std::shared_ptr<Backend>> Service::adopt(const ServiceConfig& sc, BackendPlan& plan) {
  const bool checked = sc.health_check.type != HealthType::None;
  std::vector<std::shared_ptr<Backend>> backends;
  for (BackendPlan::Item& item : plan.items) {
    Backend& b = *item.backend;
    b.config = std::move(item.config);
    // A kept backend keeps its health, unless checks were off (its "up" was never
    // measured): without checks always up, else unknown = checked at once, available until then.
    if (!checked || !item.measured) {
      b.health = checked ? HealthState::Unknown : HealthState::Up;
      b.health_streak = 0;
    }
    backends.push_back(std::move(item.backend));
  }
  return backends;
}

void Service::retire_removed(const std::vector<std::shared_ptr<Backend>>& backends) {
  auto kept = [&](const Backend* b) {
    for (const auto& k : backends)
      if (k.get() == b) return true;
    return false;
  };
  std::vector<std::weak_ptr<Backend>> retired;
  for (const auto& w : retired_)
    if (std::shared_ptr<Backend> b = w.lock(); b && !kept(b.get())) retired.push_back(b);
  for (const auto& b : pool.backends())
    if (!kept(b.get()) && b->live() > 0) retired.push_back(b);
  retired_ = std::move(retired);
}

double Service::reconfigure(ServiceConfig sc, BackendPlan plan) {
  std::vector<std::shared_ptr<Backend>> backends = adopt(sc, plan);
  retire_removed(backends);
  config = std::move(sc);
  double moved = pool.update(std::move(backends), config.algorithm);
  return config.algorithm == Algorithm::ConsistentHash ? moved : 0;
}

std::shared_ptr<Service> Service::create(ServiceConfig sc, BackendPlan plan, size_t workers) {
  std::vector<std::shared_ptr<Backend>> backends = adopt(sc, plan);
  Algorithm algorithm = sc.algorithm;
  return std::make_shared<Service>(std::move(sc), Pool(std::move(backends), algorithm), workers);
}

}  // namespace l4lb
