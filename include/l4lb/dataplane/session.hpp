// Session: one client <-> backend pair. Connects at accept (retrying other backends
// on failure), then moves bytes both ways (copied, or with splice(2) for bulk flows),
// holding a pipe or buffer only while bytes wait, passes half-closes and resets on,
// and ends once: the destructor is the only close path.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "l4lb/balance/admission.hpp"
#include "l4lb/base/address.hpp"
#include "l4lb/base/intrusive_list.hpp"
#include "l4lb/balance/lease.hpp"
#include "l4lb/balance/service.hpp"
#include "l4lb/balance/wait_queue.hpp"
#include "l4lb/dataplane/pipe.hpp"
#include "l4lb/base/watch.hpp"
#include "l4lb/log/access_log.hpp"

namespace l4lb {

class Worker;
struct Service;

// Where a client came from, for its access-log record (read during the call only).
struct ClientOrigin {
  uint64_t accept_us = 0;         // monotonic_usec() at accept (0: the log is off)
  std::string_view listen;        // the listen address as written
  std::string_view sni;           // the server name the client sent, if any
  bool bytes_waiting = false;     // its first bytes are in its socket already (inspected)
};

// What the access log needs of a session beyond what it counts anyway; made only where
// the service's connections are logged.
struct AccessInfo {
  uint64_t accept_us = 0;
  std::string listen;
  std::string sni;
  std::string backend;        // the last connect attempt's backend
  uint64_t attempt_us = 0;    // when that attempt began
  uint64_t connect_us = 0;    // how long it took (to established or to failure)
  uint32_t attempts = 0;
};

class Session : public ListLinks<Session> {  // in its Worker's list
 public:
  // LOCAL: the address the client connected to, where a PROXY header said it.
  Session(Worker& worker, std::shared_ptr<Service> service, UniqueFd client, const Address& peer,
          Admission admission, std::optional<Address> local = {},
          std::unique_ptr<AccessInfo> access = nullptr, bool client_bytes_waiting = false);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  void start();
  bool done() const { return phase_ == Phase::Done; }
  // Ends the session now with a reset of both sides; the caller reaps it. WHY is its
  // access-log end (stopped, drain_timeout, admin_closed).
  void abort(AccessEnd why = AccessEnd::Stopped);
  // The backend this session is connected (or connecting) to; null when none.
  const Backend* backend() const { return lease_ ? &lease_.backend() : nullptr; }
  // An exception in one of this session's handlers (bad_alloc, ...): this connection
  // ends with a reset, counted and logged; the process and every other session go on.
  void on_callback_error();

 private:
  enum class Phase { Connecting, Queued, Established, Done };
  enum class Ending { Closed, Reset, Idle, NoBackend, Aborted, Error, Rejected };

  // The queue (INTERFACE "Queue"): a session with no backend to go to waits in its
  // service's WaitQueue, holding no backend socket and no pipe, until woken (on_dequeued,
  // posted to this worker), its client hangs up, or queue.timeout passes.
  struct Ticket : WaitQueue::Ticket {
    Session* owner = nullptr;  // read and written on the owner's worker only
  };
  void enqueue(bool front);
  void on_dequeued();
  void queued_client_event();
  void reject(Rejected why);
  // Where the failure that ends a session with a reset happened.
  enum class Fault : int8_t { None, Source, Destination, Local };

  // One direction of the pair. Reads are copied through the worker's scratch buffer
  // (recv + send: cheapest for request/response traffic). A big read marks a bulk flow,
  // which moves by splice(2) where that pays (splice_pays) until a splice comes back
  // small. Bytes the destination cannot take yet wait where they are: in the copy
  // buffer, which the flow keeps (the worker takes another), or in the splice pipe.
  struct Flow {
    Pipe pipe;
    size_t queued = 0;  // bytes waiting in the pipe
    Buffer held;        // bytes waiting in a copy buffer (held.waiting())
    size_t uncounted = 0;  // of those, bytes l4lb wrote itself (a PROXY header): not payload
    bool bulk = false;  // splice, rather than copy
    bool eof = false;   // the source sent FIN
    bool shut = false;  // FIN passed on (shutdown(SHUT_WR) of the destination)
    int8_t local = -1;  // the destination is on this host: 1, not: 0, not yet asked: -1
    size_t waiting() const { return queued + held.waiting(); }
  };
  // Reads of at least this many bytes mark a bulk flow.
  static constexpr size_t kBulkRead = 16384;
  enum class Step { Again, Drained, Blocked, Failed };

  void connect_next();
  bool connect_failed(int error);  // true if another backend may be tried
  void established();
  bool send_proxy_header();
  void on_client_io(int revents);
  void on_backend_io(int revents);
  void on_timer();
  void pump_flows(bool upstream, bool downstream);
  bool pump(Flow& flow, int from, int to, bool upstream);
  void pass_fin(Flow& flow, int to, const Flow& other);
  Step copy_step(Flow& flow, int from, int to, size_t& moved);
  Step splice_step(Flow& flow, int from, int to);
  Step send_held(Flow& flow, int to, size_t& moved);
  bool splice_pays(Flow& flow, int to);
  int error_ = 0;  // errno of the failure that ends the session with a reset
  Fault fault_ = Fault::None;  // and where it happened (copy_step, splice_step, pump)
  void watch();
  void finish(Ending ending, int error = 0);
  AccessEnd access_end(Ending ending) const;
  void log_access(Ending ending);
  void saw_eof(const Flow& f) {
    if (first_fin_ < 0) first_fin_ = &f == &up_ ? 0 : 1;
  }
  void reap_if_done();

  Worker& worker_;
  std::shared_ptr<Service> service_;  // before admission_: its seat points into the service
  // Before the sockets: given back once both sockets below are closed.
  Admission admission_;            // this client's places under the connection limits
  Address peer_;                   // the client (a PROXY header's source where there was one)
  std::optional<Address> local_;   // a PROXY header's destination (else the socket's address)
  UniqueFd client_;
  Lease lease_;                  // the backend socket and its live count
  std::vector<Backend*> tried_;    // backends that failed for this client
  Flow up_;                        // client -> backend
  Flow down_;                      // backend -> client
  Phase phase_ = Phase::Connecting;
  double last_active_ = 0;         // ev_now() of the last payload byte
  double connect_start_ = 0;       // ev_time() when the current backend connect began
  uint64_t bytes_in_ = 0;          // client -> backend, this session's payload
  uint64_t bytes_out_ = 0;         // backend -> client
  int8_t first_fin_ = -1;          // whose FIN came first: 0 the client, 1 the backend
  int8_t reset_by_ = -1;           // whose failure ended it: 0 the client, 1 the backend, 2 l4lb
  AccessEnd abort_end_ = AccessEnd::Stopped;
  std::shared_ptr<Ticket> ticket_;  // while this session is (or was) queued
  bool dequeued_ = false;          // woken from the queue: no room after all goes to the head
  bool client_spoke_ = false;      // bytes arrived while queued: no longer watched for hang-up
  bool client_bytes_waiting_;      // the client sent first (a ClientHello): read once connected
  double queue_deadline_ = 0;      // ev_now() + queue.timeout, from the first enqueue
  std::string_view reject_reason_;  // for the access log
  std::unique_ptr<AccessInfo> access_;  // null: this session is not logged
  // Watchers last: destroyed (stopped) before the fds above are closed.
  IoWatcher client_io_;
  IoWatcher backend_io_;
  TimerWatcher timer_;             // connect timeout, then idle timeout
};

}  // namespace l4lb
