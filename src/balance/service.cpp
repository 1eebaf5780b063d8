#include "l4lb/balance/service.hpp"

#include <algorithm>
#include <cmath>

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
  // maint: checks stop; one that was in flight when it began is not counted either.
  if (b.admin_state() == AdminState::Maint) return;
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
  // Back from down (not a first check): slow start, before the pool takes it back in.
  if (before == HealthState::Down && after == HealthState::Up) {
    begin_slow_start(b, monotonic_seconds());
    derive(b, monotonic_seconds());
  }
  double moved = pool.set_health(b, after);  // rebuilds only if membership changed
  if (after == HealthState::Up && queue.size() > 0) queue.kick();  // room for a waiter
  const bool up = after == HealthState::Up;
  std::vector<LogField> fields{{"service", config.name}, {"backend", b.config.address_text}};
  if (!up) fields.push_back({"reason", std::string(reason)});
  // consistent_hash: how much of the lookup table now maps elsewhere.
  if (config.algorithm == Algorithm::ConsistentHash)
    fields.push_back({"table_moved", fmt::format("{:.4f}", moved)});
  log.write(up ? LogLevel::Info : LogLevel::Warn, up ? "backend up" : "backend down", fields);
}

std::string_view to_string(Rejected r) {
  static constexpr std::string_view names[kRejectedReasons] = {
      "denied", "source_limit", "source_rate", "queue_full", "queue_timeout"};
  return names[static_cast<size_t>(r)];
}

void Service::configure_admission() {
  access = AccessList(config.allow, config.deny);
  sources.reconfigure(SourceLimitsConfig{config.per_source.max_connections,
                                         static_cast<double>(config.per_source.rate),
                                         config.per_source.ipv6_prefix});
}

// ------------------------------------------------------------------ in force

namespace {
bool hashes(Algorithm a) { return a == Algorithm::IpHash || a == Algorithm::ConsistentHash; }
}  // namespace

void Service::begin_slow_start(Backend& b, double now) {
  if (config.slow_start.count() <= 0 || hashes(config.algorithm)) return;
  for (const auto& other : pool.backends())
    if (other.get() != &b && other->selectable()) {
      b.ramp_start = now;
      return;
    }
}

void Service::derive(Backend& b, double now) {
  const AdminState file_state = b.config.drain ? AdminState::Drain : AdminState::Ready;
  const AdminState state = b.override_state.value_or(file_state);
  if (b.admin_state() != AdminState::Ready && state == AdminState::Ready) begin_slow_start(b, now);
  const int base = b.override_weight.value_or(b.config.weight);
  int weight = base;
  uint32_t ramp = Backend::kRampSteps;
  if (b.ramp_start >= 0) {
    const double window = to_seconds(config.slow_start);
    const double t = now - b.ramp_start;
    if (window <= 0 || t >= window || hashes(config.algorithm)) {
      b.ramp_start = -1;
    } else {
      const double f = std::max(0.0, t / window);
      weight = std::max(1, static_cast<int>(std::ceil(base * f)));
      ramp = std::clamp<uint32_t>(static_cast<uint32_t>(std::ceil(f * Backend::kRampSteps)), 1,
                                  Backend::kRampSteps);
    }
  }
  b.set_in_force(state, base, weight, ramp);
}

bool Service::refresh(double now) {
  bool ramping = false;
  size_t selectable = 0;
  for (const auto& b : pool.backends()) selectable += b->selectable() ? 1 : 0;
  for (const auto& b : pool.backends()) {
    // The only backend that can take connections gets them all: no slow start for it.
    if (b->ramp_start >= 0 && selectable <= 1 && b->selectable()) b->ramp_start = -1;
    derive(*b, now);
    ramping = ramping || b->ramp_start >= 0;
  }
  pool.refresh();
  if (queue.size() > 0 && pool.any_available()) queue.kick();  // e.g. a drain lifted
  return ramping;
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
      item.added = previous != nullptr;  // a new service's backends start together
      ++plan.added;
    }
    plan.items.push_back(std::move(item));
  }
  if (previous) plan.removed = previous->pool.backends().size() - plan.kept;
  return plan;
}

std::vector<std::shared_ptr<Backend>> Service::adopt(const ServiceConfig& sc, BackendPlan& plan,
                                                   std::vector<DroppedOverride>& dropped) {
  const bool checked = sc.health_check.type != HealthType::None;
  std::vector<std::shared_ptr<Backend>> backends;
  for (BackendPlan::Item& item : plan.items) {
    Backend& b = *item.backend;
    // The file wins where it changed the property an override holds: the later intent.
    if (!item.added && b.override_state && item.config.drain != b.config.drain) {
      b.override_state.reset();
      dropped.push_back({item.config.address_text, "state"});
    }
    if (!item.added && b.override_weight && item.config.weight != b.config.weight) {
      b.override_weight.reset();
      dropped.push_back({item.config.address_text, "weight"});
    }
    if (item.added) {  // one back after a removal starts afresh
      b.override_state.reset();
      b.override_weight.reset();
    }
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
  dropped_overrides.clear();
  std::vector<std::shared_ptr<Backend>> backends = adopt(sc, plan, dropped_overrides);
  retire_removed(backends);
  config = std::move(sc);
  configure_admission();
  // In force before the pool is rebuilt (drain, weights); added backends ramp up.
  const double now = monotonic_seconds();
  for (const auto& b : backends) derive(*b, now);
  double moved = pool.update(std::move(backends), config.algorithm);
  bool began = false;
  for (const BackendPlan::Item& item : plan.items)
    if (item.added && item.backend) {
      begin_slow_start(*item.backend, now);
      began = began || item.backend->ramp_start >= 0;
    }
  if (began) refresh(now);
  if (queue.size() > 0 && pool.any_available()) queue.kick();  // a reload may add room
  return config.algorithm == Algorithm::ConsistentHash ? moved : 0;
}

std::shared_ptr<Service> Service::create(ServiceConfig sc, BackendPlan plan, size_t workers) {
  std::vector<DroppedOverride> none;
  std::vector<std::shared_ptr<Backend>> backends = adopt(sc, plan, none);
  Algorithm algorithm = sc.algorithm;
  auto svc = std::make_shared<Service>(std::move(sc), Pool(std::move(backends), algorithm), workers);
  const double now = monotonic_seconds();
  for (const auto& b : svc->pool.backends()) svc->derive(*b, now);
  svc->pool.refresh();
  svc->configure_admission();
  return svc;
}

}  // namespace l4lb
