#include "l4lb/log/log.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "l4lb/base/clock.hpp"

namespace l4lb {

namespace {
bool stderr_is_journal(int fd) {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (!env) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}
}  // namespace

std::string logfmt_value(std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  out += '"';
  return out;
}

Log::Log(LogLevel level, int fd) : level_(level), fd_(fd), journal_(stderr_is_journal(fd)) {}

std::string Log::format(LogLevel level, std::string_view msg, std::span<const LogField> fields,
                        bool journal, double unix_time) const {
  std::string line;
  if (journal) {
    line = fmt::format("<{}>", static_cast<int>(level));
  } else {
    time_t secs = static_cast<time_t>(unix_time);
    int millis = static_cast<int>((unix_time - static_cast<double>(secs)) * 1000);
    if (millis > 999) millis = 999;
    struct tm tm {};
    ::gmtime_r(&secs, &tm);
    line = fmt::format("ts={:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  }
  line += "level=";
  line += to_string(level);
  line += " msg=";
  line += logfmt_value(msg);
  for (const auto& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    line += logfmt_value(f.value);
  }
  return line;
}

std::string Log::format_plain(LogLevel level, std::string_view text, bool journal) {
  std::string line = journal ? fmt::format("<{}>", static_cast<int>(level)) : std::string();
  line += text;
  return line;
}

void Log::write(LogLevel level, std::string_view msg, std::span<const LogField> fields) {
  if (!enabled(level)) return;
  emit(format(level, msg, fields, journal_, unix_now()));
}

void Log::plain(LogLevel level, std::string_view text) {
  if (enabled(level)) emit(format_plain(level, text, journal_));
}

void Log::emit(std::string line) {
  line += '\n';
  // One write per line so that lines from a reload and the data path never interleave.
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n <= 0) break;  // stderr gone or full: drop the line rather than block or spin
    off += static_cast<size_t>(n);
  }
}

std::string error_text(int err) {
  std::string text = std::strerror(err);
  if (text.size() > 1 && text[0] >= 'A' && text[0] <= 'Z' && text[1] >= 'a' && text[1] <= 'z')
    text[0] = static_cast<char>(text[0] - 'A' + 'a');  // "connection refused"; "I/O error" stays
  return text;
}

}  // namespace l4lb
