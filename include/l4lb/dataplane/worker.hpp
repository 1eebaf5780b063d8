// Worker: one event loop and what lives on it — its listeners (one SO_REUSEPORT
// socket per service when there are several workers), the open sessions, the pipe
// pool, the copy buffer, and the spare fd used to turn clients away when fds run
// out. Each worker runs on a thread of its own, beside the control thread.
#pragma once
#include <ev.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "l4lb/balance/admission.hpp"
#include "l4lb/base/fd.hpp"
#include "l4lb/base/mailbox.hpp"
#include "l4lb/dataplane/client_hello.hpp"
#include "l4lb/base/intrusive_list.hpp"
#include "l4lb/log/log.hpp"
#include "l4lb/dataplane/pipe.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/base/clock.hpp"
#include "l4lb/config/config.hpp"
#include "l4lb/dataplane/session.hpp"

namespace l4lb {

class Session;
class Inspector;
struct Route;
class Listener;
struct Service;
struct Address;
class Backend;

class Worker {
 public:
  // INDEX: this worker's slot in every per-worker counter (0..workers-1).
  // CONTROL: the control thread's mailbox (null: control work runs inline, as in unit tests).
  Worker(struct ev_loop* loop, Log& log, size_t index = 0, Mailbox* control = nullptr);
  size_t index() const { return index_; }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  struct ev_loop* loop() const { return loop_; }
  Log& log() { return log_; }
  PipePool& pipes() { return pipes_; }
  BufferPool& buffers() { return buffers_; }
  // The copy buffer shared by every session of this loop (used within one handler call).
  Buffer& scratch() { return scratch_; }
  // Hands the copy buffer (and the bytes in it) to a flow whose destination did not take
  // them all, and takes another from the pool: what waits is never copied again.
  Buffer take_scratch() {
    Buffer next = buffers_.acquire();  // may throw bad_alloc: the scratch buffer stays
    std::swap(next, scratch_);
    return next;
  }

  // global.splice, set by the server while the workers are stopped.
  SpliceMode splice = SpliceMode::Auto;
  // Whether this worker had no CPU to spare over the last ~100 ms: its loop spent more
  // than 70% of the time out of its poll (it is idle again under 50%: copying costs ~30%
  // more CPU per byte than splicing, so below that there is room for it), or its thread
  // waited more than 10% of the time for a CPU (other threads on its core, or a cgroup
  // CPU quota used up). Then a local destination is spliced too, since splice costs this
  // CPU less per byte than copying does.
  bool busy() const { return busy_; }

  // A client whose service is known, holding its place under global.max_connections:
  // takes its place under the service's limit and starts its session (backend connect at
  // once), or refuses it (counted; the client closes). LOCAL: the address the client
  // connected to, where a PROXY header said it (else the socket's own is used).
  // ORIGIN: where it came from, for the access log.
  void admit(const std::shared_ptr<Service>& service, UniqueFd client, const Address& peer,
             Seat global, std::optional<Address> local = {}, const ClientOrigin& origin = {});
  // Starts the session of a client admitted under the connection limits.
  void start_session(std::shared_ptr<Service> service, UniqueFd client, const Address& peer,
                     Admission admission, std::optional<Address> local = {},
                     const ClientOrigin& origin = {});
  // The access log (null: off); swapped by the server while the workers are stopped.
  AccessLog* access_log = nullptr;
  // When an access-log record starts (accept): the clock, only where a log is on.
  uint64_t accept_clock() const { return access_log ? monotonic_usec() : 0; }
  // Appends a record for a client that never had a session (refused, unrouted).
  void log_client(const ClientOrigin& origin, const std::string& service, const Address& client,
                  AccessEnd end, std::string_view reason = {});
  // A client of an inspecting address: its route is found first (Inspector).
  void inspect(std::shared_ptr<const Route> route, UniqueFd client, const Address& peer, Seat global,
               uint64_t accept_us = 0);
  // Destroys a finished session or inspector: called once, after its handler returned.
  void reap(Session* session);
  void reap(Inspector* inspector);
  // Where inspectors peek at what their clients sent (used within one handler call).
  std::span<uint8_t> peek_buffer() { return {peek_.get(), kMaxRead}; }
  // Ends every open session at once (second SIGTERM: stopped; end of drain: drain_timeout).
  void close_all(AccessEnd why = AccessEnd::Stopped);
  // Resets every session of this worker connected or connecting to BACKEND (the admin
  // port's DELETE .../connections); returns how many.
  size_t close_backend(const Backend* backend);
  // global.max_connections over every worker: past it new clients are closed at accept.
  uint64_t max_sessions = 65536;
  std::atomic<uint64_t>* open_sessions = &own_open_;  // the count over every worker
  // Called (on this worker's thread) whenever its last open session ends.
  std::function<void()> on_empty;

  // This worker's listeners; the server swaps them while the workers are stopped.
  std::vector<std::unique_ptr<Listener>> listeners;

  // Runs FN on this worker's thread soon; callable from any thread.
  void post(std::function<void()> fn) { inbox_.post(std::move(fn)); }
  // Runs FN on the control thread (posted: this worker never waits for it).
  void on_control(std::function<void()> fn);

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
  BufferPool buffers_;
  Buffer scratch_ = Buffer::make();
  // The loop's load (busy()): time spent waiting in its poll, over windows of ~100 ms.
  static void poll_starts(struct ev_loop* loop) noexcept;
  static void poll_ends(struct ev_loop* loop) noexcept;
  void end_window(double now);
  double poll_start_ = 0;
  double window_start_ = 0;
  double window_idle_ = 0;
  bool busy_ = false;
  uint64_t run_delay_ns_ = 0;  // this thread's run-queue wait (schedstat) at the last window
  // This worker's open sessions (open_sessions counts them over every worker), and the
  // clients still being inspected (counted there too).
  IntrusiveList<Session> sessions_;
  IntrusiveList<Inspector> inspectors_;
  std::unique_ptr<uint8_t[]> peek_ = std::make_unique<uint8_t[]>(kMaxRead);
  void check_empty();
  UniqueFd spare_fd_;
  double last_resource_warning_ = -1e9;
  TimerWatcher trim_timer_;  // gives unused pooled pipes back, once a second
  void on_trim();
  std::atomic<uint64_t> own_open_{0};  // open_sessions of a worker alone
  Mailbox* control_;
  Mailbox inbox_;  // work posted to this worker
};

}  // namespace l4lb
