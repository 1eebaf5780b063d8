#include "l4lb/health/http_probe.hpp"

#include <fmt/format.h>

namespace l4lb {

std::string build_http_check(std::string_view path, std::string_view host) {
  return fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: l4lb/{}\r\n"
      "Accept: */*\r\n\r\n",
      path, host, L4LB_VERSION);
}

namespace {
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}
}  // namespace

StatusVerdict check_status_line(std::string_view received, int lo, int hi) {
  constexpr std::string_view kPrefix = "HTTP/1.";
  size_t prefix = std::min(received.size(), kPrefix.size());
  if (received.substr(0, prefix) != kPrefix.substr(0, prefix))
    return {StatusVerdict::Fail, 0, fmt::format("not an HTTP/1.x answer: \"{}\"", printable(received))};
  size_t eol = received.find('\n');
  if (eol == std::string_view::npos) {
    if (received.size() >= kMaxStatusLine)
      return {StatusVerdict::Fail, 0, "status line longer than 8 KiB"};
    return {StatusVerdict::NeedMore, 0, {}};
  }
  std::string_view line = received.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // HTTP/1.x SP 3DIGIT [SP reason]
  bool ok = line.size() >= 12 && (line[7] == '0' || line[7] == '1') && line[8] == ' ' &&
            is_digit(line[9]) && is_digit(line[10]) && is_digit(line[11]) &&
            (line.size() == 12 || line[12] == ' ');
  if (!ok) return {StatusVerdict::Fail, 0, fmt::format("bad status line: \"{}\"", printable(line))};
  int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 100 || status > 599)
    return {StatusVerdict::Fail, status, fmt::format("bad status code {}", status)};
  if (status < lo || status > hi)
    return {StatusVerdict::Fail, status, fmt::format("status {}", status)};
  return {StatusVerdict::Pass, status, {}};
}

}  // namespace l4lb
