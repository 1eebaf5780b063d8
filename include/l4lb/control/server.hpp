// Server: the control thread. Builds the running state (services, workers and their
// listeners, health checks, the admin port) from a Config, and owns the process-level
// events: SIGHUP reload (plan, swap, publish), SIGTERM drain, systemd notifications.
// All of it runs on the main thread's loop; the data workers each run a loop of their
// own on a thread and only move bytes, so no control work (parsing, checks, the admin
// port) ever delays a client byte. Workers post to the control thread through its
// mailbox; shared state is changed only in a reload's swap, while the workers are
// parked (WorldStop), so the data path takes no lock for it.
#pragma once
#include <ev.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l4lb/admin/admin.hpp"
#include "l4lb/base/mailbox.hpp"
#include "l4lb/config/config.hpp"
#include "l4lb/dataplane/listener.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/health/prober.hpp"
#include "l4lb/control/server_state.hpp"
#include "l4lb/control/state_file.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/dataplane/worker.hpp"

namespace l4lb {

class Server : public AdminControl {
 public:
  Server(struct ev_loop* loop, Log& log, std::string config_path);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Binds every listener of CFG. False, with ERROR saying which address failed, if
  // one cannot be bound (nothing is left bound then).
  bool start(const Config& cfg, std::string& error);
  // Runs until stopped by SIGTERM/SIGINT; returns the exit code.
  int run();

 private:
  // What a reload changed, for its log line.
  struct Changes {
    size_t services_added = 0, services_removed = 0;
    size_t backends_added = 0, backends_removed = 0;
    double table_moved = 0;  // consistent_hash: largest fraction of a table that moved
    uint64_t swap_us = 0;    // how long the workers were stopped for the swap
  };
  // A reload's plan: made before the swap, without touching the running state.
  struct ServicePlan {
    std::shared_ptr<Service> previous;  // the running service of that name, or null
    BackendPlan backends;
    std::shared_ptr<Service> service;   // a new one made by the plan; else set by the swap
  };
  struct ListenPlan {
    Address address;
    std::string text;
    std::vector<size_t> services;       // indexes of the services on it, in config order
    std::vector<UniqueFd> fds;          // per worker: a new listening socket, or empty where
    std::vector<Listener*> reused;      // the running listener of that address is kept
    std::shared_ptr<Route> route;
  };
  struct Plan {
    std::vector<ServicePlan> services;  // in config order
    std::vector<ListenPlan> listens;    // in the order the file first names them
    bool admin_same = false;            // the admin listener stays
    UniqueFd admin_fd;                  // else its new socket (if any)
    Changes changes;
  };
  bool apply(const Config& cfg, std::string& error, Changes& changes);
  bool plan_listeners(const Config& cfg, Plan& plan, std::string& error);
  bool plan_admin(const Config& cfg, Plan& plan, std::string& error);
  void plan_services(const Config& cfg, Plan& plan);
  void plan_routes(const Config& cfg, Plan& plan);
  void swap_services(const Config& cfg, Plan& plan);
  void swap_listeners(const Config& cfg, Plan& plan);
  void publish(const Config& cfg, Plan& plan);
  void reload();
  // Backends from DNS: SERVICE's entries yielded a new set; applies its backend list as a
  // reload does for that one service (plan_backends, reconfigure under a WorldStop, a new
  // Prober so new addresses are checked at once).
  void on_dns_change(const std::string& service);
  // Runtime control (the admin port's writes), control thread only.
  const std::string& admin_token() const override;
  http::Response admin_write(const admin::Action& action, const http::Request& req,
                             const std::string& peer) override;
  // Overrides kept across restarts (global.state_file): read once at start (a bad file is
  // a warning), written atomically whenever the overrides in force change.
  void load_state_file();
  void save_state_file();
  void apply_saved_override(Service& svc, Backend& b, const control::BackendKey& key,
                            const control::Override& o, double now);
  void apply_pending_overrides(Service& svc);
  // Logs the overrides a reload took back (the file changed that property).
  void log_dropped_overrides();
  // Slow start: a timer, running while any service has slow_start, that advances ramps.
  void arm_slow_start();
  void on_slow_start_tick();
  void begin_drain();
  void stop();
  void on_signal(int signum);
  void on_drain_timeout();
  void notify_status();
  void start_threads();
  void stop_threads();
  void check_drained();
  void close_all_sessions();
  size_t open_sessions() const { return open_sessions_.load(std::memory_order_relaxed); }

  // One data worker: its own event loop on its own thread.
  struct WorkerThread {
    struct ev_loop* loop = nullptr;  // owned (ev_loop_new)
    std::unique_ptr<Worker> worker;
    std::thread thread;
  };
  // While alive, every worker thread waits (parked in its own loop's callback): the
  // control thread may change any shared state.
  class WorldStop;

  struct ev_loop* loop_;
  Log& log_;
  std::string config_path_;
  Config config_;
  Mailbox control_;                         // work posted by the workers to this thread
  std::atomic<uint64_t> open_sessions_{0};  // client connections over every worker
  std::vector<WorkerThread> workers_;     // fixed at start (global.workers)
  bool threads_running_ = false;
  std::map<std::string, std::shared_ptr<Service>> services_;
  std::vector<std::unique_ptr<Prober>> probers_;
  ServerState state_;                   // what the admin port reads
  std::unique_ptr<AdminServer> admin_;  // destroyed before the state it reads
  bool draining_ = false;
  bool stopped_ = false;
  SignalWatcher sighup_, sigterm_, sigint_;
  TimerWatcher drain_timer_;
  TimerWatcher slow_start_timer_;
  double slow_start_period_ = 0;  // seconds between ticks; 0 = no service has slow_start
  std::string state_written_;     // the state file's content as last written (or read)
  std::unique_ptr<dns::Discovery> discovery_;
  // Overrides from the state file for backends from DNS not resolved yet (applied when they are).
  control::Overrides dns_pending_;  // resolve/srv entries, looked up in the background
};

}  // namespace l4lb
