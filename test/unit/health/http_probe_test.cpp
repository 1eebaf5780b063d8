// The HTTP health check: the request it sends and the status-line verdicts.
#include <doctest/doctest.h>

#include <string>

#include "l4lb/health/http_probe.hpp"

using namespace l4lb;

TEST_CASE("the check request is a complete HTTP/1.1 GET with Host, close and User-Agent") {
  std::string r = build_http_check("/health", "127.0.0.1:8001");
  CHECK(r == "GET /health HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nConnection: close\r\n"
             "User-Agent: l4lb/" L4LB_VERSION "\r\nAccept: */*\r\n\r\n");
}

namespace {
StatusVerdict judge(std::string_view s, int lo = 200, int hi = 200) { return check_status_line(s, lo, hi); }
}  // namespace

TEST_CASE("status lines that pass") {
  CHECK(judge("HTTP/1.1 200 OK\r\n").kind == StatusVerdict::Pass);
  CHECK(judge("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").kind == StatusVerdict::Pass);
  CHECK(judge("HTTP/1.1 200\r\n").kind == StatusVerdict::Pass);  // empty reason phrase
  CHECK(judge("HTTP/1.1 200 OK\n").kind == StatusVerdict::Pass);  // bare LF
  CHECK(judge("HTTP/1.1 302 Found\r\n", 200, 399).kind == StatusVerdict::Pass);
  CHECK(judge("HTTP/1.1 399 X\r\n", 200, 399).status == 399);
}

TEST_CASE("status lines that fail, with a reason") {
  auto fail = [](std::string_view s, int lo, int hi, std::string_view reason_part) {
    StatusVerdict v = check_status_line(s, lo, hi);
    CHECK(v.kind == StatusVerdict::Fail);
    CHECK_MESSAGE(v.reason.find(reason_part) != std::string::npos, v.reason);
  };
  fail("HTTP/1.1 500 Internal Server Error\r\n", 200, 200, "status 500");
  fail("HTTP/1.1 404 Not Found\r\n", 200, 399, "status 404");
  fail("HTTP/1.1 199 X\r\n", 200, 399, "status 199");
  fail("HTTP/1.1 99 OK\r\n", 200, 200, "bad status line");    // two digits
  fail("HTTP/1.1 099 OK\r\n", 0, 999, "bad status code 99");  // out of 100..599
  fail("HTTP/1.1 600 X\r\n", 100, 599, "bad status code 600");
  fail("HTTP/1.1 2000 OK\r\n", 200, 200, "bad status line");
  fail("HTTP/1.1 20a OK\r\n", 200, 200, "bad status line");
  fail("HTTP/1.1200 OK\r\n", 200, 200, "bad status line");
  fail("HTTP/2 200\r\n", 200, 200, "not an HTTP/1.x answer");
  fail("HTTP/1.2 200 OK\r\n", 200, 200, "bad status line");
  fail("<html>hello</html>\n", 200, 200, "not an HTTP/1.x answer");  // HTTP/0.9 style
  fail("SSH-2.0-OpenSSH_9.2\r\n", 200, 200, "not an HTTP/1.x answer");
  fail(std::string_view("\0\0\0\0", 4), 200, 200, "not an HTTP/1.x answer");
  fail("\r\n", 200, 200, "not an HTTP/1.x answer");
  fail("HTTP/1.1 200 OK" + std::string(9 * 1024, 'x'), 200, 200, "longer than 8 KiB");
}

TEST_CASE("an unfinished status line asks for more, garbage fails early") {
  CHECK(judge("").kind == StatusVerdict::NeedMore);
  CHECK(judge("HTT").kind == StatusVerdict::NeedMore);
  CHECK(judge("HTTP/1.1 200 O").kind == StatusVerdict::NeedMore);
  CHECK(judge("HTTP/1.1 200 OK" + std::string(8000, 'x')).kind == StatusVerdict::NeedMore);
  CHECK(judge("X").kind == StatusVerdict::Fail);  // decided on the first byte
}
