#include "l4lb/server.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "l4lb/net.hpp"
#include "l4lb/stats.hpp"

namespace l4lb {

namespace {
uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

std::shared_ptr<Backend> find_backend(const Service* svc, const Address& addr) {
  if (!svc) return nullptr;
  for (const auto& b : svc->pool.backends())
    if (b->config.address == addr) return b;
  return nullptr;
}
}  // namespace

Server::Server(struct ev_loop* loop, Log& log, std::string config_path)
    : loop_(loop), log_(log), config_path_(std::move(config_path)), worker_(loop, log) {
  sighup_.start<&Server::on_signal>(loop_, this, SIGHUP);
  sigterm_.start<&Server::on_signal>(loop_, this, SIGTERM);
  sigint_.start<&Server::on_signal>(loop_, this, SIGINT);
  drain_timer_.bind<&Server::on_drain_timeout>(loop_, this);
}

Server::~Server() = default;

bool Server::start(const Config& cfg, std::string& error) {
  state_.start_time = unix_now();
  Changes changes;
  if (!apply(cfg, error, changes)) return false;
  if (cfg.global.workers > 1)
    log_.warn("workers > 1 is not implemented yet: running one event loop",
              {{"workers", std::to_string(cfg.global.workers)}});
  log_.info("ready", {{"services", std::to_string(services_.size())},
                      {"pid", std::to_string(::getpid())}});
  ::sd_notify(0, "READY=1");
  notify_status();
  return true;
}

int Server::run() {
  ev_run(loop_, 0);
  return 0;
}

// Parse, validate, swap: CFG is already valid. Listeners whose address stays keep
// their socket; new addresses are bound before anything changes, and a bind failure
// leaves the running state untouched. A backend whose (service, address) stays
// keeps its object: health, live count and counters.
bool Server::apply(const Config& cfg, std::string& error, Changes& changes) {
  // 1. Sockets: reuse or bind, touching nothing yet.
  std::vector<UniqueFd> new_fds(cfg.services.size());
  std::vector<Listener*> reused(cfg.services.size(), nullptr);
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& sc = cfg.services[i];
    for (const auto& l : listeners_)
      if (l->service()->config.listen == sc.listen) reused[i] = l.get();
    if (reused[i]) continue;
    new_fds[i] = listen_tcp(sc.listen);
    if (!new_fds[i]) {
      error = fmt::format("service {}: cannot listen on {}: {}", sc.name, sc.listen_text,
                          std::strerror(errno));
      return false;
    }
  }

  // The admin port: kept if its address stays, else bound anew (or closed).
  const std::optional<AdminConfig>& admin_cfg = cfg.global.admin;
  bool admin_same = admin_ && admin_cfg && config_.global.admin &&
                    config_.global.admin->listen == admin_cfg->listen;
  UniqueFd admin_fd;
  if (admin_cfg && !admin_same) {
    admin_fd = listen_tcp(admin_cfg->listen);
    if (!admin_fd) {
      error = fmt::format("admin: cannot listen on {}: {}", admin_cfg->listen_text, std::strerror(errno));
      return false;
    }
  }

  // 2. Swap.
  std::map<std::string, std::shared_ptr<Service>> services;
  std::vector<std::unique_ptr<Listener>> listeners;
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& sc = cfg.services[i];
    auto old = services_.find(sc.name);
    std::shared_ptr<Service> previous = old == services_.end() ? nullptr : old->second;
    if (!previous) ++changes.services_added;
    std::vector<std::shared_ptr<Backend>> backends;
    size_t kept = 0;
    for (const BackendConfig& bc : sc.backends) {
      std::shared_ptr<Backend> b = find_backend(previous.get(), bc.address);
      if (b) {
        b->config = bc;
        ++kept;
      } else {
        b = std::make_shared<Backend>(bc);
        ++changes.backends_added;
      }
      if (sc.health_check.type == HealthType::None) {  // no checks: always up
        b->health = HealthState::Up;
        b->health_streak = 0;
      }
      backends.push_back(std::move(b));
    }
    if (previous) changes.backends_removed += previous->pool.backends().size() - kept;
    std::shared_ptr<Service> svc = previous;
    if (svc) {  // in place: rotation positions and the hash table's history are kept
      svc->config = sc;
      double moved = svc->pool.update(std::move(backends), sc.algorithm);
      if (sc.algorithm == Algorithm::ConsistentHash)
        changes.table_moved = std::max(changes.table_moved, moved);
    } else {
      svc = std::make_shared<Service>(sc, Pool(std::move(backends), sc.algorithm));
    }
    services[sc.name] = svc;
  }
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const std::shared_ptr<Service>& svc = services[cfg.services[i].name];
    if (reused[i]) {
      for (auto& l : listeners_)
        if (l.get() == reused[i]) listeners.push_back(std::move(l));
      listeners.back()->set_service(svc);
    } else {
      listeners.push_back(std::make_unique<Listener>(worker_, svc, std::move(new_fds[i])));
    }
  }
  for (const auto& [name, svc] : services_) {
    if (services.count(name)) continue;
    ++changes.services_removed;
    changes.backends_removed += svc->pool.backends().size();
  }
  listeners_ = std::move(listeners);  // listeners not carried over close here
  services_ = std::move(services);    // removed services live on in their sessions
  probers_.clear();                   // checks in flight are dropped; state stays in Backend
  for (const ServiceConfig& sc : cfg.services)
    probers_.push_back(std::make_unique<Prober>(loop_, log_, services_[sc.name]));
  if (!admin_cfg)
    admin_.reset();
  else if (!admin_same)
    admin_ = std::make_unique<AdminServer>(loop_, log_, std::move(admin_fd), state_);
  config_ = cfg;
  worker_.max_sessions = cfg.global.max_connections;
  log_.set_level(cfg.global.log_level);
  ++state_.generation;
  state_.services.clear();
  for (const ServiceConfig& sc : cfg.services) state_.services.push_back(services_[sc.name]);
  return true;
}

void Server::reload() {
  ::sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               static_cast<unsigned long long>(monotonic_usec()));
  ConfigResult result = load_config(config_path_);
  std::string error;
  Changes changes;
  if (result.ok() && !apply(*result.config, error, changes)) result.errors.push_back(error);
  if (!result.errors.empty()) {
    ++state_.reloads_failed;
    state_.last_reload_ok = false;
    for (const auto& e : result.errors) log_.error("reload failed", {{"error", e}});
    ::sd_notifyf(0, "READY=1\nSTATUS=reload failed: %s", result.errors.front().c_str());
    return;
  }
  ++state_.reloads_ok;
  state_.last_reload_ok = true;
  size_t backends = 0;
  for (const auto& [name, svc] : services_) backends += svc->pool.backends().size();
  log_.info("reload ok", {{"services", std::to_string(services_.size())},
                          {"backends", std::to_string(backends)},
                          {"services_added", std::to_string(changes.services_added)},
                          {"services_removed", std::to_string(changes.services_removed)},
                          {"backends_added", std::to_string(changes.backends_added)},
                          {"backends_removed", std::to_string(changes.backends_removed)},
                          {"table_moved", fmt::format("{:.4f}", changes.table_moved)},
                          {"generation", std::to_string(state_.generation)}});
  ::sd_notify(0, "READY=1");
  notify_status();
}

void Server::on_signal(int signum) {
  if (signum == SIGHUP) {
    if (!draining_) reload();
    return;
  }
  if (draining_) {  // a second SIGTERM/SIGINT: close everything now
    log_.warn("drain cut short", {{"connections", std::to_string(worker_.session_count())}});
    worker_.on_empty = nullptr;
    worker_.close_all();
    return stop();
  }
  begin_drain();
}

void Server::begin_drain() {
  draining_ = true;
  state_.draining = true;
  ::sd_notify(0, "STOPPING=1");
  listeners_.clear();  // stop accepting at once
  probers_.clear();
  log_.info("drain start", {{"connections", std::to_string(worker_.session_count())},
                            {"timeout", format_duration(config_.global.drain_timeout)}});
  if (worker_.session_count() == 0) return stop();
  worker_.on_empty = [this] { stop(); };
  drain_timer_.start(static_cast<double>(config_.global.drain_timeout.count()) / 1000.0);
}

void Server::on_drain_timeout() {
  log_.warn("drain timeout", {{"connections", std::to_string(worker_.session_count())}});
  worker_.on_empty = nullptr;
  worker_.close_all();
  stop();
}

void Server::stop() {
  worker_.on_empty = nullptr;
  drain_timer_.stop();
  log_.info("drain end", {{"connections", std::to_string(worker_.session_count())}});
  ev_break(loop_, EVBREAK_ALL);
}

void Server::notify_status() {
  size_t up = 0, total = 0;
  for (const auto& [name, svc] : services_)
    for (const auto& b : svc->pool.backends()) {
      ++total;
      if (b->health != HealthState::Down) ++up;
    }
  ::sd_notifyf(0, "STATUS=%zu services, %zu/%zu backends up, config generation %llu",
               services_.size(), up, total, static_cast<unsigned long long>(state_.generation));
}

}  // namespace l4lb
