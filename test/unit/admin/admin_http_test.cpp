// The admin port: the strict request parser (head, bodies, path segments), routing, and
// the AdminServer on a real event loop over loopback sockets (limits, deadlines, garbage).
#include <doctest/doctest.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l4lb/admin/admin.hpp"
#include "l4lb/admin/admin_http.hpp"
#include "l4lb/base/net.hpp"
#include "l4lb/balance/service.hpp"

using namespace l4lb;
using http::ParseStatus;
using http::RequestParser;

namespace {

RequestParser parse(std::string_view text) {
  RequestParser p;
  p.feed(text);
  return p;
}

void check_error(std::string_view text, int status) {
  RequestParser p = parse(text);
  INFO("request: " << std::string(text.substr(0, 200)));
  REQUIRE(p.status() == ParseStatus::Error);
  CHECK(p.error_status() == status);
}

}  // namespace

// ------------------------------------------------------------------ parser

TEST_CASE("admin http: a good GET") {
  RequestParser p = parse("GET /stats HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().method == "GET");
  CHECK(p.request().target == "/stats");
  CHECK(p.request().path == "/stats");
  CHECK(p.request().version_minor == 1);
  CHECK_FALSE(p.request().content_length);
}

TEST_CASE("admin http: HTTP/1.0 without headers, query string dropped from the path") {
  RequestParser p = parse("GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().version_minor == 0);
  CHECK(p.request().target == "/metrics?name[]=x");
  CHECK(p.request().path == "/metrics");
}

TEST_CASE("admin http: absolute-form target and asterisk") {
  RequestParser p = parse("GET http://127.0.0.1:9900/health?x HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().path == "/health");
  p = parse("GET HTTP://host HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().path == "/");
  p = parse("OPTIONS * HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().path == "*");
  check_error("GET http:///x HTTP/1.1\r\n\r\n", 400);
  check_error("GET stats HTTP/1.1\r\n\r\n", 400);
}

TEST_CASE("admin http: bytes after the head (body, pipelined requests) are ignored") {
  RequestParser p;
  CHECK(p.feed("GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /stats HTTP/1.1\r\n\r\n") ==
        ParseStatus::Done);
  CHECK(p.request().path == "/health");
  CHECK(p.feed("garbage\r\n\r\n") == ParseStatus::Done);
  CHECK(p.request().path == "/health");
  p = parse("GET /stats HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().content_length == 5u);
}

TEST_CASE("admin http: a request split across many feeds, one byte at a time") {
  std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost:9900\r\nUser-Agent: t\r\n\r\n";
  RequestParser p;
  for (size_t i = 0; i + 1 < req.size(); ++i) REQUIRE(p.feed(req.substr(i, 1)) == ParseStatus::NeedMore);
  CHECK(p.feed(req.substr(req.size() - 1)) == ParseStatus::Done);
  CHECK(p.request().path == "/metrics");
  CHECK(p.head_bytes() == req.size());
  // Split inside the CRLF pairs.
  RequestParser q;
  CHECK(q.feed("GET / HTTP/1.1\r") == ParseStatus::NeedMore);
  CHECK(q.feed("\nA: b\r\n\r") == ParseStatus::NeedMore);
  CHECK(q.feed("\n") == ParseStatus::Done);
}

TEST_CASE("admin http: empty lines before the request line are skipped") {
  RequestParser p = parse("\r\n\r\nGET /health HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().path == "/health");
}

TEST_CASE("admin http: a bad request line is 400") {
  check_error("GET /stats\r\n\r\n", 400);
  check_error("GET\r\n\r\n", 400);
  check_error("GET  /stats HTTP/1.1\r\n\r\n", 400);      // two spaces: empty target
  check_error("GET /stats  HTTP/1.1\r\n\r\n", 400);      // version " HTTP/1.1"
  check_error("GET /stats HTTP/1.1 \r\n\r\n", 400);
  check_error("GET /st ats HTTP/1.1\r\n\r\n", 400);
  check_error("G(T /stats HTTP/1.1\r\n\r\n", 400);      // not a token
  check_error("GET /stats\tHTTP/1.1\r\n\r\n", 400);
  check_error(std::string_view("GET /st\0ts HTTP/1.1\r\n\r\n", 24), 400);
  check_error("GET /st\x7fts HTTP/1.1\r\n\r\n", 400);
  check_error("GET /st\xc3\xa9 HTTP/1.1\r\n\r\n", 400);  // raw non-ASCII in the target
  check_error("GET /stats#frag HTTP/1.1\r\n\r\n", 400);
  check_error(std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400);  // TLS hello
  check_error("\x16", 400);  // refused at the first byte
  check_error("GET /stats HTTP/1.1\rX", 400);            // bare CR
}

TEST_CASE("admin http: a header line without a colon, or a bad one, is 400") {
  check_error("GET / HTTP/1.1\r\nHost localhost\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nHost : localhost\r\n\r\n", 400);  // space before colon
  check_error("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400);   // obs-fold
  check_error("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nA\x01: b\r\n\r\n", 400);
  // Empty values and obs-text are fine.
  CHECK(parse("GET / HTTP/1.1\r\nA:\r\nB: \xe2\x82\xac\r\n\r\n").status() == ParseStatus::Done);
}

TEST_CASE("admin http: invalid or conflicting Content-Length is 400") {
  check_error("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n", 400);
  check_error("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  check_error("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  // The same value twice is one length; whitespace around it is not part of it.
  RequestParser p = parse("GET / HTTP/1.1\r\nContent-Length:  7 \r\nCONTENT-LENGTH: 7\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().content_length == 7u);
}

TEST_CASE("admin http: a bare LF ends a line, as RFC 9112 allows (printf | nc)") {
  RequestParser p = parse("GET /stats HTTP/1.0\n\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().path == "/stats");
  CHECK(parse("GET / HTTP/1.1\nHost: x\r\n\n").status() == ParseStatus::Done);
}

TEST_CASE("admin http: headers over 8 KiB are 431, a request line over 8 KiB is 400") {
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  check_error(big, 431);
  // Many small headers add up too.
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 1000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  check_error(many, 431);
  check_error("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", 400);
  // Headers of exactly 8192 bytes are fine, whatever the request line; one more is not.
  std::string line = "GET /" + std::string(100, 'p') + " HTTP/1.1\r\n";
  std::string name = "X: ";
  std::string exact = line + name + std::string(RequestParser::kMaxHead - name.size() - 4, 'v') + "\r\n\r\n";
  REQUIRE(exact.size() - line.size() == RequestParser::kMaxHead);
  CHECK(parse(exact).status() == ParseStatus::Done);
  std::string over = line + name + std::string(RequestParser::kMaxHead - name.size() - 3, 'v') + "\r\n\r\n";
  check_error(over, 431);
  // Bytes never stop coming (no CRLF at all): the parser errs instead of buffering.
  RequestParser p;
  std::string chunk(1000, 'x');
  ParseStatus st = ParseStatus::NeedMore;
  for (int i = 0; i < 100 && st == ParseStatus::NeedMore; ++i) st = p.feed(chunk);
  CHECK(st == ParseStatus::Error);
  CHECK(p.error_status() == 400);
}

TEST_CASE("admin http: versions other than 1.0 and 1.1 are 400") {
  check_error("GET / HTTP/2.0\r\n\r\n", 400);
  check_error("GET / HTTP/0.9\r\n\r\n", 400);
  check_error("GET / HTTP/1.2\r\n\r\n", 400);
  check_error("GET / http/1.1\r\n\r\n", 400);
  check_error("GET / HTTP/1.10\r\n\r\n", 400);
  check_error("GET / HTTP/1\r\n\r\n", 400);
  check_error("GET / FTP/1.1\r\n\r\n", 400);
}

TEST_CASE("admin http: methods are case-sensitive tokens: lowercase parses, then routes to 405") {
  RequestParser p = parse("get /health HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().method == "get");
  ServerState state;
  http::Response r = admin_response(p.request(), state, 0);
  CHECK(r.status == 405);
  CHECK(r.allow_get_head);
}

// ------------------------------------------------------------------ bodies

TEST_CASE("admin http: PUT with a body: exactly Content-Length bytes, bytes after it ignored") {
  RequestParser p = parse("PUT /services/web/backends/127.0.0.1:8001/state HTTP/1.1\r\n"
                          "Content-Length: 7\r\n\r\n drain\nGET / HTTP/1.1\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().method == "PUT");
  CHECK(p.request().content_length == 7u);
  CHECK(p.request().body == " drain\n");
  CHECK(p.head_bytes() == std::string_view("PUT /services/web/backends/127.0.0.1:8001/state "
                                           "HTTP/1.1\r\nContent-Length: 7\r\n\r\n").size());
  CHECK(p.feed("more") == ParseStatus::Done);
  CHECK(p.request().body == " drain\n");
}

TEST_CASE("admin http: a body arriving in later reads is NeedMore until complete") {
  std::string head = "PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
  RequestParser p;
  CHECK(p.feed(head) == ParseStatus::NeedMore);
  CHECK(p.request().body.empty());
  for (char c : std::string("mai")) CHECK(p.feed(std::string(1, c)) == ParseStatus::NeedMore);
  CHECK(p.feed({}) == ParseStatus::NeedMore);
  CHECK(p.feed("nt") == ParseStatus::Done);
  CHECK(p.request().body == "maint");
  // Head and the start of the body in one read, the rest later.
  RequestParser q;
  CHECK(q.feed("DELETE /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nab") == ParseStatus::NeedMore);
  CHECK(q.feed("cdEXTRA") == ParseStatus::Done);
  CHECK(q.request().body == "abcd");
  // One byte at a time, bare LFs, from the first byte of the request line.
  std::string all = "PUT /w HTTP/1.0\nContent-Length: 3\n\n100";
  RequestParser r;
  for (size_t i = 0; i + 1 < all.size(); ++i) REQUIRE(r.feed(all.substr(i, 1)) == ParseStatus::NeedMore);
  CHECK(r.feed(all.substr(all.size() - 1)) == ParseStatus::Done);
  CHECK(r.request().body == "100");
}

TEST_CASE("admin http: any bytes may be in a body") {
  std::string body("\0\r\n\x7f\xff\x16 ", 7);
  RequestParser p = parse("PUT /x HTTP/1.1\r\nContent-Length: 7\r\n\r\n" + body);
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().body == body);
}

TEST_CASE("admin http: no Content-Length, or 0, is an empty body (PUT, DELETE, any method)") {
  for (const char* m : {"PUT", "DELETE", "POST", "FOO", "get"}) {
    INFO(m);
    RequestParser p = parse(std::string(m) + " /x HTTP/1.1\r\n\r\n");
    REQUIRE(p.status() == ParseStatus::Done);
    CHECK(p.request().body.empty());
    CHECK_FALSE(p.request().content_length);
    p = parse(std::string(m) + " /x HTTP/1.1\r\nContent-Length: 0\r\n\r\nignored");
    REQUIRE(p.status() == ParseStatus::Done);
    CHECK(p.request().body.empty());
    CHECK(p.request().content_length == 0u);
  }
}

TEST_CASE("admin http: a body over 1 KiB is 413, before any of it arrives") {
  std::string head = "PUT /x HTTP/1.1\r\nContent-Length: 1024\r\n\r\n";
  RequestParser p = parse(head + std::string(1024, 'a'));
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().body.size() == 1024);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413);
  check_error("DELETE /x HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n", 413);
  check_error("FOO /x HTTP/1.1\r\nContent-Length: 0001025\r\n\r\n", 413);
  // Bad or conflicting values stay 400, whatever their size.
  check_error("PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n", 400);
  check_error("PUT /x HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400);
  RequestParser same = parse("PUT /x HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok");
  REQUIRE(same.status() == ParseStatus::Done);
  CHECK(same.request().body == "ok");
}

TEST_CASE("admin http: any Transfer-Encoding on a method with a body is 411") {
  check_error("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndrain\r\n0\r\n\r\n", 411);
  check_error("PUT /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 411);
  check_error("DELETE /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 411);
  check_error("PUT /x HTTP/1.0\r\ntransfer-encoding: gzip\r\n\r\n", 411);
  check_error("POST /x HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 411);
}

TEST_CASE("admin http: GET and HEAD never read a body, as before") {
  // Content-Length is checked but not waited for, and not limited to 1 KiB.
  for (const char* m : {"GET", "HEAD"}) {
    INFO(m);
    RequestParser p;
    CHECK(p.feed(std::string(m) + " /stats HTTP/1.1\r\nContent-Length: 5000\r\n\r\n") == ParseStatus::Done);
    CHECK(p.request().content_length == 5000u);
    CHECK(p.request().body.empty());
    p = parse(std::string(m) + " /stats HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    REQUIRE(p.status() == ParseStatus::Done);
    CHECK(p.request().body.empty());
    // Transfer-Encoding alone in HTTP/1.1 is still not an error for them.
    CHECK(parse(std::string(m) + " / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").status() ==
          ParseStatus::Done);
    check_error(std::string(m) + " / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    check_error(std::string(m) + " / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  }
  CHECK(http::is_read_method("GET"));
  CHECK(http::is_read_method("HEAD"));
  CHECK_FALSE(http::is_read_method("get"));
  CHECK_FALSE(http::is_read_method("PUT"));
  CHECK_FALSE(http::is_read_method(""));
}

TEST_CASE("admin http: the head limits stay 8 KiB each, the body comes on top") {
  std::string line = "PUT /x HTTP/1.1\r\n";
  std::string cl = "Content-Length: 1024\r\n";
  std::string pad = "X: ";
  std::string headers = cl + pad + std::string(RequestParser::kMaxHead - cl.size() - pad.size() - 4, 'v') + "\r\n\r\n";
  REQUIRE(headers.size() == RequestParser::kMaxHead);
  RequestParser p = parse(line + headers + std::string(1024, 'b'));
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().body.size() == 1024);
  check_error(line + "Content-Length: 1\r\nX: " + std::string(9000, 'v') + "\r\n\r\nb", 431);
}

TEST_CASE("admin http: Authorization is kept, with how many times it came") {
  RequestParser p = parse("PUT /x HTTP/1.1\r\nauthorization:   Bearer abc  \r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().authorization == "Bearer abc");
  CHECK(p.request().authorization_count == 1);
  p = parse("PUT /x HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n");
  REQUIRE(p.status() == ParseStatus::Done);
  CHECK(p.request().authorization == "Bearer a");
  CHECK(p.request().authorization_count == 2);
  p = parse("GET /x HTTP/1.1\r\n\r\n");
  CHECK(p.request().authorization_count == 0);
}

TEST_CASE("admin http: split_path splits at / first, then percent-decodes each segment") {
  std::vector<std::string> s;
  REQUIRE(http::split_path("/services/web/backends/127.0.0.1:8001/state", s));
  CHECK(s == std::vector<std::string>{"services", "web", "backends", "127.0.0.1:8001", "state"});
  REQUIRE(http::split_path("/services/web/backends/%5B%3a%3A1%5d%3A8001/weight", s));
  CHECK(s[3] == "[::1]:8001");
  REQUIRE(http::split_path("/services/web/backends/[::1]:8001/weight", s));
  CHECK(s[3] == "[::1]:8001");
  REQUIRE(http::split_path("/a%2Fb/c%2fd", s));  // %2F never makes a new segment
  CHECK(s == std::vector<std::string>{"a/b", "c/d"});
  REQUIRE(http::split_path("/a%25b/%41+%20", s));  // decoded once; '+' stays '+'
  CHECK(s == std::vector<std::string>{"a%b", "A+ "});
  REQUIRE(http::split_path("/%C3%A9", s));  // non-ASCII bytes are fine
  CHECK(s == std::vector<std::string>{"\xc3\xa9"});
  REQUIRE(http::split_path("/", s));
  CHECK(s == std::vector<std::string>{""});
  REQUIRE(http::split_path("/health/", s));
  CHECK(s == std::vector<std::string>{"health", ""});
  REQUIRE(http::split_path("//health", s));
  CHECK(s == std::vector<std::string>{"", "health"});
  REQUIRE(http::split_path("/./..", s));  // no normalisation
  CHECK(s == std::vector<std::string>{".", ".."});
  // Not a path, bad escapes, control characters: false, nothing kept.
  for (const char* bad : {"", "*", "health", "/%", "/%4", "/a%", "/%zz", "/%4g", "/%g4", "/ok/%",
                          "/%00", "/a%0Ab", "/%1f", "/%7F", "/%%41"}) {
    INFO(bad);
    s = {"x"};
    CHECK_FALSE(http::split_path(bad, s));
    CHECK(s.empty());
  }
  REQUIRE(http::split_path("/%7E%80%ff", s));
  CHECK(s == std::vector<std::string>{"~\x80\xff"});
}

TEST_CASE("admin answers: Allow and WWW-Authenticate when asked; new reason phrases") {
  http::Response r = http::error_response(405, "x");
  r.allow = "PUT";
  std::string out = http::serialize(r, false);
  CHECK(out.find("\r\nAllow: PUT\r\n") != std::string::npos);
  r.allow_get_head = true;  // ALLOW wins
  out = http::serialize(r, false);
  CHECK(out.find("\r\nAllow: PUT\r\n") != std::string::npos);
  CHECK(out.find("GET, HEAD") == std::string::npos);
  http::Response u = http::error_response(401, "x");
  u.www_authenticate = "Bearer";
  out = http::serialize(u, false);
  CHECK(out.rfind("HTTP/1.1 401 Unauthorized\r\n", 0) == 0);
  CHECK(out.find("\r\nWWW-Authenticate: Bearer\r\n") != std::string::npos);
  CHECK(out.find("Allow:") == std::string::npos);
  CHECK(http::reason_phrase(403) == "Forbidden");
  CHECK(http::reason_phrase(411) == "Length Required");
  CHECK(http::reason_phrase(413) == "Content Too Large");
}

// ------------------------------------------------------------------ routing and answers

namespace {
http::Request request(std::string method, std::string path) {
  http::Request r;
  r.method = std::move(method);
  r.target = path;
  r.path = std::move(path);
  return r;
}

std::shared_ptr<Service> make_service(const std::string& name, int port, bool up) {
  BackendConfig bc;
  bc.address_text = "127.0.0.1:" + std::to_string(port);
  std::string err;
  REQUIRE(parse_address(bc.address_text, bc.address, err));
  auto b = std::make_shared<Backend>(bc);
  b->health = up ? HealthState::Up : HealthState::Down;
  ServiceConfig sc;
  sc.name = name;
  sc.listen_text = "127.0.0.1:1";
  sc.backends.push_back(bc);
  return std::make_shared<Service>(sc, Pool({b}, Algorithm::RoundRobin));
}
}  // namespace

TEST_CASE("admin routing: paths, methods, HEAD") {
  ServerState state;
  state.services.push_back(make_service("web", 1, true));
  CHECK(admin_response(request("GET", "/health"), state, 0).status == 200);
  CHECK(admin_response(request("GET", "/health"), state, 0).body == R"({"status":"ok"})");
  CHECK(admin_response(request("GET", "/health"), state, 0).content_type == "application/json");
  CHECK(admin_response(request("HEAD", "/stats"), state, 0).status == 200);
  http::Response m = admin_response(request("GET", "/metrics"), state, 0);
  CHECK(m.status == 200);
  CHECK(m.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(admin_response(request("GET", "/"), state, 0).status == 404);
  CHECK(admin_response(request("GET", "/health/"), state, 0).status == 404);
  CHECK(admin_response(request("POST", "/nope"), state, 0).status == 404);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "TRACE"}) {
    http::Response r = admin_response(request(method, "/stats"), state, 0);
    CHECK(r.status == 405);
    CHECK(http::serialize(r, false).find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  }
}

TEST_CASE("admin answers: status line, headers, HEAD without body") {
  http::Response r;
  r.status = 503;
  r.content_type = "application/json";
  r.body = R"({"status":"stopping"})";
  std::string full = http::serialize(r, false);
  CHECK(full.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(full.find("\r\nContent-Type: application/json\r\n") != std::string::npos);
  CHECK(full.find("\r\nContent-Length: 21\r\n") != std::string::npos);
  CHECK(full.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(full.substr(full.size() - 21) == r.body);
  std::string head = http::serialize(r, true);
  CHECK(head.find("\r\nContent-Length: 21\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  CHECK(http::reason_phrase(431) == "Request Header Fields Too Large");
}

// ------------------------------------------------------------------ AdminServer on a loop

namespace {

struct Fixture {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  Log log{LogLevel::Error};
  ServerState state;
  std::unique_ptr<AdminServer> server;
  uint16_t port = 0;

  explicit Fixture(AdminLimits limits = {}) {
    state.services.push_back(make_service("web", 1, true));
    Address a;
    std::string err;
    REQUIRE(parse_address("127.0.0.1:0", a, err, true));
    UniqueFd fd = listen_tcp(a);
    REQUIRE(fd);
    port = local_address(fd.get()).port();
    server = std::make_unique<AdminServer>(loop, log, std::move(fd), state, nullptr, std::string(), limits);
  }
  ~Fixture() {
    server.reset();
    ev_loop_destroy(loop);
  }

  // Runs the loop until PRED holds or SECONDS pass; returns PRED's last value.
  template <class Pred>
  bool pump(Pred pred, double seconds = 3.0) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      ev_run(loop, EVRUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  UniqueFd connect_client() {
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::fcntl(c.get(), F_SETFL, ::fcntl(c.get(), F_GETFL) | O_NONBLOCK);
    return c;
  }

  // Reads what is there; true once EOF (or a reset) was seen.
  static bool read_some(int fd, std::string& out) {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return true;
      return errno != EAGAIN && errno != EWOULDBLOCK;
    }
  }

  std::string exchange(std::string_view request, double seconds = 3.0) {
    UniqueFd c = connect_client();
    REQUIRE(::send(c.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    std::string out;
    bool closed = pump([&] { return read_some(c.get(), out); }, seconds);
    CHECK(closed);
    return out;
  }
};

int status_of(const std::string& answer) {
  if (answer.size() < 12 || answer.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return std::stoi(answer.substr(9, 3));
}

std::string body_of(const std::string& answer) {
  size_t p = answer.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : answer.substr(p + 4);
}

}  // namespace

TEST_CASE("admin server: answers /health, /stats, /metrics and errors, then closes") {
  Fixture f;
  std::string a = f.exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(a) == 200);
  CHECK(body_of(a) == R"({"status":"ok"})");
  CHECK(status_of(f.exchange("GET /stats?pretty HTTP/1.0\r\n\r\n")) == 200);
  std::string m = f.exchange("GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(status_of(m) == 200);
  CHECK(body_of(m).find("# TYPE l4lb_backend_up gauge\n") != std::string::npos);
  std::string h = f.exchange("HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(status_of(h) == 200);
  CHECK(body_of(h).empty());
  CHECK(status_of(f.exchange("GET /nope HTTP/1.1\r\n\r\n")) == 404);
  // Not GET/HEAD on TCP: authorisation first; no token configured here: 403.
  std::string p = f.exchange("POST /stats HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(status_of(p) == 403);
  std::string h405 = f.exchange("HEAD /services/web/backends/127.0.0.1:1/state HTTP/1.1\r\n\r\n");
  CHECK(status_of(h405) == 405);
  CHECK(h405.find("\r\nAllow: PUT\r\n") != std::string::npos);
  CHECK(status_of(f.exchange("GET /stats HTTP/1.1\r\nBroken\r\n\r\n")) == 400);
  CHECK(status_of(f.exchange("GET / HTTP/3.0\r\n\r\n")) == 400);
  CHECK(status_of(f.exchange("GET / HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n")) ==
        431);
  f.state.draining = true;
  a = f.exchange("GET /health HTTP/1.1\r\n\r\n");
  CHECK(status_of(a) == 503);
  CHECK(body_of(a) == R"({"status":"stopping"})");
  CHECK(f.pump([&] { return f.server->connection_count() == 0; }));
}

TEST_CASE("admin server: a client that closes early, or sends garbage, is just closed") {
  Fixture f;
  {
    UniqueFd c = f.connect_client();
    ::send(c.get(), "GET /he", 7, MSG_NOSIGNAL);
    CHECK(f.pump([&] { return f.server->connection_count() == 1; }));
  }  // closed mid-request
  CHECK(f.pump([&] { return f.server->connection_count() == 0; }));
  std::string garbage(20000, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 7919 % 251);
  std::string a = f.exchange(garbage);
  CHECK((a.empty() || status_of(a) == 400));
  CHECK(f.pump([&] { return f.server->connection_count() == 0; }));
}

TEST_CASE("admin server: past max_connections the oldest connection gives way to the new one") {
  AdminLimits limits;
  limits.max_connections = 4;
  Fixture f(limits);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 4; ++i) {  // slow clients: half a request each
    idle.push_back(f.connect_client());
    ::send(idle.back().get(), "GET /he", 7, MSG_NOSIGNAL);
    CHECK(f.pump([&] { return f.server->connection_count() == static_cast<size_t>(i + 1); }));
  }
  // A probe still gets its answer; the first slow client was closed to make room.
  CHECK(status_of(f.exchange("GET /health HTTP/1.1\r\n\r\n")) == 200);
  CHECK(f.server->evicted_count() == 1);
  std::string out;
  CHECK(f.pump([&] { return Fixture::read_some(idle.front().get(), out); }, 1.0));
  CHECK(out.empty());  // closed without an answer
  CHECK(f.server->connection_count() <= 4);
}

TEST_CASE("admin server: a request not complete in time is closed (slowloris)") {
  AdminLimits limits;
  limits.request_timeout = 0.3;
  Fixture f(limits);
  UniqueFd c = f.connect_client();
  auto t0 = std::chrono::steady_clock::now();
  std::string out;
  bool closed = f.pump([&] {
    ::send(c.get(), "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);  // a byte per ms: never a full line
    return Fixture::read_some(c.get(), out);
  });
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(closed);
  CHECK(took >= 0.25);
  CHECK(took < 2.0);
  CHECK(f.server->connection_count() == 0);
}

TEST_CASE("admin server: a client that does not read its answer is closed after the write timeout") {
  AdminLimits limits;
  limits.write_timeout = 0.3;
  Fixture f(limits);
  // Many backends make a /metrics body larger than the socket buffers.
  for (int i = 0; i < 2000; ++i)
    f.state.services.push_back(make_service("svc" + std::to_string(i), 1000 + i, true));
  UniqueFd c = f.connect_client();
  int small = 4096;
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::string req = "GET /metrics HTTP/1.1\r\n\r\n";
  ::send(c.get(), req.data(), req.size(), MSG_NOSIGNAL);
  CHECK(f.pump([&] { return f.server->connection_count() == 1; }));
  CHECK(f.pump([&] { return f.server->connection_count() == 0; }, 10.0));  // /metrics of 2,000 services is slow under TSan
}

TEST_CASE("admin server: destroying it closes every open connection") {
  Fixture f;
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(f.connect_client());
  CHECK(f.pump([&] { return f.server->connection_count() == 3; }));
  f.server.reset();
  for (auto& c : idle) {
    std::string out;
    pollfd p{c.get(), POLLIN, 0};
    CHECK(::poll(&p, 1, 1000) == 1);
    CHECK(Fixture::read_some(c.get(), out));
  }
}
