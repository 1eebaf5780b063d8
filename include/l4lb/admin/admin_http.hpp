// The admin port's HTTP/1.x pieces, pure (no sockets): an incremental, strict request
// parser (request line, headers, and a small body) and the answer builder.
//
// Strictness (RFC 9112 where it is clear, the stricter reading where it is not):
//   - request line: METHOD SP TARGET SP HTTP/1.0|HTTP/1.1 CRLF, single spaces;
//     METHOD is any token (case-sensitive, so "get" is an unknown method: routing answers
//     405); TARGET is origin-form ("/path?query"), absolute-form ("http://host/path")
//     or "*", printable ASCII only;
//   - lines end in CRLF, or a bare LF (RFC 9112 2.2 allows it); a bare CR is an error;
//     empty lines before the request line are skipped (RFC 9112 2.2);
//   - header lines are "name: value": a token name right before the colon, no obs-fold,
//     no control characters in the value;
//   - Content-Length: digits only (no sign, no list), all occurrences equal, else 400;
//   - the request line at most kMaxHead bytes (400 past it), the headers at most
//     kMaxHead bytes more (431 past it); line ends included.
// Bodies. GET and HEAD never have one read (as before): bytes after their head are
// ignored, whatever Content-Length says (it must still be valid), and Transfer-Encoding
// is an error only with Content-Length or in HTTP/1.0. Every other method (PUT, DELETE,
// and unknown ones, which routing answers 405) has a body exactly when Content-Length
// says so: any Transfer-Encoding is 411, a Content-Length over kMaxBody is 413 (checked
// at the end of the head, before any body byte), and the parser stays NeedMore until
// exactly Content-Length body bytes have arrived (no Content-Length: an empty body).
// Every error is 400 unless said otherwise. Bytes after the request (pipelined requests)
// are ignored: the answer always closes the connection. Deadlines are the caller's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l4lb::http {

struct Request {
  std::string method;   // as sent: "GET"
  std::string target;   // as sent: "/stats?x=1"
  std::string path;     // the target without query: "/stats" (absolute-form: its path)
  int version_minor = 1;  // HTTP/1.0 -> 0, HTTP/1.1 -> 1
  std::optional<uint64_t> content_length;
  std::string body;     // exactly *content_length bytes; always empty for GET and HEAD
  // The Authorization header: its value (OWS trimmed) when there was exactly one, and
  // how many there were (more than one is never a valid credential).
  std::string authorization;
  int authorization_count = 0;
};

// True for the methods whose body the parser never reads: "GET" and "HEAD" (exactly).
bool is_read_method(std::string_view method);

enum class ParseStatus { NeedMore, Done, Error };

class RequestParser {
 public:
  static constexpr size_t kMaxHead = 8192;
  static constexpr size_t kMaxBody = 1024;  // a longer Content-Length is 413

  // Feeds the next bytes received. Once Done or Error, further bytes are ignored and
  // the same status is returned.
  ParseStatus feed(std::string_view bytes);

  ParseStatus status() const { return status_; }
  const Request& request() const { return request_; }   // complete when Done
  int error_status() const { return error_status_; }    // 400, 411, 413 or 431 when Error
  const std::string& error_reason() const { return error_reason_; }
  size_t head_bytes() const { return consumed_; }        // body bytes not included

 private:
  enum class Where { RequestLine, Headers, Body };
  ParseStatus fail(int status, std::string reason);
  void line_done();  // LINE_ holds one line without its CRLF
  void request_line();
  void header_line();
  void end_of_head();

  ParseStatus status_ = ParseStatus::NeedMore;
  Where where_ = Where::RequestLine;
  Request request_;
  std::string line_;
  bool cr_ = false;        // the previous byte was a CR
  size_t consumed_ = 0;    // bytes of the head so far
  size_t section_ = 0;     // of those, bytes of the request line, then of the headers
  bool transfer_encoding_ = false;
  uint64_t body_left_ = 0;  // body bytes still to come (Where::Body)
  int error_status_ = 0;
  std::string error_reason_;
};

// An answer of the admin port, always with "Connection: close".
struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool allow_get_head = false;  // adds "Allow: GET, HEAD" (405), unless ALLOW is set
  std::string allow;            // when set, adds "Allow: <allow>" (405)
  std::string www_authenticate; // when set, adds "WWW-Authenticate: <it>" (401)
};

// The standard reason phrase ("Not Found"); "Unknown" for codes it does not know.
std::string_view reason_phrase(int status);

// The whole answer: status line (HTTP/1.1), Content-Type, Content-Length, Connection:
// close, Cache-Control: no-store, Allow and WWW-Authenticate when asked, then the body
// unless HEAD_ONLY.
std::string serialize(const Response& r, bool head_only);

// A plain-text error answer ("400 Bad Request: <reason>\n").
Response error_response(int status, std::string_view reason);

// The path of a request ("/services/web/backends/%5B%3A%3A1%5D%3A8001/state") as its
// segments, each percent-decoded ({"services","web","backends","[::1]:8001","state"}).
// The path is split at '/' before each segment is decoded, so "%2F" never makes a new
// segment. "/" is {""}, "/a/" is {"a",""}, "//a" is {"","a"}: no normalisation (no
// dot-segment removal, no merging of slashes). False (SEGMENTS cleared) when PATH does
// not start with '/' (e.g. "*"), has an invalid escape ('%' not followed by two hex
// digits), or decodes to a control character (%00-%1F, %7F): no resource has such a
// name, so the admin port answers 404 for these, never 400. '+' is not a space here.
bool split_path(std::string_view path, std::vector<std::string>& segments);

}  // namespace l4lb::http
