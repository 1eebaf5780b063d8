// The HTTP health check's wire format (pure): the request it sends, and the verdict
// on the status line it receives.
#pragma once
#include <string>
#include <string_view>

namespace l4lb {

// "GET PATH HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\nUser-Agent: l4lb/X.Y.Z\r\n\r\n"
std::string build_http_check(std::string_view path, std::string_view host);

struct StatusVerdict {
  enum Kind { NeedMore, Pass, Fail } kind;
  int status = 0;       // the code, when a status line was read
  std::string reason;   // why it failed ("status 500", "not an HTTP/1.x answer", ...)
};

constexpr size_t kMaxStatusLine = 8192;

// Judges what has been RECEIVED so far against the expected range [LO, HI].
StatusVerdict check_status_line(std::string_view received, int lo, int hi);

}  // namespace l4lb
