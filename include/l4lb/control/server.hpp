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
#include <set>
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
#include "l4lb/control/upgrade.hpp"
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
  // one cannot be bound (nothing is left bound then). INHERITED (LISTEN_FDS: an upgrade,
  // systemd socket activation or its fd store): listening sockets taken from there where
  // one matches (address, worker), the state document and the ready pipe of an upgrade.
  bool start(const Config& cfg, std::string& error, upgrade::InheritedFds* inherited = nullptr);
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
    bool access_log_same = false;       // the running access log stays
    std::shared_ptr<AccessLog> access_log;  // else the new one (null: none)
    std::vector<ListenPlan> listens;    // in the order the file first names them
    bool admin_same = false;            // the admin listener stays
    UniqueFd admin_fd;                  // else its new socket (if any)
    Changes changes;
  };
  bool apply(const Config& cfg, std::string& error, Changes& changes);
  bool plan_listeners(const Config& cfg, Plan& plan, std::string& error);
  bool plan_admin(const Config& cfg, Plan& plan, std::string& error);
  bool plan_access_log(const Config& cfg, Plan& plan, std::string& error);
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
  void begin_drain(bool notify_stopping = true);
  // Upgrade (SIGUSR2), the old process's side: start the new one, wait for its ready
  // byte (or its end, or the 10 s deadline), then hand over and drain.
  void start_upgrade();
  void on_upgrade_io(int revents);
  void on_upgrade_ready();
  void on_upgrade_timeout();
  void on_child(int pid, int status);
  std::vector<upgrade::PassFd> listening_fds() const;
  upgrade::Handover handover_state() const;
  // The new process's side: the old one's state, applied before the first checks.
  void apply_handover(int fd);
  // The new process's ready byte, once every backend new to it has had its first check
  // (or the longest check timeout has passed): polled, control thread only.
  void on_ready_poll();
  // systemd fd store: every listening socket (FDSTORE=1), sockets gone removed.
  void store_fds();
  void stop();
  void on_signal(int signum);
  void on_drain_timeout();
  void notify_status();
  void start_threads();
  void stop_threads();
  void check_drained();
  void close_all_sessions(AccessEnd why);
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
  SignalWatcher sighup_, sigterm_, sigint_, sigusr1_, sigusr2_;
  upgrade::InheritedFds* inherited_ = nullptr;  // during start() only
  // The upgrade in progress (pid > 0) or handed over.
  pid_t upgrade_pid_ = -1;
  bool upgrade_handed_over_ = false;
  double upgrade_started_ = 0;      // monotonic seconds at SIGUSR2
  std::string upgrade_exe_;
  std::string upgrade_reason_;      // why it failed, when known before the child's end
  UniqueFd upgrade_ready_;          // read end of the ready pipe
  IoWatcher upgrade_io_;
  TimerWatcher upgrade_timer_;
  ChildWatcher child_;
  std::set<std::string> stored_fds_;  // names in systemd's fd store
  UniqueFd ready_out_;              // write end of the old process's ready pipe, until written
  TimerWatcher ready_poll_;
  double ready_deadline_ = 0;       // monotonic seconds
  TimerWatcher drain_timer_;
  TimerWatcher slow_start_timer_;
  double slow_start_period_ = 0;  // seconds between ticks; 0 = no service has slow_start
  std::string state_written_;     // the state file's content as last written (or read)
  std::unique_ptr<dns::Discovery> discovery_;
  // Overrides from the state file for backends from DNS not resolved yet (applied when they are).
  control::Overrides dns_pending_;  // resolve/srv entries, looked up in the background
};

}  // namespace l4lb
