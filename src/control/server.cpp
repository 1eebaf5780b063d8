#include "l4lb/control/server.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "l4lb/base/clock.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/base/file.hpp"
#include "l4lb/admin/stats.hpp"
#include "l4lb/control/state_file.hpp"

namespace l4lb {

namespace {
constexpr int kControlNice = 10;  // the control thread's nice value above the workers'
}  // namespace

class Server::WorldStop {
 public:
  explicit WorldStop(Server& s) : server_(s) {
    if (!s.threads_running_) return;
    for (auto& w : s.workers_) w.worker->post([this] { park(); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return parked_ == server_.workers_.size(); });
  }
  ~WorldStop() {
    if (!server_.threads_running_) return;
    std::unique_lock<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return parked_ == 0; });  // nobody still uses this object
  }
  WorldStop(const WorldStop&) = delete;
  WorldStop& operator=(const WorldStop&) = delete;

 private:
  void park() {  // on a worker thread
    std::unique_lock<std::mutex> lock(mu_);
    ++parked_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    --parked_;
    cv_.notify_all();
  }
  Server& server_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t parked_ = 0;
  bool released_ = false;
};

Server::Server(struct ev_loop* loop, Log& log, std::string config_path)
    : loop_(loop), log_(log), config_path_(std::move(config_path)), control_(loop) {
  sighup_.start<&Server::on_signal>(loop_, this, SIGHUP);
  sigterm_.start<&Server::on_signal>(loop_, this, SIGTERM);
  sigint_.start<&Server::on_signal>(loop_, this, SIGINT);
  sigusr1_.start<&Server::on_signal>(loop_, this, SIGUSR1);
  sigusr2_.start<&Server::on_signal>(loop_, this, SIGUSR2);
  drain_timer_.bind<&Server::on_drain_timeout>(loop_, this);
  slow_start_timer_.bind<&Server::on_slow_start_tick>(loop_, this);
  upgrade_timer_.bind<&Server::on_upgrade_timeout>(loop_, this);
  ready_poll_.bind<&Server::on_ready_poll>(loop_, this);
  discovery_ = std::make_unique<dns::Discovery>(loop_, log_, state_.dns_lookups,
                                                [this](const std::string& s) { on_dns_change(s); });
}

Server::~Server() {
  // An upgrade not ready by now never will be: it goes with this process.
  if (upgrade_pid_ > 0 && !upgrade_handed_over_) ::kill(upgrade_pid_, SIGKILL);
  discovery_.reset();
  stop_threads();
  admin_.reset();
  probers_.clear();
  for (auto& w : workers_) {
    w.worker.reset();  // listeners, then sessions, close here (their records logged)
    ev_loop_destroy(w.loop);
  }
  if (state_.access_log) state_.access_log->flush_and_stop();  // every record written
}

bool Server::start(const Config& cfg, std::string& error, upgrade::InheritedFds* inherited) {
  state_.start_time = unix_now();
  size_t n = static_cast<size_t>(std::max(1, cfg.global.workers));
  for (size_t i = 0; i < n; ++i) {
    WorkerThread w;
    w.loop = ev_loop_new(EVFLAG_AUTO);
    if (!w.loop) {
      error = "cannot create an event loop for a worker";
      return false;
    }
    w.worker = std::make_unique<Worker>(w.loop, log_, i, &control_);
    w.worker->open_sessions = &open_sessions_;
    workers_.push_back(std::move(w));
  }
  Changes changes;
  inherited_ = inherited;
  const size_t inherited_count = inherited ? inherited->size() : 0;
  const bool ok = apply(cfg, error, changes);
  inherited_ = nullptr;
  if (!ok) return false;
  load_state_file();
  UniqueFd ready;
  if (inherited) {
    if (UniqueFd st = inherited->take_named(upgrade::kStateName)) apply_handover(st.get());
    ready = inherited->take_named(upgrade::kReadyName);
    const size_t unused = inherited->close_rest();
    if (inherited_count > 0)
      log_.info("sockets inherited", {{"fds", std::to_string(inherited_count)},
                                      {"unused", std::to_string(unused)}});
  }
  start_threads();
  log_.info("ready", {{"services", std::to_string(services_.size())},
                      {"workers", std::to_string(workers_.size())},
                      {"pid", std::to_string(::getpid())}});
  ::sd_notify(0, "READY=1");
  notify_status();
  store_fds();
  // An upgrade: every listener accepts now; the old process may stop once the backends
  // new to this one have had their first check.
  if (ready) {
    ready_out_ = std::move(ready);
    double longest = 0;
    for (const auto& [name, svc] : services_)
      if (svc->config.health_check.type != HealthType::None)
        longest = std::max(longest, to_seconds(svc->config.health_check.timeout));
    ready_deadline_ = monotonic_seconds() + longest + 0.05;
    on_ready_poll();
  }
  return true;
}

void Server::on_ready_poll() {
  if (!ready_out_) return;
  bool pending = false;
  for (const auto& [name, svc] : services_) {
    if (svc->config.health_check.type == HealthType::None) continue;
    for (const auto& b : svc->pool.backends())
      pending = pending || (b->health == HealthState::Unknown && b->admin_state() != AdminState::Maint);
  }
  if (pending && monotonic_seconds() < ready_deadline_) {
    ready_poll_.start(0.005);
    return;
  }
  ssize_t w = ::write(ready_out_.get(), "R", 1);
  (void)w;
  ready_out_.reset();
}

void Server::start_threads() {
  // Signals are the main thread's: worker threads start with them blocked.
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&block, sig);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  for (WorkerThread& w : workers_) {
    struct ev_loop* loop = w.loop;
    w.thread = std::thread([loop] { ev_run(loop, 0); });
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  threads_running_ = true;
  // Where control work (a reload resolving many names, checks, the admin port) shares a CPU
  // with a data worker, the worker goes first: this thread alone runs kControlNice lower
  // (the workers, started above, keep the process's priority).
  errno = 0;
  int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  if (errno == 0)
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), std::min(19, nice + kControlNice));
}

void Server::stop_threads() {
  if (!threads_running_) return;
  for (WorkerThread& w : workers_) {
    struct ev_loop* loop = w.loop;
    w.worker->post([loop] { ev_break(loop, EVBREAK_ALL); });
  }
  for (WorkerThread& w : workers_) w.thread.join();
  threads_running_ = false;
}

int Server::run() {
  ev_run(loop_, 0);
  return 0;
}

// Reload = plan, swap, publish; CFG is already valid. The plan binds new listen
// addresses and matches backends by address without touching the running state, so a
// bind failure leaves it untouched; the swap is the only moment the workers stop.
bool Server::apply(const Config& file_cfg, std::string& error, Changes& changes) {
  // Backends from DNS: each entry's current set (kept over a reload; none yet for a new
  // one). Nothing waits for DNS here: discovery looks new names up after the swap.
  Config cfg = file_cfg;
  for (ServiceConfig& sc : cfg.services) discovery_->expand(sc);
  Plan plan;
  if (!plan_listeners(cfg, plan, error) || !plan_admin(cfg, plan, error) ||
      !plan_access_log(cfg, plan, error))
    return false;
  plan_services(cfg, plan);
  plan_routes(cfg, plan);
  {
    uint64_t stop_start = monotonic_usec();
    WorldStop world(*this);
    swap_services(cfg, plan);
    swap_listeners(cfg, plan);
    if (!plan.access_log_same) {  // no worker appends while the pointer changes
      for (auto& w : workers_) w.worker->access_log = plan.access_log.get();
      if (state_.access_log) state_.access_log_dropped_before += state_.access_log->dropped();
      std::swap(state_.access_log, plan.access_log);  // the old one goes with the plan
    }
    plan.changes.swap_us = monotonic_usec() - stop_start;  // parking included
  }
  publish(cfg, plan);
  discovery_->configure(cfg);
  changes = plan.changes;
  return true;
}

void Server::on_dns_change(const std::string& name) {
  if (draining_) return;
  auto it = services_.find(name);
  if (it == services_.end()) return;
  auto sc_it = std::find_if(config_.services.begin(), config_.services.end(),
                            [&](const ServiceConfig& sc) { return sc.name == name; });
  if (sc_it == config_.services.end()) return;
  const std::shared_ptr<Service>& svc = it->second;
  ServiceConfig sc = *sc_it;
  discovery_->expand(sc);
  *sc_it = sc;  // what is in force, for the next expansion and reload
  // Plan off the data path, swap with the workers parked, as a reload does.
  BackendPlan plan = Service::plan_backends(svc.get(), sc, workers_.size());
  double moved = 0;
  {
    WorldStop world(*this);
    moved = svc->reconfigure(std::move(sc), std::move(plan));
  }
  if (!dns_pending_.empty()) apply_pending_overrides(*svc);
  // New addresses are checked at once (health unknown); known ones keep their slots.
  for (auto& p : probers_)
    if (p->service() == svc.get()) p = std::make_unique<Prober>(loop_, log_, svc);
  if (svc->config.algorithm == Algorithm::ConsistentHash)
    log_.debug("dns applied", {{"service", name}, {"table_moved", fmt::format("{:.4f}", moved)}});
  log_dropped_overrides();
  save_state_file();
  notify_status();
}

// Sockets, one per (listen address, worker): the running one where the address stays, else
// a new one. Addresses in the order the file first names them.
bool Server::plan_listeners(const Config& cfg, Plan& plan, std::string& error) {
  const size_t nw = workers_.size();
  if (config_.global.workers != 0 && cfg.global.workers != config_.global.workers &&
      static_cast<size_t>(cfg.global.workers) != nw)
    log_.warn("workers changes at restart, not on reload",
              {{"running", std::to_string(nw)}, {"configured", std::to_string(cfg.global.workers)}});
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& sc = cfg.services[i];
    for (size_t k = 0; k < sc.listens.size(); ++k) {
      const Address& address = sc.listens[k];
      auto same = [&](const ListenPlan& lp) { return lp.address == address; };
      auto it = std::find_if(plan.listens.begin(), plan.listens.end(), same);
      if (it != plan.listens.end()) {
        it->services.push_back(i);
        continue;
      }
      ListenPlan& lp = plan.listens.emplace_back();
      lp.address = address;
      lp.text = sc.listen_texts[k];
      lp.services.push_back(i);
      lp.fds.resize(nw);
      lp.reused.assign(nw, nullptr);
      for (size_t w = 0; w < nw; ++w) {
        for (const auto& l : workers_[w].worker->listeners)
          if (l->route()->listen == lp.address) lp.reused[w] = l.get();
        if (lp.reused[w]) continue;
        if (inherited_) lp.fds[w] = inherited_->take_tcp(lp.address, w);
        if (!lp.fds[w]) lp.fds[w] = listen_tcp(lp.address, nw > 1);
        if (!lp.fds[w]) {
          error = fmt::format("service {}: cannot listen on {}: {}", sc.name, lp.text,
                              std::strerror(errno));
          return false;
        }
      }
    }
  }
  return true;
}

// The admin port: kept if its address stays, else bound anew (or closed at publish).
bool Server::plan_admin(const Config& cfg, Plan& plan, std::string& error) {
  const std::optional<AdminConfig>& admin_cfg = cfg.global.admin;
  plan.admin_same = admin_ && admin_cfg && config_.global.admin &&
                    config_.global.admin->same_listener(*admin_cfg);
  if (!admin_cfg || plan.admin_same) return true;
  if (inherited_) {
    plan.admin_fd = admin_cfg->is_unix() ? inherited_->take_unix(admin_cfg->unix_path)
                                         : inherited_->take_tcp(admin_cfg->listen, 0);
    if (plan.admin_fd) return true;
  }
  if (admin_cfg->is_unix()) {
    std::string why;
    plan.admin_fd = listen_unix(admin_cfg->unix_path, why);
    if (plan.admin_fd) return true;
    error = "admin: " + why;
    return false;
  }
  plan.admin_fd = listen_tcp(admin_cfg->listen);
  if (plan.admin_fd) return true;
  error = fmt::format("admin: cannot listen on {}: {}", admin_cfg->listen_text, std::strerror(errno));
  return false;
}

// The access log: kept where its path and format stay, else opened anew (a file that
// cannot be opened rejects the config, as a listen address that cannot be bound does).
bool Server::plan_access_log(const Config& cfg, Plan& plan, std::string& error) {
  plan.access_log_same = state_.access_log && cfg.global.access_log &&
                         config_.global.access_log == cfg.global.access_log;
  if (!cfg.global.access_log || plan.access_log_same) return true;
  const AccessLogConfig& al = *cfg.global.access_log;
  plan.access_log = AccessLog::open(al.path, al.format, workers_.size(), error);
  return plan.access_log != nullptr;
}

// Backends matched by address with the running ones (reads only).
void Server::plan_services(const Config& cfg, Plan& plan) {
  plan.services.resize(cfg.services.size());
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& sc = cfg.services[i];
    ServicePlan& sp = plan.services[i];
    auto old = services_.find(sc.name);
    sp.previous = old == services_.end() ? nullptr : old->second;
    sp.backends = Service::plan_backends(sp.previous.get(), sc, workers_.size());
    plan.changes.services_added += sp.previous ? 0 : 1;
    if (!sp.previous) sp.service = Service::create(sc, std::move(sp.backends), workers_.size());
    plan.changes.backends_added += sp.backends.added;
    plan.changes.backends_removed += sp.backends.removed;
  }
  for (const auto& [name, svc] : services_) {
    bool stays = std::any_of(cfg.services.begin(), cfg.services.end(),
                             [&](const ServiceConfig& sc) { return sc.name == name; });
    if (stays) continue;
    ++plan.changes.services_removed;
    plan.changes.backends_removed += svc->pool.backends().size();
  }
}

// What each listen address does with a client (read by the workers from the swap on).
// Unrouted counts stay with an address that stays.
void Server::plan_routes(const Config& cfg, Plan& plan) {
  for (ListenPlan& lp : plan.listens) {
    auto route = std::make_shared<Route>();
    route->listen = lp.address;
    route->listen_text = lp.text;
    route->inspect_timeout = cfg.global.inspect_timeout;
    for (size_t i : lp.services) {
      const ServiceConfig& sc = cfg.services[i];
      ServicePlan& sp = plan.services[i];
      const std::shared_ptr<Service>& svc = sp.previous ? sp.previous : sp.service;
      uint32_t index = static_cast<uint32_t>(route->services.size());
      route->services.push_back(svc);
      if (sc.sni.empty()) route->fallback = svc;
      for (const std::string& name : sc.sni) route->names.add(name, index);  // validated by config
      route->read_hello = route->read_hello || !sc.sni.empty();
      route->access_log = route->access_log || sc.access_log;
      if (sc.accept_proxy) route->proxy_from = sc.accept_proxy->from;  // the same for all (config)
    }
    if (route->inspects()) {
      for (const auto& l : workers_[0].worker->listeners)
        if (l->route()->listen == lp.address && l->route()->unrouted) route->unrouted = l->route()->unrouted;
      if (!route->unrouted) route->unrouted = std::make_shared<UnroutedCounts>(workers_.size());
    }
    lp.route = std::move(route);
  }
}

// Swap (workers stopped): services that stay take the new file in place; new ones (made in
// the plan) join; removed ones live on in their sessions.
void Server::swap_services(const Config& cfg, Plan& plan) {
  std::map<std::string, std::shared_ptr<Service>> services;
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& sc = cfg.services[i];
    ServicePlan& sp = plan.services[i];
    if (sp.previous) {
      plan.changes.table_moved =
          std::max(plan.changes.table_moved, sp.previous->reconfigure(sc, std::move(sp.backends)));
      sp.service = sp.previous;
    }
    services[sc.name] = sp.service;
  }
  services_ = std::move(services);
}

// Swap (workers stopped): each worker's listeners, one per address in config order; ones
// not carried over close.
void Server::swap_listeners(const Config& cfg, Plan& plan) {
  for (size_t w = 0; w < workers_.size(); ++w) {
    Worker& worker = *workers_[w].worker;
    std::vector<std::unique_ptr<Listener>> listeners;
    for (ListenPlan& lp : plan.listens) {
      if (lp.reused[w]) {
        for (auto& l : worker.listeners)
          if (l.get() == lp.reused[w]) listeners.push_back(std::move(l));
        listeners.back()->set_route(lp.route);
      } else {
        listeners.push_back(std::make_unique<Listener>(worker, lp.route, std::move(lp.fds[w])));
      }
    }
    worker.listeners = std::move(listeners);
    worker.max_sessions = cfg.global.max_connections;
    worker.splice = cfg.global.splice;
  }
}

// Publish: health checks, the admin port and what it reads, the log level.
void Server::publish(const Config& cfg, Plan& plan) {
  probers_.clear();  // checks in flight are dropped; state stays in Backend
  for (const ServicePlan& sp : plan.services)
    probers_.push_back(std::make_unique<Prober>(loop_, log_, sp.service));
  if (!cfg.global.admin)
    admin_.reset();
  else if (!plan.admin_same) {
    admin_.reset();  // the old one first: its socket file goes before a new one is named
    admin_ = std::make_unique<AdminServer>(loop_, log_, std::move(plan.admin_fd), state_, this,
                                           cfg.global.admin->unix_path);
  }
  config_ = cfg;
  log_.set_level(cfg.global.log_level);
  ++state_.generation;
  state_.services.clear();
  for (const ServicePlan& sp : plan.services) state_.services.push_back(sp.service);
  state_.routes.clear();
  for (const ListenPlan& lp : plan.listens) state_.routes.push_back(lp.route);
  arm_slow_start();
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
  log_dropped_overrides();
  save_state_file();  // overrides dropped, or of backends no longer in the file
  size_t backends = 0;
  for (const auto& [name, svc] : services_) backends += svc->pool.backends().size();
  log_.info("reload ok", {{"services", std::to_string(services_.size())},
                          {"backends", std::to_string(backends)},
                          {"services_added", std::to_string(changes.services_added)},
                          {"services_removed", std::to_string(changes.services_removed)},
                          {"backends_added", std::to_string(changes.backends_added)},
                          {"backends_removed", std::to_string(changes.backends_removed)},
                          {"table_moved", fmt::format("{:.4f}", changes.table_moved)},
                          {"swap_us", std::to_string(changes.swap_us)},
                          {"generation", std::to_string(state_.generation)}});
  ::sd_notify(0, "READY=1");
  notify_status();
  store_fds();
}

void Server::on_signal(int signum) {
  if (signum == SIGUSR1) {  // logrotate moved the access log: a new file at once
    std::string error;
    if (state_.access_log && !state_.access_log->reopen(error))
      log_.warn("access log reopen failed", {{"reason", error}});
    return;
  }
  if (signum == SIGHUP) {
    if (!draining_) reload();
    return;
  }
  if (signum == SIGUSR2) return start_upgrade();
  if (draining_) {  // a second SIGTERM/SIGINT: close everything now
    log_.warn("drain cut short", {{"connections", std::to_string(open_sessions())}});
    close_all_sessions(AccessEnd::Stopped);
    return stop();
  }
  begin_drain();
}

void Server::close_all_sessions(AccessEnd why) {
  WorldStop world(*this);
  for (auto& w : workers_) {
    w.worker->on_empty = nullptr;
    w.worker->close_all(why);
  }
}

void Server::check_drained() {
  if (draining_ && open_sessions() == 0) stop();
}

void Server::begin_drain(bool notify_stopping) {
  draining_ = true;
  state_.draining = true;
  if (notify_stopping) ::sd_notify(0, "STOPPING=1");
  if (upgrade_pid_ > 0 && !upgrade_handed_over_) {  // stopping: the upgrade goes too
    upgrade_reason_ = "stopping";
    ::kill(upgrade_pid_, SIGKILL);
  }
  {
    WorldStop world(*this);
    for (auto& w : workers_) {  // stop accepting at once; clients already queued are served
      for (auto& l : w.worker->listeners) l->accept_pending();
      w.worker->listeners.clear();
      w.worker->on_empty = [this] { control_.post([this] { check_drained(); }); };
    }
  }
  probers_.clear();
  log_.info("drain start", {{"connections", std::to_string(open_sessions())},
                            {"timeout", format_duration(config_.global.drain_timeout)}});
  if (open_sessions() == 0) return stop();
  drain_timer_.start(to_seconds(config_.global.drain_timeout));
}

void Server::on_drain_timeout() {
  log_.warn("drain timeout", {{"connections", std::to_string(open_sessions())}});
  close_all_sessions(AccessEnd::DrainTimeout);
  stop();
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  drain_timer_.stop();
  log_.info("drain end", {{"connections", std::to_string(open_sessions())}});
  ev_break(loop_, EVBREAK_ALL);
}

// ------------------------------------------------------------------ runtime control

const std::string& Server::admin_token() const {
  static const std::string kNone;
  return config_.global.admin ? config_.global.admin->token : kNone;
}

namespace {
// The backend of SVC that /stats shows as TEXT: the address as written in the file, or
// the same socket address as another literal ("[::1]:80" for "[0:0::1]:80").
std::shared_ptr<Backend> find_backend(const Service& svc, const std::string& text) {
  for (const auto& b : svc.pool.backends())
    if (b->config.address_text == text) return b;
  // Literals only: a name is not resolved here (no DNS on the control thread's request path).
  const bool literal = !text.empty() && (text[0] == '[' || std::all_of(text.begin(), text.end(), [](char c) {
                         return (c >= '0' && c <= '9') || c == '.' || c == ':';
                       }));
  Address a;
  std::string err;
  if (!literal || !parse_address(text, a, err)) return nullptr;
  for (const auto& b : svc.pool.backends())
    if (b->config.address == a) return b;
  return nullptr;
}

http::Response json_ok(const nlohmann::ordered_json& body) {
  http::Response r;
  r.content_type = "application/json";
  r.body = dump_json(body);
  return r;
}
}  // namespace

http::Response Server::admin_write(const admin::Action& action, const http::Request& req,
                                   const std::string& peer) {
  auto it = services_.find(action.service);
  if (it == services_.end()) return admin::json_error(404, "no such service: " + action.service);
  Service& svc = *it->second;
  std::shared_ptr<Backend> b = find_backend(svc, action.backend);
  if (!b) return admin::json_error(404, "no such backend in service " + svc.config.name + ": " + action.backend);
  std::string error, value;
  std::string_view what = admin::endpoint_name(action.endpoint);
  if (action.endpoint == admin::Endpoint::BackendConnections) {
    size_t closed = 0;
    {
      WorldStop world(*this);  // sessions live on the workers' loops
      for (auto& w : workers_) closed += w.worker->close_backend(b.get());
    }
    log_.info("admin set", {{"service", svc.config.name}, {"backend", b->config.address_text},
                            {"what", "connections"}, {"value", "closed"},
                            {"closed", std::to_string(closed)}, {"peer", peer}});
    return json_ok({{"closed", closed}});
  }
  if (action.endpoint == admin::Endpoint::BackendState) {
    AdminState st;
    if (!admin::parse_state_body(req.body, st, error)) return admin::json_error(400, error);
    const AdminState file_state = b->config.drain ? AdminState::Drain : AdminState::Ready;
    if (st == file_state)
      b->override_state.reset();  // what the file says: no override
    else
      b->override_state = st;
    value = admin_state_name(st);
  } else {
    admin::WeightBody wb;
    if (!admin::parse_weight_body(req.body, wb, error)) return admin::json_error(400, error);
    if (wb.config)
      b->override_weight.reset();
    else
      b->override_weight = wb.weight;
    value = wb.config ? "config" : std::to_string(wb.weight);
  }
  svc.refresh(monotonic_seconds());  // derives B (and the rest), rebuilds, wakes a waiter
  log_.info("admin set", {{"service", svc.config.name}, {"backend", b->config.address_text},
                          {"what", std::string(what)}, {"value", value}, {"peer", peer}});
  save_state_file();
  notify_status();
  return json_ok(backend_json(*b, svc.config));
}

void Server::log_dropped_overrides() {
  for (const auto& [name, svc] : services_) {
    for (const Service::DroppedOverride& d : svc->dropped_overrides)
      log_.info("override dropped", {{"service", name}, {"backend", d.backend},
                                     {"what", std::string(d.what)},
                                     {"reason", "the config file changed it"}});
    svc->dropped_overrides.clear();
  }
}

void Server::load_state_file() {
  const std::string& path = config_.global.state_file;
  if (path.empty()) return;
  std::string text, error;
  bool missing = false;
  control::Overrides overrides;
  if (!read_file(path, text, error, &missing)) {
    if (!missing) log_.warn("state file ignored", {{"file", path}, {"reason", error}});
    return;
  }
  if (!control::from_json(text, overrides, error)) {
    log_.warn("state file ignored", {{"file", path}, {"reason", error}});
    return;
  }
  state_written_ = text;
  size_t applied = 0;
  const double now = monotonic_seconds();
  dns_pending_.clear();
  for (const auto& [key, o] : overrides) {
    auto it = services_.find(key.service);
    std::shared_ptr<Backend> b = it == services_.end() ? nullptr : find_backend(*it->second, key.backend);
    if (!b) {
      // A backend from DNS is not known yet at start: its override waits for it.
      if (it != services_.end() && !it->second->config.dns_backends.empty()) dns_pending_[key] = o;
      continue;  // else no longer in the file: the override went with it
    }
    apply_saved_override(*it->second, *b, key, o, now);
    ++applied;
  }
  for (const auto& [name, svc] : services_) svc->pool.refresh();
  log_.info("state file read", {{"file", path}, {"overrides", std::to_string(applied)}});
  save_state_file();  // what no longer applies is gone from it too
}

// A saved override for B (KEY), unless the file changed that property since it was made
// (the file wins, as on a reload).
void Server::apply_saved_override(Service& svc, Backend& b, const control::BackendKey& key,
                                  const control::Override& o, double now) {
  auto drop = [&](std::string_view what) {
    log_.info("override dropped", {{"service", key.service}, {"backend", key.backend},
                                   {"what", std::string(what)},
                                   {"reason", "the config file changed it since"}});
  };
  if (o.state) {
    if (o.file_drain && *o.file_drain != b.config.drain)
      drop("state");
    else
      b.override_state = o.state;
  }
  if (o.weight) {
    if (o.file_weight && *o.file_weight != b.config.weight)
      drop("weight");
    else
      b.override_weight = o.weight;
  }
  svc.derive(b, now);
}

// Overrides read from the state file for backends of SERVICE from DNS that resolved now.
void Server::apply_pending_overrides(Service& svc) {
  bool any = false;
  const double now = monotonic_seconds();
  for (auto it = dns_pending_.begin(); it != dns_pending_.end();) {
    std::shared_ptr<Backend> b =
        it->first.service == svc.config.name ? find_backend(svc, it->first.backend) : nullptr;
    if (!b) {
      ++it;
      continue;
    }
    apply_saved_override(svc, *b, it->first, it->second, now);
    it = dns_pending_.erase(it);
    any = true;
  }
  if (any) svc.pool.refresh();
}

void Server::save_state_file() {
  const std::string& path = config_.global.state_file;
  if (path.empty()) return;
  control::Overrides overrides;
  for (const auto& [name, svc] : services_)
    for (const auto& b : svc->pool.backends()) {
      if (!b->override_state && !b->override_weight) continue;
      control::Override o{b->override_state, b->override_weight, std::nullopt, std::nullopt};
      if (o.state) o.file_drain = b->config.drain;
      if (o.weight) o.file_weight = b->config.weight;
      overrides[{name, b->config.address_text}] = o;
    }
  // Kept for backends from DNS not resolved since the start (while their service has
  // DNS entries).
  for (const auto& [key, o] : dns_pending_) {
    auto it = services_.find(key.service);
    if (it != services_.end() && !it->second->config.dns_backends.empty()) overrides.emplace(key, o);
  }
  std::string text = control::to_json(overrides);
  if (text == state_written_) return;
  std::string error;
  if (!write_atomically(path, text, error)) {
    // The change holds in memory; the next change tries again.
    log_.warn("state file not written", {{"file", path}, {"reason", error}});
    return;
  }
  state_written_ = std::move(text);
}

void Server::arm_slow_start() {
  double shortest = 0;
  for (const auto& [name, svc] : services_) {
    double window = to_seconds(svc->config.slow_start);
    if (window > 0 && (shortest == 0 || window < shortest)) shortest = window;
  }
  // At least ten recomputations over the window (twenty here), between 10 ms and 1 s apart.
  slow_start_period_ = shortest > 0 ? std::clamp(shortest / 20, 0.01, 1.0) : 0;
  if (slow_start_period_ > 0)
    slow_start_timer_.start(slow_start_period_);
  else
    slow_start_timer_.stop();
}

void Server::on_slow_start_tick() {
  const double now = monotonic_seconds();
  for (const auto& [name, svc] : services_) {
    bool ramping = false;
    for (const auto& b : svc->pool.backends()) ramping = ramping || b->ramp_start >= 0;
    if (ramping) svc->refresh(now);
  }
  if (slow_start_period_ > 0) slow_start_timer_.start(slow_start_period_);
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

namespace l4lb {

// ------------------------------------------------------------------ upgrade

std::vector<upgrade::PassFd> Server::listening_fds() const {
  std::vector<upgrade::PassFd> fds;
  for (size_t w = 0; w < workers_.size(); ++w)
    for (const auto& l : workers_[w].worker->listeners)
      fds.push_back({l->fd(), upgrade::listen_fd_name(l->route()->listen, w)});
  if (admin_) fds.push_back({admin_->fd(), std::string(upgrade::kAdminName)});
  return fds;
}

upgrade::Handover Server::handover_state() const {
  upgrade::Handover h;
  h.reloads_ok = state_.reloads_ok;
  h.reloads_failed = state_.reloads_failed;
  for (const auto& [name, svc] : services_)
    for (const auto& b : svc->pool.backends()) {
      upgrade::BackendState e;
      e.service = name;
      e.backend = b->config.address_text;
      e.health = b->health.load();
      e.streak = b->health_streak;
      e.last_check = b->health_record.last_check;
      e.last_error = b->health_record.last_error;
      e.checks_ok = b->health_record.checks_ok;
      e.checks_failed = b->health_record.checks_failed;
      e.override_state = b->override_state;
      e.override_weight = b->override_weight;
      if (e.override_state) e.file_drain = b->config.drain;
      if (e.override_weight) e.file_weight = b->config.weight;
      h.backends.push_back(std::move(e));
    }
  return h;
}

void Server::start_upgrade() {
  if (draining_) {
    log_.warn("upgrade refused", {{"reason", "stopping"}});
    return;
  }
  if (upgrade_pid_ > 0) {
    log_.warn("upgrade refused", {{"reason", "an upgrade is in progress"},
                                  {"pid", std::to_string(upgrade_pid_)}});
    return;
  }
  auto fail = [&](const std::string& why) { log_.error("upgrade failed", {{"reason", why}}); };
  std::string exe, error;
  std::vector<std::string> argv;
  if (!upgrade::own_command(exe, argv, error)) return fail(error);
  std::vector<upgrade::PassFd> fds = listening_fds();
  // The state document: a memfd, read by the new process from offset 0.
  UniqueFd state(::memfd_create("l4lb-upgrade-state", MFD_CLOEXEC));
  if (!state) return fail(std::string("memfd_create: ") + std::strerror(errno));
  const std::string doc = upgrade::to_json(handover_state());
  for (size_t off = 0; off < doc.size();) {
    ssize_t n = ::write(state.get(), doc.data() + off, doc.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(std::string("state document: ") + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  ::lseek(state.get(), 0, SEEK_SET);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + std::strerror(errno));
  UniqueFd ready_read(p[0]), ready_write(p[1]);
  ::fcntl(ready_read.get(), F_SETFL, O_NONBLOCK);
  fds.push_back({state.get(), std::string(upgrade::kStateName)});
  fds.push_back({ready_write.get(), std::string(upgrade::kReadyName)});
  const pid_t pid = upgrade::spawn(exe, argv, fds, static_cast<int>(fds.size()) - 1, error);
  if (pid < 0) return fail(error);
  // The child holds its copies now; ours of the write end closes at the end of this scope,
  // so the pipe reads EOF if the child ends without a word.
  upgrade_pid_ = pid;
  upgrade_handed_over_ = false;
  upgrade_started_ = monotonic_seconds();
  upgrade_exe_ = exe;
  upgrade_reason_.clear();
  upgrade_ready_ = std::move(ready_read);
  upgrade_io_.bind<&Server::on_upgrade_io>(loop_, this, upgrade_ready_.get());
  upgrade_io_.set(EV_READ);
  upgrade_timer_.start(upgrade::kReadyTimeout);
  child_.start<&Server::on_child>(loop_, this, pid);
  log_.info("upgrade start", {{"pid", std::to_string(pid)}, {"exe", exe},
                              {"sockets", std::to_string(fds.size() - 2)}});
}

void Server::on_upgrade_io(int) {
  char buf[16];
  ssize_t n = ::read(upgrade_ready_.get(), buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n > 0 && buf[0] == 'R') return on_upgrade_ready();
  if (n >= static_cast<ssize_t>(1 + sizeof(int)) && buf[0] == 'E') {
    int err;
    std::memcpy(&err, buf + 1, sizeof err);
    upgrade_reason_ = fmt::format("exec {}: {}", upgrade_exe_, std::strerror(err));
  }
  // EOF (or an exec failure): the child is ending; its end says the rest.
  upgrade_io_.stop();
  upgrade_ready_.reset();
}

void Server::on_upgrade_ready() {
  upgrade_io_.stop();
  upgrade_ready_.reset();
  upgrade_timer_.stop();
  upgrade_handed_over_ = true;
  const double ms = (monotonic_seconds() - upgrade_started_) * 1000;
  log_.info("upgrade handed over", {{"pid", std::to_string(upgrade_pid_)},
                                    {"ready_ms", fmt::format("{:.1f}", ms)},
                                    {"connections", std::to_string(open_sessions())}});
  ::sd_notifyf(0, "MAINPID=%d", static_cast<int>(upgrade_pid_));
  // systemd has read it before this process can be seen to exit (no restart, no failure).
  if (::getenv("NOTIFY_SOCKET")) ::sd_notify_barrier(0, 1000000);
  // The new process answers the admin port (the same socket); the file stays for it.
  if (admin_) {
    admin_->keep_socket_file();
    admin_.reset();
  }
  // From here as SIGTERM, without STOPPING=1: the service is not stopping.
  begin_drain(false);
}

void Server::on_upgrade_timeout() {
  if (upgrade_pid_ <= 0 || upgrade_handed_over_) return;
  upgrade_reason_ = fmt::format("not ready within {:g}s", upgrade::kReadyTimeout);
  ::kill(upgrade_pid_, SIGKILL);
}

void Server::on_child(int pid, int status) {
  if (!WIFEXITED(status) && !WIFSIGNALED(status)) return;  // stopped or continued
  if (pid != upgrade_pid_) return;
  child_.stop();
  upgrade_pid_ = -1;
  if (upgrade_handed_over_) return;  // the new process, ended while this one drains
  // An exec failure's message may still wait in the pipe (the end can be seen first).
  if (upgrade_ready_ && upgrade_reason_.empty()) {
    char buf[16];
    ssize_t n = ::read(upgrade_ready_.get(), buf, sizeof buf);
    if (n >= static_cast<ssize_t>(1 + sizeof(int)) && buf[0] == 'E') {
      int err;
      std::memcpy(&err, buf + 1, sizeof err);
      upgrade_reason_ = fmt::format("exec {}: {}", upgrade_exe_, std::strerror(err));
    }
  }
  upgrade_io_.stop();
  upgrade_ready_.reset();
  upgrade_timer_.stop();
  std::string reason = upgrade_reason_;
  if (reason.empty())
    reason = WIFEXITED(status)
                 ? fmt::format("the new process exited with status {}", WEXITSTATUS(status))
                 : fmt::format("the new process was killed by signal {} ({})", WTERMSIG(status),
                               ::strsignal(WTERMSIG(status)));
  log_.error("upgrade failed", {{"pid", std::to_string(pid)}, {"reason", reason}});
}

void Server::apply_handover(int fd) {
  std::string text;
  char buf[65536];
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    off += n;
  }
  upgrade::Handover h;
  std::string error;
  if (!upgrade::from_json(text, h, error)) {
    log_.warn("upgrade state ignored", {{"reason", error}});
    return;
  }
  state_.reloads_ok = h.reloads_ok;
  state_.reloads_failed = h.reloads_failed;
  const double now = monotonic_seconds();
  size_t applied = 0;
  for (const upgrade::BackendState& e : h.backends) {
    auto it = services_.find(e.service);
    std::shared_ptr<Backend> b = it == services_.end() ? nullptr : find_backend(*it->second, e.backend);
    if (!b) continue;
    Service& svc = *it->second;
    if (svc.config.health_check.type != HealthType::None && e.health != HealthState::Unknown) {
      b->health_streak = e.streak;
      HealthRecord& rec = b->health_record;
      rec.last_check = e.last_check;
      rec.last_error = e.last_error;
      rec.checks_ok = e.checks_ok;
      rec.checks_failed = e.checks_failed;
      svc.pool.set_health(*b, e.health);
    }
    // As over a reload: where the new file changed that property, the file wins.
    if (e.override_state) {
      if (e.file_drain && *e.file_drain != b->config.drain)
        log_.info("override dropped", {{"service", e.service}, {"backend", e.backend},
                                       {"what", "state"}, {"reason", "the config file changed it"}});
      else
        b->override_state = e.override_state;
    }
    if (e.override_weight) {
      if (e.file_weight && *e.file_weight != b->config.weight)
        log_.info("override dropped", {{"service", e.service}, {"backend", e.backend},
                                       {"what", "weight"}, {"reason", "the config file changed it"}});
      else
        b->override_weight = e.override_weight;
    }
    svc.derive(*b, now);
    ++applied;
  }
  for (const auto& [name, svc] : services_) svc->pool.refresh();
  // Checks again, now that known backends are known: no first check for them.
  probers_.clear();
  for (const auto& svc : state_.services) probers_.push_back(std::make_unique<Prober>(loop_, log_, svc, true));
  save_state_file();
  notify_status();
  log_.info("upgrade state", {{"backends", std::to_string(applied)},
                              {"reloads", std::to_string(state_.reloads_ok)}});
}

void Server::store_fds() {
  if (!::getenv("NOTIFY_SOCKET")) return;
  std::set<std::string> names;
  for (const upgrade::PassFd& f : listening_fds()) {
    names.insert(f.name);
    const std::string msg = "FDSTORE=1\nFDNAME=" + f.name;
    int fd = f.source;
    ::sd_pid_notify_with_fds(0, 0, msg.c_str(), &fd, 1);  // systemd drops duplicates
  }
  for (const std::string& gone : stored_fds_)
    if (!names.count(gone)) ::sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", gone.c_str());
  stored_fds_ = std::move(names);
}

}  // namespace l4lb
