#include "l4lb/base/duration.hpp"

#include <doctest/doctest.h>

using l4lb::Millis;

namespace {

Millis ok(std::string_view text) {
  Millis d{-1};
  std::string error;
  INFO("parsing \"" << std::string(text) << "\": " << error);
  CHECK(l4lb::parse_duration(text, d, error));
  return d;
}

std::string bad(std::string_view text) {
  Millis d{-1};
  std::string error;
  CHECK_FALSE(l4lb::parse_duration(text, d, error));
  CHECK(d == Millis{-1});  // untouched on failure
  return error;
}

}  // namespace

TEST_CASE("durations: units, compounds and bare seconds") {
  CHECK(ok("250ms") == Millis{250});
  CHECK(ok("2s") == Millis{2000});
  CHECK(ok("5m") == Millis{300'000});
  CHECK(ok("1h") == Millis{3'600'000});
  CHECK(ok("1m30s") == Millis{90'000});
  CHECK(ok("1h2m3s4ms") == Millis{3'723'004});
  CHECK(ok("1.5s") == Millis{1500});
  CHECK(ok(".5s") == Millis{500});
  CHECK(ok("1.5ms") == Millis{1});  // sub-millisecond rounds down
  CHECK(ok("0") == Millis{0});
  CHECK(ok("0s") == Millis{0});
  CHECK(ok("30") == Millis{30'000});
  CHECK(ok("1.5") == Millis{1500});
  CHECK(ok("0.001") == Millis{1});
  CHECK(ok("720h") == Millis{2'592'000'000});  // exactly 30 days
  CHECK(ok("2592000") == Millis{2'592'000'000});
}

TEST_CASE("durations: bad forms say why") {
  CHECK(bad("") == "empty duration");
  CHECK(bad("-1s") == "must not be negative");
  CHECK(bad("-5") == "must not be negative");
  CHECK(bad("5sec") == "unknown unit \"sec\" (use ms, s, m, h)");
  CHECK(bad("3d") == "unknown unit \"d\" (use ms, s, m, h)");
  CHECK(bad("1m30") == "missing unit after \"30\" (use ms, s, m, h)");
  CHECK(bad("5 s") == "missing unit after \"5\" (use ms, s, m, h)");
  CHECK(bad("abc") == "expected a number at \"abc\"");
  CHECK(bad("s") == "expected a number at \"s\"");
  CHECK(bad("1s.") == "expected a number at \".\"");
  CHECK(bad("721h") == "exceeds the maximum of 30 days");
  CHECK(bad("2592000.001") == "exceeds the maximum of 30 days");
  CHECK(bad("99999999999999999999999h") == "exceeds the maximum of 30 days");
  CHECK(bad("720h1ms") == "exceeds the maximum of 30 days");
}

TEST_CASE("durations: format_duration is the shortest exact form and round-trips") {
  CHECK(l4lb::format_duration(Millis{0}) == "0s");
  CHECK(l4lb::format_duration(Millis{250}) == "250ms");
  CHECK(l4lb::format_duration(Millis{2000}) == "2s");
  CHECK(l4lb::format_duration(Millis{1500}) == "1.5s");
  CHECK(l4lb::format_duration(Millis{90'000}) == "1m30s");
  CHECK(l4lb::format_duration(Millis{3'600'000}) == "1h");
  CHECK(l4lb::format_duration(Millis{3'600'050}) == "1h0.05s");
  CHECK(l4lb::format_duration(Millis{2'592'000'000}) == "720h");
  for (int64_t ms : {0L, 1L, 10L, 999L, 1000L, 1001L, 59'999L, 60'000L, 61'500L, 3'599'999L,
                     3'600'000L, 86'400'123L, 2'592'000'000L}) {
    Millis back{-1};
    std::string error;
    std::string text = l4lb::format_duration(Millis{ms});
    INFO(ms << " -> " << text);
    CHECK(l4lb::parse_duration(text, back, error));
    CHECK(back == Millis{ms});
  }
}
