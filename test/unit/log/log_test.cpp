// logfmt lines as INTERFACE.md shows them, with and without journald prefixes.
#include <doctest/doctest.h>

#include <cerrno>

#include "l4lb/log/log.hpp"

using namespace l4lb;

TEST_CASE("logfmt values are bare when safe and quoted otherwise") {
  CHECK(logfmt_value("web") == "web");
  CHECK(logfmt_value("127.0.0.1:8002") == "127.0.0.1:8002");
  CHECK(logfmt_value("backend down") == "\"backend down\"");
  CHECK(logfmt_value("") == "\"\"");
  CHECK(logfmt_value("a=b") == "\"a=b\"");
  CHECK(logfmt_value("say \"hi\"\\") == "\"say \\\"hi\\\"\\\\\"");
  CHECK(logfmt_value("two\nlines") == "\"two\\nlines\"");
  CHECK(logfmt_value(std::string("nul\0", 4)) == "\"nul\\x00\"");
}

TEST_CASE("a line has ts, level, msg and the fields in order") {
  Log log;
  // 2026-01-01T00:00:00.000Z
  std::string line = log.format(LogLevel::Warn, "backend down",
                                {{"service", "web"}, {"backend", "127.0.0.1:8002"},
                                 {"reason", "connect: connection refused"}},
                                false, 1767225600.0);
  CHECK(line ==
        "ts=2026-01-01T00:00:00.000Z level=warn msg=\"backend down\" service=web "
        "backend=127.0.0.1:8002 reason=\"connect: connection refused\"");
}

TEST_CASE("under journald a line starts with its priority and has no ts") {
  Log log;
  CHECK(log.format(LogLevel::Error, "reload failed", {}, true, 0) ==
        "<3>level=error msg=\"reload failed\"");
  CHECK(log.format(LogLevel::Info, "ready", {}, true, 0) == "<6>level=info msg=ready");
  CHECK(log.format(LogLevel::Debug, "x", {}, true, 0).rfind("<7>", 0) == 0);
  CHECK(log.format(LogLevel::Warn, "x", {}, true, 0).rfind("<4>", 0) == 0);
}

TEST_CASE("levels filter what is written") {
  Log log(LogLevel::Warn);
  CHECK(log.enabled(LogLevel::Error));
  CHECK(log.enabled(LogLevel::Warn));
  CHECK_FALSE(log.enabled(LogLevel::Info));
  log.set_level(LogLevel::Debug);
  CHECK(log.enabled(LogLevel::Debug));
}

TEST_CASE("reasons spell system errors in lower case, as INTERFACE.md's example does") {
  CHECK(error_text(ECONNREFUSED) == "connection refused");  // reason="connect: connection refused"
  CHECK(error_text(ETIMEDOUT) == "connection timed out");
  CHECK(error_text(EIO) == "input/output error");
  CHECK(error_text(EMFILE) == "too many open files");
}

TEST_CASE("config errors at start keep their FILE:LINE:COL form, with a priority under journald") {
  CHECK(Log::format_plain(LogLevel::Error, "l4lb.yaml:3:5: services[0].listen: bad", false) ==
        "l4lb.yaml:3:5: services[0].listen: bad");
  CHECK(Log::format_plain(LogLevel::Error, "l4lb.yaml:3:5: services[0].listen: bad", true) ==
        "<3>l4lb.yaml:3:5: services[0].listen: bad");
}
