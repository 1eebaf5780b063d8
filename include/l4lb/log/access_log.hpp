// The access log (INTERFACE.md "Logs", "Access log"): one record per client connection,
// logfmt or JSON lines, buffered and written by a thread of its own.
//
// Threading. Data workers call append(worker, record): it formats the record on the
// caller's thread, then, under that worker's own mutex, copies the line into the
// worker's buffer (or drops and counts it when the buffer is full) — the mutex is never
// held during I/O, and no allocation happens under it. The writer thread (owned, started
// by the constructor, joined by flush_and_stop()) wakes at least once a second, and early
// when a buffer passes half full; for each worker it swaps the buffer out under the
// worker's mutex and write()s it outside any lock. So a slow or full disk stalls only the
// writer: the buffers fill, and what does not fit is dropped and counted, never waited for.
// reopen() (SIGUSR1, control thread) opens the path on the caller's thread and installs
// the new file; the writer's next swap of each buffer goes to it. The writer runs with
// every asynchronous signal blocked: signals stay the control thread's.
//
// Bound. The buffers hold at most kMaxBufferedBytes (1 MiB) in all: each of the N worker
// buffers and the writer's one buffer in flight hold at most 1 MiB / (N + 1).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "l4lb/base/counters.hpp"
#include "l4lb/config/config.hpp"
#include "l4lb/base/fd.hpp"

namespace l4lb {

// How a client connection ended (the `end` field).
enum class AccessEnd {
  ClientClosed,   // the client's FIN came first and both sides finished
  BackendClosed,  // the backend's FIN came first and both sides finished
  ClientReset,
  BackendReset,
  IdleTimeout,
  ConnectFailed,  // every try failed
  NoBackend,
  Rejected,       // with a reason, as /stats spells it
  Unrouted,       // with a reason
  DrainTimeout,
  Stopped,        // second stop signal
  AdminClosed,
  InternalError,  // not in the contract's list: an exception in a handler (bad_alloc) reset it
};

// "client_closed", "backend_closed", ... as the `end` field spells it.
std::string_view to_string(AccessEnd end);

// One access-log record. Strings are empty when there is none (no service for an
// unrouted client, no SNI, no backend tried). Durations are kept in microseconds
// and shown as milliseconds with up to 3 decimals (1500 us -> 1.5, 123 us -> 0.123).
struct AccessRecord {
  double end_time = 0;      // unix seconds when it ended (unix_now()); ts, to the ms
  std::string service;
  std::string client;       // address:port (the PROXY header's source where there is one)
  std::string listen;       // address:port
  std::string sni;          // the server name the client sent, also when it matched nothing
  std::string backend;      // the backend of the last connect attempt
  uint64_t connect_us = 0;  // that attempt's duration (0 if none): connect_ms
  uint64_t duration_us = 0; // from accept to the end: duration_ms
  uint64_t bytes_in = 0;    // client -> backend, a ClientHello read for routing included
  uint64_t bytes_out = 0;   // backend -> client
  uint32_t retries = 0;
  AccessEnd end = AccessEnd::ClientClosed;
  std::string reason;       // written only when end is Rejected or Unrouted
};

// Append one line (ending in '\n') to OUT. Both write the same keys in the same order:
// ts service client listen sni backend connect_ms duration_ms bytes_in bytes_out retries
// end [reason]. Strings with invalid UTF-8 have each bad byte replaced by U+FFFD.
// logfmt: a value is bare when safe, else quoted as logfmt_value() does (log.hpp); an
// empty value is bare ("sni="). JSON: one object; the five counts are numbers, the rest
// strings ("" when empty). Neither ever holds a '\n' inside the line.
void format_logfmt(const AccessRecord& r, std::string& out);
void format_json(const AccessRecord& r, std::string& out);

// AccessLogFormat (logfmt | json) is config.hpp's.
std::string_view to_string(AccessLogFormat format);

class AccessLog {
 public:
  static constexpr size_t kMaxBufferedBytes = 1u << 20;

  // Opens PATH (O_WRONLY|O_APPEND|O_CREAT, mode 0640; "stderr": a dup of fd 2) and starts
  // the writer. Null with ERROR ("open access log PATH: <strerror>") when it cannot; never
  // throws.
  // WORKERS: how many data workers will append (indexes 0..WORKERS-1).
  static std::unique_ptr<AccessLog> open(const std::string& path, AccessLogFormat format,
                                         size_t workers, std::string& error);

  ~AccessLog();  // flush_and_stop()
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // From data worker WORKER only (one thread per index; out of range: worker % workers).
  // Never blocks on the disk and never throws; a record that does not fit is dropped.
  void append(size_t worker, const AccessRecord& r) noexcept;

  // Control thread, on SIGUSR1: opens (creates) the path again at once; records appended
  // after it returns go to the new file (records still buffered may go to either file).
  // On failure the old file stays in use and ERROR says why. "stderr": nothing to do.
  bool reopen(std::string& error);

  // Writes every buffered record, then stops the writer. Idempotent; records appended
  // afterwards are written by the next call (the destructor makes one).
  void flush_and_stop();

  // Records dropped: did not fit in the buffer, or lost to a failed write
  // (l4lb_access_log_dropped_total).
  uint64_t dropped() const;
  // Failed write() calls (ENOSPC, EIO, ...): each drops the records it carried.
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

  const std::string& path() const { return path_; }
  AccessLogFormat format() const { return format_; }
  size_t workers() const { return slots_.size(); }
  // The most one worker's buffer holds: kMaxBufferedBytes / (workers + 1).
  size_t buffer_limit() const { return cap_; }

 private:
  struct File {
    UniqueFd fd;
    bool torn = false;  // the last write stopped inside a line: start the next with '\n'
  };
  struct alignas(64) Slot {
    std::mutex mu;
    std::string buf;      // under mu; capacity cap_, reserved once
    std::string scratch;  // the owning worker's formatting space (no lock)
    Counter dropped;      // written by the owning worker only
  };

  AccessLog(std::string path, AccessLogFormat format, size_t workers, UniqueFd fd);
  static UniqueFd open_path(const std::string& path, std::string& error);
  void run();      // the writer thread
  void drain();    // swap out each buffer and write it (writer thread, or after the join)
  void write_out(File& file, std::string_view data);

  const std::string path_;
  const AccessLogFormat format_;
  const size_t cap_;
  PerWorker<Slot> slots_;

  std::mutex file_mu_;          // guards file_ (never held during I/O)
  std::shared_ptr<File> file_;  // the writer keeps the old one alive through its write

  std::mutex wake_mu_;  // guards wake_, stop_ (never held during I/O)
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stop_ = false;

  std::mutex stop_mu_;   // serializes flush_and_stop()
  std::string spare_;    // the writer's buffer in flight (writer only)
  std::atomic<uint64_t> write_dropped_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::thread writer_;   // last: started once everything above exists
};

}  // namespace l4lb
