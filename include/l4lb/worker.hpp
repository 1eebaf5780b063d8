// Worker: one event loop and what lives on it — the pipe pool, the open sessions,
// and the spare fd used to turn clients away when fds run out.
#pragma once
#include <ev.h>

#include <functional>
#include <memory>
#include <span>

#include "l4lb/fd.hpp"
#include "l4lb/log.hpp"
#include "l4lb/pipe.hpp"
#include "l4lb/watch.hpp"

namespace l4lb {

class Session;
struct Service;
struct Address;

class Worker {
 public:
  // INDEX: this worker's slot in every per-worker counter (0..workers-1).
  Worker(struct ev_loop* loop, Log& log, size_t index = 0);
  size_t index() const { return index_; }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  struct ev_loop* loop() const { return loop_; }
  Log& log() { return log_; }
  PipePool& pipes() { return pipes_; }
  // The copy buffer shared by every session of this loop (used within one handler call).
  std::span<char> scratch() { return {scratch_.get(), kScratchSize}; }
  static constexpr size_t kScratchSize = 16384;

  // Takes a just-accepted client and starts its session (backend connect at once).
  void start_session(std::shared_ptr<Service> service, UniqueFd client, const Address& peer);
  // Destroys a finished session: called once, after the session's handler returned.
  void reap(Session* session);
  // Ends every open session at once (second SIGTERM, end of drain).
  void close_all();
  size_t session_count() const { return sessions_; }
  // global.max_connections: past it new clients are closed at accept.
  size_t max_sessions = 65536;
  // Called whenever the last open session ends.
  std::function<void()> on_empty;

  // EMFILE at accept: accepts and closes one client with the spare fd, so a full
  // accept queue does not stay readable. Returns true if a client was turned away.
  bool shed_one(int listen_fd);

  // Out-of-fds/memory warnings: true at most once a second, so a flood of clients
  // that cannot be served gives a few log lines, not one per client.
  bool warn_resources_now();

 private:
  struct ev_loop* loop_;
  Log& log_;
  size_t index_;
  PipePool pipes_;
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(kScratchSize);
  Session* head_ = nullptr;  // intrusive list of open sessions
  size_t sessions_ = 0;
  UniqueFd spare_fd_;
  double last_resource_warning_ = -1e9;
  TimerWatcher trim_timer_;  // gives unused pooled pipes back, once a second
  void on_trim();
};

}  // namespace l4lb
