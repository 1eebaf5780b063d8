// Logs: one logfmt line per event on stderr. Under systemd (JOURNAL_STREAM names
// stderr) each line starts with its syslog priority "<N>" and leaves out ts=.
#pragma once
#include <atomic>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "l4lb/config/config.hpp"

namespace l4lb {

struct LogField {
  std::string_view key;
  std::string value;
};

class Log {
 public:
  // Detects journald from JOURNAL_STREAM. FD is where lines go (stderr).
  explicit Log(LogLevel level = LogLevel::Info, int fd = 2);

  // The level is read by every worker and set by the control thread on reload.
  void set_level(LogLevel level) { level_.store(level, std::memory_order_relaxed); }
  bool enabled(LogLevel level) const {
    return static_cast<int>(level) <= static_cast<int>(level_.load(std::memory_order_relaxed));
  }

  void write(LogLevel level, std::string_view msg, std::span<const LogField> fields);
  void write(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {}) {
    write(level, msg, std::span<const LogField>(fields.begin(), fields.size()));
  }
  void error(std::string_view msg, std::initializer_list<LogField> f = {}) { write(LogLevel::Error, msg, f); }
  void warn(std::string_view msg, std::initializer_list<LogField> f = {}) { write(LogLevel::Warn, msg, f); }
  void info(std::string_view msg, std::initializer_list<LogField> f = {}) { write(LogLevel::Info, msg, f); }
  void debug(std::string_view msg, std::initializer_list<LogField> f = {}) { write(LogLevel::Debug, msg, f); }

  // A line that is not logfmt, as is (config errors at start: FILE:LINE:COL: message),
  // with the journald priority prefix under journald so that `journalctl -p err` shows it.
  void plain(LogLevel level, std::string_view text);

  // The line write() would emit, without the trailing newline (for tests).
  std::string format(LogLevel level, std::string_view msg, std::span<const LogField> fields,
                     bool journal, double unix_time) const;
  std::string format(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields,
                     bool journal, double unix_time) const {
    return format(level, msg, std::span<const LogField>(fields.begin(), fields.size()), journal, unix_time);
  }
  // The line plain() would emit, without the trailing newline.
  static std::string format_plain(LogLevel level, std::string_view text, bool journal);

 private:
  void emit(std::string line);

  std::atomic<LogLevel> level_;
  int fd_;
  bool journal_;
};

// A logfmt value: bare when safe, else quoted with \" \\ \n escaped.
std::string logfmt_value(std::string_view v);

// strerror(ERR) as log reasons spell it: lower case first, "connection refused".
std::string error_text(int err);

}  // namespace l4lb
