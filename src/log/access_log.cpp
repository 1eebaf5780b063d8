#include "l4lb/log/access_log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <exception>
#include <iterator>

#include <fmt/format.h>

#include "l4lb/log/log.hpp"

namespace l4lb {

std::string_view to_string(AccessEnd end) {
  switch (end) {
    case AccessEnd::ClientClosed: return "client_closed";
    case AccessEnd::BackendClosed: return "backend_closed";
    case AccessEnd::ClientReset: return "client_reset";
    case AccessEnd::BackendReset: return "backend_reset";
    case AccessEnd::IdleTimeout: return "idle_timeout";
    case AccessEnd::ConnectFailed: return "connect_failed";
    case AccessEnd::NoBackend: return "no_backend";
    case AccessEnd::Rejected: return "rejected";
    case AccessEnd::Unrouted: return "unrouted";
    case AccessEnd::DrainTimeout: return "drain_timeout";
    case AccessEnd::Stopped: return "stopped";
    case AccessEnd::AdminClosed: return "admin_closed";
    case AccessEnd::InternalError: return "internal_error";
  }
  return "unknown";
}

std::string_view to_string(AccessLogFormat format) {
  return format == AccessLogFormat::Json ? "json" : "logfmt";
}

namespace {

// S with every byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF included) replaced by U+FFFD.
std::string clean_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t min = 0, cp = 0;
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000, cp = c & 0x07;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (ok && len > 1 && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

bool is_ascii_safe(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

void logfmt_field(std::string& out, std::string_view key, std::string_view v, bool first = false) {
  if (!first) out += ' ';
  out += key;
  out += '=';
  if (v.empty()) return;  // "sni=": bare, as the event log's `removed=` example shows
  out += is_ascii_safe(v) ? logfmt_value(v) : logfmt_value(clean_utf8(v));
}

void json_string(std::string& out, std::string_view v) {
  std::string cleaned;
  if (!is_ascii_safe(v)) {
    cleaned = clean_utf8(v);
    v = cleaned;
  }
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  out += '"';
}

void json_field(std::string& out, std::string_view key, std::string_view v) {
  out += ",\"";
  out += key;
  out += "\":";
  json_string(out, v);
}

// Microseconds as milliseconds, trailing zeros of the fraction left out: 1500 -> "1.5".
std::string ms_text(uint64_t us) {
  std::string s = fmt::format("{}", us / 1000);
  if (uint64_t frac = us % 1000) {
    std::string f = fmt::format("{:03}", frac);
    while (f.back() == '0') f.pop_back();
    s += '.';
    s += f;
  }
  return s;
}

// 2026-01-01T00:00:00.000Z, to the nearest millisecond (before 1970 or not a number: 1970).
std::string ts_text(double unix_seconds) {
  double ms_d = unix_seconds * 1000.0;
  int64_t ms = std::isfinite(ms_d) && ms_d > 0 ? static_cast<int64_t>(std::llround(ms_d)) : 0;
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

bool has_reason(AccessEnd end) { return end == AccessEnd::Rejected || end == AccessEnd::Unrouted; }

}  // namespace

void format_logfmt(const AccessRecord& r, std::string& out) {
  logfmt_field(out, "ts", ts_text(r.end_time), true);
  logfmt_field(out, "service", r.service);
  logfmt_field(out, "client", r.client);
  logfmt_field(out, "listen", r.listen);
  logfmt_field(out, "sni", r.sni);
  logfmt_field(out, "backend", r.backend);
  logfmt_field(out, "connect_ms", ms_text(r.connect_us));
  logfmt_field(out, "duration_ms", ms_text(r.duration_us));
  logfmt_field(out, "bytes_in", fmt::format("{}", r.bytes_in));
  logfmt_field(out, "bytes_out", fmt::format("{}", r.bytes_out));
  logfmt_field(out, "retries", fmt::format("{}", r.retries));
  logfmt_field(out, "end", to_string(r.end));
  if (has_reason(r.end)) logfmt_field(out, "reason", r.reason);
  out += '\n';
}

void format_json(const AccessRecord& r, std::string& out) {
  out += "{\"ts\":";
  json_string(out, ts_text(r.end_time));
  json_field(out, "service", r.service);
  json_field(out, "client", r.client);
  json_field(out, "listen", r.listen);
  json_field(out, "sni", r.sni);
  json_field(out, "backend", r.backend);
  fmt::format_to(std::back_inserter(out),
                 ",\"connect_ms\":{},\"duration_ms\":{},\"bytes_in\":{},\"bytes_out\":{},\"retries\":{}",
                 ms_text(r.connect_us), ms_text(r.duration_us), r.bytes_in, r.bytes_out, r.retries);
  json_field(out, "end", to_string(r.end));
  if (has_reason(r.end)) json_field(out, "reason", r.reason);
  out += "}\n";
}

// ---------------------------------------------------------------------------------------

UniqueFd AccessLog::open_path(const std::string& path, std::string& error) {
  int fd = path == "stderr"
               ? ::fcntl(2, F_DUPFD_CLOEXEC, 3)
               // O_NONBLOCK: a FIFO nobody reads makes writes fail (records dropped and
               // counted) rather than stall the writer, and with it the flush at exit.
               : ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
  if (fd < 0) error = fmt::format("open access log {}: {}", path, error_text(errno));
  return UniqueFd(fd);
}

std::unique_ptr<AccessLog> AccessLog::open(const std::string& path, AccessLogFormat format,
                                           size_t workers, std::string& error) {
  UniqueFd fd = open_path(path, error);
  if (!fd) return nullptr;
  try {
    return std::unique_ptr<AccessLog>(new AccessLog(path, format, workers, std::move(fd)));
  } catch (const std::exception& e) {  // no memory, no thread
    error = fmt::format("start access log {}: {}", path, e.what());
    return nullptr;
  }
}

AccessLog::AccessLog(std::string path, AccessLogFormat format, size_t workers, UniqueFd fd)
    : path_(std::move(path)),
      format_(format),
      cap_(kMaxBufferedBytes / ((workers ? workers : 1) + 1)),
      slots_(workers),
      file_(std::make_shared<File>()) {
  file_->fd = std::move(fd);
  for (size_t i = 0; i < slots_.size(); ++i) slots_[i].buf.reserve(cap_);
  spare_.reserve(cap_);
  // Signals are the control thread's: the writer starts with every asynchronous one blocked
  // (as the data workers do), so none is ever handled on it or kills it.
  sigset_t block, old;
  sigfillset(&block);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT}) sigdelset(&block, sig);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  try {
    writer_ = std::thread([this] { run(); });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

AccessLog::~AccessLog() { flush_and_stop(); }

void AccessLog::append(size_t worker, const AccessRecord& r) noexcept {
  Slot& slot = slots_[worker % slots_.size()];
  bool wake = false;
  try {
    slot.scratch.clear();
    if (format_ == AccessLogFormat::Json)
      format_json(r, slot.scratch);
    else
      format_logfmt(r, slot.scratch);
  } catch (...) {  // out of memory: drop it rather than throw into the event loop
    slot.dropped.add(1);
    return;
  }
  {
    std::lock_guard lock(slot.mu);
    size_t before = slot.buf.size();
    if (before + slot.scratch.size() > cap_) {
      slot.dropped.add(1);
      return;
    }
    slot.buf.append(slot.scratch);  // within the reserved capacity: a memcpy
    wake = before <= cap_ / 2 && slot.buf.size() > cap_ / 2;
  }
  if (wake) {
    {
      std::lock_guard lock(wake_mu_);
      wake_ = true;
    }
    wake_cv_.notify_one();
  }
}

bool AccessLog::reopen(std::string& error) {
  if (path_ == "stderr") return true;
  UniqueFd fd = open_path(path_, error);
  if (!fd) return false;
  auto file = std::make_shared<File>();
  file->fd = std::move(fd);
  std::shared_ptr<File> old;
  {
    std::lock_guard lock(file_mu_);
    old = std::exchange(file_, std::move(file));
  }
  return true;  // OLD closes here, or in the writer when it finishes writing to it
}

void AccessLog::run() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(wake_mu_);
  for (;;) {
    auto deadline = Clock::now() + std::chrono::seconds(1);
    wake_cv_.wait_until(lock, deadline, [this] { return wake_ || stop_; });
    bool stopping = stop_;
    wake_ = false;
    lock.unlock();
    drain();
    if (stopping) return;
    lock.lock();
  }
}

void AccessLog::drain() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    std::shared_ptr<File> file;
    {
      // The file is read in the same step as the swap, so that a record appended after
      // reopen() returned is never written to the file it replaced.
      std::lock_guard f(file_mu_);
      file = file_;
      std::lock_guard s(slot.mu);
      slot.buf.swap(spare_);
    }
    if (!spare_.empty()) write_out(*file, spare_);
    spare_.clear();
  }
}

void AccessLog::write_out(File& file, std::string_view data) {
  if (file.torn) {  // a line cut short by a failed write: end it before the next one
    if (::write(file.fd.get(), "\n", 1) == 1) file.torn = false;
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(file.fd.get(), data.data() + off, data.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // ENOSPC, EIO, EAGAIN on a non-blocking stderr, 0 bytes: drop the rest, no retry.
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    std::string_view rest = data.substr(off);
    write_dropped_.fetch_add(static_cast<uint64_t>(std::count(rest.begin(), rest.end(), '\n')),
                             std::memory_order_relaxed);
    if (off > 0 && data[off - 1] != '\n') file.torn = true;
    return;
  }
}

void AccessLog::flush_and_stop() {
  std::lock_guard guard(stop_mu_);
  if (writer_.joinable()) {
    {
      std::lock_guard lock(wake_mu_);
      stop_ = true;
    }
    wake_cv_.notify_one();
    writer_.join();
  }
  drain();  // whatever was appended while the writer was stopping, or since
}

uint64_t AccessLog::dropped() const {
  return slots_.sum(&Slot::dropped) + write_dropped_.load(std::memory_order_relaxed);
}

}  // namespace l4lb
