#include "l4lb/admin/admin_http.hpp"

#include "l4lb/base/text.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace l4lb::http {

namespace {

bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Digits only, no sign, no list; false on overflow.
bool parse_length(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One segment, percent-decoded into OUT; false on a bad escape or a control character.
bool decode_segment(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (s.size() - i < 3) return false;  // "%" and two more characters
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
    out.push_back(c);
  }
  return true;
}

}  // namespace

bool is_read_method(std::string_view method) { return method == "GET" || method == "HEAD"; }

bool split_path(std::string_view path, std::vector<std::string>& segments) {
  segments.clear();
  if (path.empty() || path.front() != '/') return false;
  std::string_view rest = path.substr(1);
  for (;;) {
    size_t slash = rest.find('/');
    segments.emplace_back();
    if (!decode_segment(rest.substr(0, slash), segments.back())) {
      segments.clear();
      return false;
    }
    if (slash == std::string_view::npos) return true;
    rest.remove_prefix(slash + 1);
  }
}

ParseStatus RequestParser::fail(int status, std::string reason) {
  status_ = ParseStatus::Error;
  error_status_ = status;
  error_reason_ = std::move(reason);
  return status_;
}

ParseStatus RequestParser::feed(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (status_ != ParseStatus::NeedMore) return status_;
    if (where_ == Where::Body) {  // any bytes; exactly Content-Length of them
      size_t n = static_cast<size_t>(std::min<uint64_t>(body_left_, bytes.size() - i));
      request_.body.append(bytes.data() + i, n);
      i += n;
      body_left_ -= n;
      if (body_left_ == 0) status_ = ParseStatus::Done;
      continue;
    }
    char c = bytes[i++];
    ++consumed_;
    if (++section_ > kMaxHead) {  // the request line, then the headers, each at most 8 KiB
      return where_ == Where::RequestLine ? fail(400, "request line too long")
                                          : fail(431, "request headers too large");
    }
    if (cr_) {
      if (c != '\n') return fail(400, "CR not followed by LF");
      cr_ = false;
      line_done();
      continue;
    }
    if (c == '\r') {
      cr_ = true;
      continue;
    }
    if (c == '\n') {  // a bare LF ends a line too (RFC 9112 2.2: "printf ... | nc" works)
      line_done();
      continue;
    }
    // Binary garbage (a TLS hello, ...) is refused at its first byte, not after 8 KiB.
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return fail(400, "control character");
    if (u >= 0x80 && where_ == Where::RequestLine) return fail(400, "non-ASCII byte in the request line");
    line_.push_back(c);
  }
  return status_;
}

void RequestParser::line_done() {
  if (where_ == Where::RequestLine) {
    if (!line_.empty()) {
      request_line();  // empty lines before the request line are skipped
      section_ = 0;    // the headers' own 8 KiB start here
    }
  } else if (line_.empty()) {
    end_of_head();
  } else {
    header_line();
  }
  line_.clear();
}

void RequestParser::request_line() {
  std::string_view line = line_;
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return (void)fail(400, "bad request line");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return (void)fail(400, "bad request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);

  if (!is_token(method)) return (void)fail(400, "bad method");
  if (target.empty()) return (void)fail(400, "bad request line");
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') return (void)fail(400, "bad character in request target");
  }
  if (version == "HTTP/1.1") {
    request_.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    request_.version_minor = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
             version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
    return (void)fail(400, fmt::format("unsupported HTTP version {}", version));
  } else {
    return (void)fail(400, "bad HTTP version");
  }

  std::string_view path;
  if (target.front() == '/') {
    path = target;
  } else if (target == "*") {
    path = target;
  } else if (istarts_with(target, "http://") || istarts_with(target, "https://")) {
    std::string_view rest = target.substr(target.find("//") + 2);
    size_t end = rest.find_first_of("/?");
    if (end == 0) return (void)fail(400, "bad request target");
    path = end == std::string_view::npos ? std::string_view("/") : rest.substr(end);
    if (path.front() == '?') path = "/";
  } else {
    return (void)fail(400, "bad request target");
  }
  path = path.substr(0, path.find('?'));

  request_.method = method;
  request_.target = target;
  request_.path = path;
  where_ = Where::Headers;
}

void RequestParser::header_line() {
  std::string_view line = line_;
  if (line.front() == ' ' || line.front() == '\t')
    return (void)fail(400, "obsolete header line folding");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return (void)fail(400, "header line without a colon");
  std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return (void)fail(400, "bad header name");
  std::string_view value = trim_ows(line.substr(colon + 1));
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f)
      return (void)fail(400, "control character in a header value");
  }
  if (iequals(name, "content-length")) {
    uint64_t n = 0;
    if (!parse_length(value, n)) return (void)fail(400, "invalid Content-Length");
    if (request_.content_length && *request_.content_length != n)
      return (void)fail(400, "conflicting Content-Length");
    request_.content_length = n;
  } else if (iequals(name, "transfer-encoding")) {
    transfer_encoding_ = true;
  } else if (iequals(name, "authorization")) {
    if (request_.authorization_count++ == 0) request_.authorization = value;
  }
}

void RequestParser::end_of_head() {
  if (is_read_method(request_.method)) {  // no body is read: bytes after the head are ignored
    if (transfer_encoding_ && request_.content_length)
      return (void)fail(400, "both Content-Length and Transfer-Encoding");
    if (transfer_encoding_ && request_.version_minor == 0)
      return (void)fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    status_ = ParseStatus::Done;
    return;
  }
  if (transfer_encoding_) return (void)fail(411, "Transfer-Encoding is not accepted: send Content-Length");
  uint64_t length = request_.content_length.value_or(0);
  if (length > kMaxBody)
    return (void)fail(413, fmt::format("a body is at most {} bytes", kMaxBody));
  if (length == 0) {
    status_ = ParseStatus::Done;
    return;
  }
  request_.body.reserve(static_cast<size_t>(length));
  body_left_ = length;
  where_ = Where::Body;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string serialize(const Response& r, bool head_only) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n"
      "Cache-Control: no-store\r\n",
      r.status, reason_phrase(r.status), r.content_type, r.body.size());
  if (!r.allow.empty()) {
    out += fmt::format("Allow: {}\r\n", r.allow);
  } else if (r.allow_get_head) {
    out += "Allow: GET, HEAD\r\n";
  }
  if (!r.www_authenticate.empty()) out += fmt::format("WWW-Authenticate: {}\r\n", r.www_authenticate);
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

Response error_response(int status, std::string_view reason) {
  Response r;
  r.status = status;
  r.body = fmt::format("{} {}: {}\n", status, reason_phrase(status), reason);
  return r;
}

}  // namespace l4lb::http
