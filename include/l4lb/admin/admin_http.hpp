// The admin port's HTTP/1.x pieces, pure (no sockets): an incremental, strict request
// parser (request line + headers only; bodies are never read) and the answer builder.
//
// Strictness (RFC 9112 where it is clear, the stricter reading where it is not):
//   - request line: METHOD SP TARGET SP HTTP/1.0|HTTP/1.1 CRLF, single spaces;
//     METHOD is a token (case-sensitive, so "get" is an unknown method -> 405 on the
//     admin paths); TARGET is origin-form ("/path?query"), absolute-form
//     ("http://host/path") or "*", printable ASCII only;
//   - lines end in CRLF, or a bare LF (RFC 9112 2.2 allows it); a bare CR is an error;
//     empty lines before the request line are skipped (RFC 9112 2.2);
//   - header lines are "name: value": a token name right before the colon, no obs-fold,
//     no control characters in the value;
//   - Content-Length: digits only, all occurrences equal; with Transfer-Encoding, or
//     Transfer-Encoding in an HTTP/1.0 request: an error;
//   - the request line at most kMaxHead bytes (400 past it), the headers at most
//     kMaxHead bytes more (431 past it); line ends included.
// Every error is 400 unless said otherwise. Bytes after the end of the head (a body,
// pipelined requests) are ignored: the answer always closes the connection.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace l4lb::http {

struct Request {
  std::string method;   // as sent: "GET"
  std::string target;   // as sent: "/stats?x=1"
  std::string path;     // the target without query: "/stats" (absolute-form: its path)
  int version_minor = 1;  // HTTP/1.0 -> 0, HTTP/1.1 -> 1
  std::optional<uint64_t> content_length;
};

enum class ParseStatus { NeedMore, Done, Error };

class RequestParser {
 public:
  static constexpr size_t kMaxHead = 8192;

  // Feeds the next bytes received. Once Done or Error, further bytes are ignored and
  // the same status is returned.
  ParseStatus feed(std::string_view bytes);

  ParseStatus status() const { return status_; }
  const Request& request() const { return request_; }   // complete when Done
  int error_status() const { return error_status_; }    // 400 or 431 when Error
  const std::string& error_reason() const { return error_reason_; }
  size_t head_bytes() const { return consumed_; }

 private:
  enum class Where { RequestLine, Headers };
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
  int error_status_ = 0;
  std::string error_reason_;
};

// An answer of the admin port, always with "Connection: close".
struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool allow_get_head = false;  // adds "Allow: GET, HEAD" (405)
};

// The standard reason phrase ("Not Found"); "Unknown" for codes it does not know.
std::string_view reason_phrase(int status);

// The whole answer: status line (HTTP/1.1), Content-Type, Content-Length, Connection:
// close, Cache-Control: no-store, Allow when asked, then the body unless HEAD_ONLY.
std::string serialize(const Response& r, bool head_only);

// A plain-text error answer ("400 Bad Request: <reason>\n").
Response error_response(int status, std::string_view reason);

}  // namespace l4lb::http
